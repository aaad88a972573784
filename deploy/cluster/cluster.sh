#!/usr/bin/env bash
# The platform past one machine, simulated on this one (docs/scaling.md): every part a process
# of its own on loopback, from Debian's packages and the project's code, its data, logs and pid
# files under DIR (default var/cluster).
#
#   nginx :8100 -> web nodes :8101 :8102 (make serve, one worker each)
#   web and Celery -> PgBouncer :6441 -> PostgreSQL :5441 (pg1)  } Patroni (REST :8441 :8442)
#                     PgBouncer :6442 -> PostgreSQL :5442 (pg2)  } on etcd :2479
#   web and Celery -> Redis Cluster :7000-7005 (3 masters, 3 replicas)
#   Celery workers x2 and beat -> RabbitMQ :5672, vhost thisdb-cluster
#
# Usage: deploy/cluster/cluster.sh start|stop|status [DIR]   (make cluster, make cluster-down)
#   start  starts what is not running, waits for each part, prints where each listens.
#   stop   stops everything start started (by its pid files); safe to run twice.
# Also, for the tests' faults (DIR then): web-start|web-stop PORT, worker-start|worker-kill N
#   (1, 2), pgbouncer-start|pgbouncer-stop N (0: pg1's, 1: pg2's), postgres-kill|postgres-start
#   NODE (pg1, pg2; kill: Patroni, PostgreSQL and the node's PgBouncer SIGKILLed, as when the
#   machine is lost; start: Patroni and the PgBouncer again).
# Variables for the platform (THISDB_*) set when calling start reach every web node and worker.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

NGINX_PORT=8100
WEB_PORTS=(8101 8102)
ETCD_PORT=2479
PG_PORTS=(5441 5442)  # pg1, pg2; Patroni's REST API on each + 3000
PGBOUNCER_PORTS=(6441 6442)  # one in front of each PostgreSQL node
REDIS_BASE_PORT=7000
RABBITMQ_VHOST=thisdb-cluster
NODES=(pg1 pg2)

command=${1:-status}
dir=${2:-$project/var/cluster}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
env_file=$dir/platform.env

# What every web node, worker and beat runs with, kept in DIR/platform.env (the tests and
# `manage.py` commands against the topology read it too).
write_platform_env() {
  local redis_url=$1 secret
  [ -s "$dir/secret_key" ] || python3 -c 'import secrets; print(secrets.token_urlsafe(50))' >"$dir/secret_key"
  secret=$(cat "$dir/secret_key")
  {
    # Both PgBouncers; libpq takes the first host whose server accepts writes, so after a
    # failover a new connection finds the new primary by itself.
    echo "DATABASE_URL=postgres://thisdb@127.0.0.1:${PGBOUNCER_PORTS[0]},127.0.0.1:${PGBOUNCER_PORTS[1]}/thisdb?target_session_attrs=read-write"
    # The pages' heavy reads: the standby while there is one, else the primary.
    echo "DATABASE_REPLICA_URL=postgres://thisdb@127.0.0.1:${PGBOUNCER_PORTS[1]},127.0.0.1:${PGBOUNCER_PORTS[0]}/thisdb?target_session_attrs=prefer-standby"
    # PgBouncer 1.18 in transaction mode cannot keep a connection's prepared statements, nor
    # anything else of a session past a transaction (a transaction takes its bucket's lock
    # inside itself then, README).
    echo "DATABASE_PREPARED_STATEMENTS=false"
    echo "DATABASE_TRANSACTION_POOLING=true"
    echo "REDIS_CLUSTER=true"
    echo "REDIS_URL=$redis_url"
    echo "CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/$RABBITMQ_VHOST"
    echo "SECRET_KEY=$secret"
    echo "THISDB_BASE_URL=http://127.0.0.1:$NGINX_PORT"
    echo "THISDB_PROXY_COUNT=1"  # nginx appends the client's address to X-Forwarded-For
    # The caller's settings for the platform (e.g. the tests' THISDB_KEY_WRITES_PER_SECOND).
    env | grep '^THISDB_' | grep -v '^THISDB_BASE_URL=' || true
  } >"$env_file"
}

load_platform_env() {
  set -a
  # shellcheck disable=SC1090
  . "$env_file"
  set +a
}

psql_primary() {
  psql "host=127.0.0.1,127.0.0.1 port=${PG_PORTS[0]},${PG_PORTS[1]} user=postgres dbname=postgres target_session_attrs=read-write" \
    -v ON_ERROR_STOP=1 -qAt "$@"
}

