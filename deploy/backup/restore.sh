#!/usr/bin/env bash
# `make restore FILE=...`: a `make backup` file into the EMPTY PostgreSQL database of
# DATABASE_URL (create it first: createdb NAME), all of it or nothing (one transaction), then
# the migrations the code has beyond the backup's. A database that has tables is refused: a
# restore over live data would mix two states of it.
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/backup/database-url.sh

file="${1:-}"
if [ -z "$file" ]; then
  echo "restore: name the backup to restore: make restore FILE=var/backups/thisdb-....dump" >&2
  exit 2
fi
if [ ! -f "$file" ]; then
  echo "restore: no such file: $file" >&2
  exit 2
fi
bash deploy/ensure-packages.sh postgresql-client
tables=$(psql --no-psqlrc --quiet --tuples-only --no-align --dbname="$DATABASE_URL" --command \
  "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')") || {
  echo "restore: cannot reach the database of DATABASE_URL (create it first: createdb NAME)" >&2
  exit 1
}
if [ "$tables" != "0" ]; then
  echo "restore: refused: the database of DATABASE_URL is not empty ($tables tables)." >&2
  echo "Restore into a new, empty database (createdb NAME), then point DATABASE_URL at it." >&2
  exit 1
fi
# --no-owner, --no-privileges: the objects belong to the role restoring them, whatever role
# owned them where the backup was made.
pg_restore --no-owner --no-privileges --exit-on-error --single-transaction \
  --dbname="$DATABASE_URL" "$file"
"${PYTHON:-.venv/bin/python}" manage.py migrate --noinput
echo "restored $file"
