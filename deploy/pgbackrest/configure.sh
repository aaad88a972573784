#!/usr/bin/env bash
# Installs pgBackRest (Debian's package) and writes its configuration for the platform's
# PostgreSQL from pgbackrest.conf.template beside this script.
# Usage: [PG_DATA=... PG_PORT=... PG_SOCKET=... REPO_PATH=... LOG_PATH=... LOCK_PATH=...]
#        deploy/pgbackrest/configure.sh [OUT]   (OUT: /etc/pgbackrest/pgbackrest.conf)
# Then add to postgresql.conf the lines it prints, restart PostgreSQL, and follow
# docs/operations.md ("Backups": stanza-create, a full backup, restore to a time).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/../ensure-packages.sh" pgbackrest

out="${1:-/etc/pgbackrest/pgbackrest.conf}"
PG_DATA="${PG_DATA:-/var/lib/postgresql/15/main}"
PG_PORT="${PG_PORT:-5432}"
PG_SOCKET="${PG_SOCKET:-/var/run/postgresql}"
REPO_PATH="${REPO_PATH:-/var/lib/pgbackrest}"
LOG_PATH="${LOG_PATH:-/var/log/pgbackrest}"
LOCK_PATH="${LOCK_PATH:-/tmp/pgbackrest}"

mkdir -p "$(dirname "$out")" "$REPO_PATH" "$LOG_PATH"
sed -e "s|@PG_DATA@|$PG_DATA|" -e "s|@PG_PORT@|$PG_PORT|" -e "s|@PG_SOCKET@|$PG_SOCKET|" \
  -e "s|@REPO_PATH@|$REPO_PATH|" -e "s|@LOG_PATH@|$LOG_PATH|" -e "s|@LOCK_PATH@|$LOCK_PATH|" \
  "$here/pgbackrest.conf.template" > "$out"
# PostgreSQL's user runs archive-push, and writes the repository and the logs.
if id postgres >/dev/null 2>&1; then
  chown postgres:postgres "$REPO_PATH" "$LOG_PATH"
  chmod 640 "$out" && chgrp postgres "$out"
fi

cat <<CONF
# Add to postgresql.conf (then restart PostgreSQL):
archive_mode = on
archive_command = 'pgbackrest --config=$out --stanza=thisdb archive-push %p'
wal_level = replica
CONF