create_database() {
  psql_primary -c "SELECT 1 FROM pg_roles WHERE rolname = 'thisdb'" | grep -q 1 ||
    psql_primary -c "CREATE ROLE thisdb LOGIN"
  psql_primary -c "SELECT 1 FROM pg_database WHERE datname = 'thisdb'" | grep -q 1 ||
    psql_primary -c "CREATE DATABASE thisdb OWNER thisdb"
}

rabbitmq_vhost() {
  rabbitmqctl -q list_vhosts 2>/dev/null | grep -qx "$RABBITMQ_VHOST" ||
    rabbitmqctl -q add_vhost "$RABBITMQ_VHOST" >/dev/null
  rabbitmqctl -q set_permissions -p "$RABBITMQ_VHOST" guest ".*" ".*" ".*" >/dev/null
}

# Patroni restarts a node's PgBouncer when the node changes role (pgbouncer.sh, "restart").
export PATRONI_ON_ROLE_CHANGE_PG1="bash $here/pgbouncer.sh restart $dir/pgbouncer/pg1 ${PGBOUNCER_PORTS[0]} 127.0.0.1:${PG_PORTS[0]}"
export PATRONI_ON_ROLE_CHANGE_PG2="bash $here/pgbouncer.sh restart $dir/pgbouncer/pg2 ${PGBOUNCER_PORTS[1]} 127.0.0.1:${PG_PORTS[1]}"

pgbouncer() {  # pgbouncer start|stop N (0 or 1)
  PGBOUNCER_USERS="thisdb postgres" bash "$here/pgbouncer.sh" "$1" "$dir/pgbouncer/${NODES[$2]}" "${PGBOUNCER_PORTS[$2]}" \
    "127.0.0.1:${PG_PORTS[$2]}"
}

web_start() {
  local port=$1
  start_daemon "$dir/web/$port.pid" "$dir/web/$port.log" \
    make -s -C "$project" serve "ADDR=127.0.0.1:$port" WEB_WORKERS=1 \
    "METRICS_DIR=$dir/metrics/web$port"  # each node's own: a starting node empties its directory
}

web_wait() {
  wait_for 90 "the web node on port $1" curl -sf "http://127.0.0.1:$1/healthz"
}

worker_start() {
  local n=$1
  # acks_late tasks: a worker that dies mid-task leaves its message unacknowledged, and
  # RabbitMQ hands it to the other worker.
  start_daemon "$dir/celery/worker$n.pid" "$dir/celery/worker$n.log" \
    make -s -C "$project" worker "WORKER_ARGS=-n worker$n@%h --concurrency=1" \
    "METRICS_DIR=$dir/metrics/worker$n"
}

start() {
  bash "$project/deploy/ensure-packages.sh" patroni etcd-server pgbouncer nginx redis-server \
    postgresql-15 curl
  rabbitmqctl -q status >/dev/null 2>&1 || {
    echo "RabbitMQ does not answer on this machine (rabbitmqctl status): start it first" >&2
    exit 1
  }
  rabbitmq_vhost
  echo "PostgreSQL and Patroni..."
  bash "$here/patroni.sh" start "$dir/postgres" "$ETCD_PORT" "${PG_PORTS[@]}"
  create_database
  pgbouncer start 0
  pgbouncer start 1
  echo "Redis Cluster..."
  redis_url=$(bash "$here/redis-cluster.sh" start "$dir/redis" "$REDIS_BASE_PORT" | tail -n1)
  write_platform_env "$redis_url"
  load_platform_env
  make -s -C "$project" "$project/.venv/.installed-run-stamp"
  # Once, before the nodes start (each `make serve` migrates too, then finding nothing to do).
  "$project/.venv/bin/python" "$project/manage.py" migrate --noinput -v 0
  echo "Web nodes, Celery and nginx..."
  for port in "${WEB_PORTS[@]}"; do web_start "$port"; done
  worker_start 1
  worker_start 2
  # Exactly one beat in the whole platform.
  start_daemon "$dir/celery/beat.pid" "$dir/celery/beat.log" \
    make -s -C "$project" beat "BEAT_SCHEDULE=$dir/celery/beat-schedule"
  for port in "${WEB_PORTS[@]}"; do web_wait "$port"; done
  bash "$here/nginx.sh" start "$dir/nginx" "$NGINX_PORT" "${WEB_PORTS[@]}"
  wait_for 30 "the platform through nginx" curl -sf "http://127.0.0.1:$NGINX_PORT/readyz"
  listening
}

