# Sourced by backup.sh and restore.sh: DATABASE_URL must name a PostgreSQL database, which
# pg_dump, pg_restore and psql take as it is (a libpq URI).
case "${DATABASE_URL:-}" in
  postgres://* | postgresql://*) ;;
  "" | sqlite:*)
    echo "backups are of PostgreSQL: set DATABASE_URL=postgres://... (without it the platform" >&2
    echo "runs on the SQLite file db.sqlite3: stop it and copy the file, or run" >&2
    echo "sqlite3 db.sqlite3 \".backup backup.sqlite3\" while it runs)" >&2
    exit 2 ;;
  *)
    echo "DATABASE_URL must start with postgres:// or postgresql:// for backups" >&2
    exit 2 ;;
esac
