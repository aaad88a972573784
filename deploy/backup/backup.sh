#!/usr/bin/env bash
# `make backup`: the platform's PostgreSQL database (DATABASE_URL) in one pg_dump file of the
# custom format, var/backups/thisdb-<UTC time>.dump (BACKUP_DIR to put it elsewhere).
# pg_dump reads one snapshot of the whole database, so the file is consistent while the
# platform keeps serving. Restore it with `make restore FILE=...` (deploy/backup/restore.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/backup/database-url.sh

bash deploy/ensure-packages.sh postgresql-client
dir="${BACKUP_DIR:-var/backups}"
mkdir -p "$dir"
file="$dir/thisdb-$(date -u +%Y%m%dT%H%M%SZ).dump"
# Written under a temporary name and renamed when whole: a dump that fails halfway never
# looks like a backup.
partial="$file.partial"
trap 'rm -f "$partial"' EXIT
pg_dump --format=custom --file="$partial" --dbname="$DATABASE_URL"
mv "$partial" "$file"
echo "$file"