listening() {
  cat <<EOF

The topology is up (data, logs and pid files in $dir):
  nginx              http://127.0.0.1:$NGINX_PORT  (the platform: its one address)
  web nodes          http://127.0.0.1:${WEB_PORTS[0]}  http://127.0.0.1:${WEB_PORTS[1]}
  PgBouncer          127.0.0.1:${PGBOUNCER_PORTS[0]} -> pg1   127.0.0.1:${PGBOUNCER_PORTS[1]} -> pg2
  PostgreSQL         pg1 127.0.0.1:${PG_PORTS[0]}   pg2 127.0.0.1:${PG_PORTS[1]}
  Patroni REST API   http://127.0.0.1:$((PG_PORTS[0] + 3000))  http://127.0.0.1:$((PG_PORTS[1] + 3000))
  etcd               http://127.0.0.1:$ETCD_PORT
  Redis Cluster      127.0.0.1:$REDIS_BASE_PORT-$((REDIS_BASE_PORT + 5))
  RabbitMQ           amqp://127.0.0.1:5672/$RABBITMQ_VHOST (2 Celery workers, 1 beat)
Platform settings: $env_file
EOF
  bash "$here/patroni.sh" status "$dir/postgres" "$(leader_api)"
}

# A Patroni REST API that answers (either node's).
leader_api() {
  for port in "${PG_PORTS[@]}"; do
    curl -sf "http://127.0.0.1:$((port + 3000))/cluster" >/dev/null 2>&1 && { echo $((port + 3000)); return; }
  done
  echo $((PG_PORTS[0] + 3000))
}

stop() {
  bash "$here/nginx.sh" stop "$dir/nginx" "$NGINX_PORT"
  for port in "${WEB_PORTS[@]}"; do stop_daemon "$dir/web/$port.pid" 40; done
  stop_daemon "$dir/celery/beat.pid"
  # A worker finishes the task it holds (SIGTERM: Celery's warm shutdown).
  stop_daemon "$dir/celery/worker1.pid" 70
  stop_daemon "$dir/celery/worker2.pid" 70
  if [ -e "$dir/pgbouncer" ]; then pgbouncer stop 0; pgbouncer stop 1; fi
  bash "$here/redis-cluster.sh" stop "$dir/redis" "$REDIS_BASE_PORT"
  bash "$here/patroni.sh" stop "$dir/postgres"
  echo "The topology is stopped (its data stays in $dir)."
}

status() {
  local name
  for name in nginx/master web/${WEB_PORTS[0]} web/${WEB_PORTS[1]} celery/worker1 celery/worker2 celery/beat; do
    if is_running "$dir/$name.pid"; then echo "  $name: running"; else echo "  $name: stopped"; fi
  done
  bash "$here/redis-cluster.sh" status "$dir/redis" "$REDIS_BASE_PORT" | sed 's/^/  redis /' || true
  bash "$here/patroni.sh" status "$dir/postgres" "$(leader_api)" || echo "  Patroni: not answering"
}

case $command in
  start) start ;;
  stop) stop ;;
  status) status ;;
  web-start) load_platform_env; web_start "$3"; web_wait "$3" ;;
  web-stop) stop_daemon "$dir/web/$3.pid" 40 ;;
  worker-start) load_platform_env; worker_start "$3" ;;
  worker-kill) kill -KILL -- "-$(cat "$dir/celery/worker$3.pid")"; rm -f "$dir/celery/worker$3.pid" ;;
  pgbouncer-start) pgbouncer start "$3" ;;
  pgbouncer-stop) pgbouncer stop "$3" ;;
  postgres-kill)
    # The machine lost: its PgBouncer goes with it. (A PgBouncer left running in front of a dead
    # PostgreSQL fails each login, and libpq tries no further host after a failed login: every
    # client whose DATABASE_URL names it first would wait for it; docs/scaling.md.)
    bash "$here/patroni.sh" kill "$dir/postgres" "$3"
    bouncer_pid=$dir/pgbouncer/$3/pgbouncer.pid
    [ -s "$bouncer_pid" ] && kill -KILL "$(cat "$bouncer_pid")" 2>/dev/null || true
    rm -f "$bouncer_pid"
    ;;
  postgres-start)
    n=0; [ "$3" = pg2 ] && n=1
    bash "$here/patroni.sh" start-node "$dir/postgres" "$ETCD_PORT" "$3" "${PG_PORTS[$n]}"
    pgbouncer start "$n"
    ;;
  *) echo "usage: $0 start|stop|status [DIR]" >&2; exit 2 ;;
esac
