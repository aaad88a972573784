#!/usr/bin/env bash
# PgBouncer (Debian's, 1.18) in transaction mode in front of one PostgreSQL, on loopback.
# Usage: deploy/cluster/pgbouncer.sh start|stop DIR PORT UPSTREAM_HOST:UPSTREAM_PORT
#   start: writes DIR/pgbouncer.ini and DIR/userlist.txt, starts it in the background on
#          127.0.0.1:PORT (pid DIR/pgbouncer.pid, log DIR/pgbouncer.log), any database name
#          forwarded to the upstream's database of that name.
#          One already running from DIR is stopped first.
#   stop:  stops the one whose pid is in DIR.
#   restart: stop, then start with DIR's configuration as it is (as the user that owns DIR).
# Authentication is trust, as the local PostgreSQL's own loopback rules are: PgBouncer 1.18
# still wants each user name in its auth file, PGBOUNCER_USERS (default "root postgres").
# The platform behind it needs DATABASE_PREPARED_STATEMENTS=false: this version cannot keep a
# prepared statement across the server connections a client's transactions land on (README).
set -euo pipefail
action=${1:?usage: $0 start|stop|restart DIR PORT UPSTREAM_HOST:UPSTREAM_PORT}
dir=${2:?DIR}
port=${3:?PORT}
upstream=${4:?UPSTREAM_HOST:UPSTREAM_PORT}
here=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

case "$action" in
start)
  bash "$here/deploy/ensure-packages.sh" pgbouncer
  # One already running here (e.g. restarted by Patroni's callback) makes way for this one.
  bash "$0" stop "$dir" "$port" "$upstream"
  : > "$dir/userlist.txt"
  for user in ${PGBOUNCER_USERS:-root postgres}; do
    printf '"%s" ""\n' "$user" >> "$dir/userlist.txt"
  done
  cat > "$dir/pgbouncer.ini" <<INI
[databases]
* = host=${upstream%:*} port=${upstream##*:}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pidfile = $dir/pgbouncer.pid
logfile = $dir/pgbouncer.log
; Every API request is one statement in autocommit (or one short transaction): a server
; connection is lent for a transaction and back in the pool at its end.
pool_mode = transaction
; Server connections per database and user: what PostgreSQL sees, however many clients
; (web workers x DATABASE_POOL_SIZE on every node) connect here.
default_pool_size = ${PGBOUNCER_POOL_SIZE:-20}
max_client_conn = 2000
; psycopg sends none of these, but other clients (psql, JDBC) do.
ignore_startup_parameters = extra_float_digits,options
INI
  # PgBouncer refuses to run as root; Debian runs it as postgres.
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres "$dir"
    runuser -u postgres -- pgbouncer -d -q "$dir/pgbouncer.ini"
  else
    pgbouncer -d -q "$dir/pgbouncer.ini"
  fi
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { echo "pgbouncer on 127.0.0.1:$port -> $upstream"; exit 0; }
    sleep 0.1
  done
  echo "pgbouncer did not start; see $dir/pgbouncer.log" >&2
  exit 1
  ;;
restart)
  # Patroni's on_role_change callback (deploy/cluster/cluster.sh), as the postgres user, with
  # Patroni's action, role and scope after the arguments: the same configuration, started
  # afresh. PgBouncer 1.18 keeps the server's first startup parameters for every later client,
  # in_hot_standby among them, so after a promotion libpq would still see a standby here (and
  # after a demotion a primary) until PgBouncer restarts.
  [ -f "$dir/pgbouncer.ini" ] || exit 0  # not started yet: start writes it
  bash "$0" stop "$dir" "$port" "$upstream"
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- pgbouncer -d -q "$dir/pgbouncer.ini"
  else
    pgbouncer -d -q "$dir/pgbouncer.ini"
  fi
  ;;
stop)
  [ -f "$dir/pgbouncer.pid" ] || exit 0
  pid=$(cat "$dir/pgbouncer.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
  echo "pgbouncer ($pid) did not stop" >&2
  exit 1
  ;;
*)
  echo "usage: $0 start|stop|restart DIR PORT UPSTREAM_HOST:UPSTREAM_PORT" >&2
  exit 2
  ;;
esac
