#!/usr/bin/env bash
# A Redis Cluster of three masters with a replica each, on one machine (loopback), from Debian's
# redis-server: six processes on BASE_PORT..BASE_PORT+5, each with its data, log, pid file and
# cluster config under DIR/<port>/.
#
# Usage: deploy/cluster/redis-cluster.sh start|stop|status DIR BASE_PORT
#   start   starts the nodes that are not running, creates the cluster once (a restarted node
#           rejoins from its nodes.conf), waits for cluster_state:ok and prints the seed URL
#           (REDIS_URL, with REDIS_CLUSTER=true). Running it again changes nothing.
#   stop    stops the nodes (SHUTDOWN: each writes its append-only file); removes nothing.
#   status  each node's pid and role, and the cluster's state; exits 1 unless all six run and
#           the cluster is ok.
# REDIS_CLUSTER_NODE_TIMEOUT (ms, default 2000): how long a master may not answer before its
# replica is promoted. Redis's default of 15 s would leave a slot without a master that long;
# on loopback a node that misses 2 s is gone, not slow.
set -euo pipefail

usage() { echo "usage: $0 start|stop|status DIR BASE_PORT" >&2; exit 2; }
[ $# -eq 3 ] || usage
action=$1
dir=$2
base=$3
case "$base" in '' | *[!0-9]*) usage ;; esac
node_timeout=${REDIS_CLUSTER_NODE_TIMEOUT:-2000}
ports=()
for i in 0 1 2 3 4 5; do ports+=($((base + i))); done

answers() { redis-cli -h 127.0.0.1 -p "$1" ping >/dev/null 2>&1; }
info_field() { # info_field PORT FIELD: a field of CLUSTER INFO
  redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"
}

role() { redis-cli -h 127.0.0.1 -p "$1" role 2>/dev/null | sed -n 1p; }

start_node() {
  local port=$1 home="$dir/$1"
  mkdir -p "$home"
  # --save "": the append-only file alone keeps the data (fsync once a second). A replica syncs
  # at once (Redis waits 5 s to batch several replicas' syncs; each master here has one): one
  # that never synced cannot be promoted.
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$home" \
    --pidfile "$home/redis.pid" --logfile "$home/redis.log" \
    --cluster-enabled yes --cluster-config-file nodes.conf \
    --cluster-node-timeout "$node_timeout" \
    --appendonly yes --save "" --repl-diskless-sync-delay 0
  for _ in $(seq 100); do answers "$port" && return 0; sleep 0.1; done
  echo "redis-server on port $port did not start: see $home/redis.log" >&2
  exit 1
}

# Ready: every node says cluster_state:ok and every replica is in sync with its master (until
# then, a master that fails has no replica to promote).
wait_until_ok() {
  for _ in $(seq 300); do
    local ok=1
    for port in "${ports[@]}"; do
      [ "$(info_field "$port" cluster_state)" = ok ] || { ok=0; break; }
      if [ "$(role "$port")" = slave ]; then
        case "$(redis-cli -h 127.0.0.1 -p "$port" info replication 2>/dev/null)" in
          *master_link_status:up*) ;;
          *) ok=0; break ;;
        esac
      fi
    done
    [ $ok = 1 ] && return 0
    sleep 0.1
  done
  echo "the cluster on ports ${ports[0]}-${ports[5]} did not reach cluster_state:ok in 30 s" >&2
  exit 1
}

case "$action" in
  start)
    bash "$(dirname "$0")/../ensure-packages.sh" redis-server
    mkdir -p "$dir"
    for port in "${ports[@]}"; do answers "$port" || start_node "$port"; done
    # Created once: afterwards every node knows the slots from its nodes.conf.
    if [ "$(info_field "${ports[0]}" cluster_slots_assigned)" != 16384 ]; then
      nodes=()
      for port in "${ports[@]}"; do nodes+=("127.0.0.1:$port"); done
      redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes \
        >"$dir/create.log" 2>&1 || { cat "$dir/create.log" >&2; exit 1; }
    fi
    wait_until_ok
    echo "redis://127.0.0.1:${ports[0]}"
    ;;
  stop)
    for port in "${ports[@]}"; do
      answers "$port" || continue
      redis-cli -h 127.0.0.1 -p "$port" shutdown >/dev/null 2>&1 || true
      for _ in $(seq 100); do answers "$port" || break; sleep 0.1; done
    done
    ;;
  status)
    healthy=1
    for port in "${ports[@]}"; do
      if answers "$port"; then
        echo "127.0.0.1:$port pid $(cat "$dir/$port/redis.pid" 2>/dev/null || echo '?') $(role "$port")"
      else
        echo "127.0.0.1:$port down"
        healthy=0
      fi
    done
    state=$(info_field "${ports[0]}" cluster_state)
    echo "cluster_state:${state:-unknown}"
    [ "$healthy" = 1 ] && [ "$state" = ok ] || exit 1
    ;;
  *) usage ;;
esac
