#!/usr/bin/env bash
# A PostgreSQL 15 primary and a synchronous standby managed by Patroni, on one etcd member: the
# topology's database tier (docs/scaling.md). Patroni alone promotes the standby when the
# primary's leader key expires in etcd; nothing of ours decides a failover.
#
# Usage: deploy/cluster/patroni.sh start|stop|status DIR ETCD_PORT PG_PORT1 PG_PORT2
#   Node N (pg1, pg2) serves PostgreSQL on PG_PORTN and Patroni's REST API on PG_PORTN + 3000.
#   Data under DIR (etcd/, pg1/, pg2/). start waits for a leader and a synchronous standby.
# Also: deploy/cluster/patroni.sh kill DIR NODE   (SIGKILL to Patroni and PostgreSQL of NODE, as
#       when its machine is lost) and  deploy/cluster/patroni.sh start-node DIR ETCD_PORT NODE PORT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

PG_BIN=/usr/lib/postgresql/15/bin
# PostgreSQL refuses to run as root: Patroni and the servers it starts run as Debian's postgres.
RUN_AS=(setpriv --reuid=postgres --regid=postgres --init-groups --reset-env)
API_OFFSET=3000

start_etcd() {
  local dir=$1 port=$2
  mkdir -p "$dir/etcd"
  # One member: enough to show Patroni's behaviour here. In production, three or five members
  # on machines of their own, so that losing one keeps a quorum (docs/scaling.md).
  start_daemon "$dir/etcd/etcd.pid" "$dir/etcd/etcd.log" etcd --name thisdb-etcd \
    --data-dir "$dir/etcd/data" \
    --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$((port + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
    --initial-cluster "thisdb-etcd=http://127.0.0.1:$((port + 1))"
  wait_for 30 "etcd on port $port" curl -sf "http://127.0.0.1:$port/health"
}

# The Patroni configuration of one node (YAML; JSON is YAML, so Python's json writes it).
write_config() {
  local dir=$1 etcd_port=$2 node=$3 port=$4
  local node_dir="$dir/$node"
  mkdir -p "$node_dir"
  python3 - "$node_dir/patroni.yml" <<EOF
import json, os, sys
on_role_change = os.environ.get("PATRONI_ON_ROLE_CHANGE_${node^^}", "")
config = {
    "scope": "thisdb",
    "name": "$node",
    "log": {"level": "INFO"},
    "restapi": {"listen": "127.0.0.1:$((port + API_OFFSET))",
                "connect_address": "127.0.0.1:$((port + API_OFFSET))"},
    "etcd3": {"hosts": ["127.0.0.1:$etcd_port"]},
    "bootstrap": {
        "dcs": {
            # The leader key lives 10 s without a renewal: a lost primary is replaced about
            # 10 s after it stops renewing (Patroni needs loop_wait + 2 x retry_timeout <= ttl).
            "ttl": 10,
            "loop_wait": 2,
            "retry_timeout": 4,
            # Only a standby that acknowledged every commit (synchronous_standby_names, set by
            # Patroni) may be promoted: an acknowledged write is never lost in a failover.
            "synchronous_mode": True,
            "postgresql": {
                # The old primary, back, rejoins as a standby of the new one.
                "use_pg_rewind": True,
                "parameters": {
                    "wal_log_hints": "on",
                    "max_connections": 100,
                    "shared_buffers": "128MB",
                    "synchronous_commit": "on",
                },
            },
        },
        "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"],
    },
    "postgresql": {
        "listen": "127.0.0.1:$port",
        "connect_address": "127.0.0.1:$port",
        "data_dir": "$node_dir/data",
        "bin_dir": "$PG_BIN",
        "pgpass": "$node_dir/pgpass",
        # Loopback only, trusted: one machine, no network between the nodes. Production sets
        # passwords here and scram-sha-256 in pg_hba.
        "pg_hba": [
            "local all all trust",
            "host replication replicator 127.0.0.1/32 trust",
            "host all all 127.0.0.1/32 trust",
        ],
        "authentication": {
            "superuser": {"username": "postgres", "password": "postgres"},
            "replication": {"username": "replicator", "password": "replicator"},
            "rewind": {"username": "postgres", "password": "postgres"},
        },
        "parameters": {"unix_socket_directories": "$node_dir"},
        # PATRONI_ON_ROLE_CHANGE_<NODE>: a command Patroni runs when the node is promoted or
        # demoted (with the action, role and scope after it): cluster.sh restarts its PgBouncer.
        **({"callbacks": {"on_role_change": on_role_change}} if on_role_change else {}),
    },
}
with open(sys.argv[1], "w") as out:
    json.dump(config, out, indent=2)
EOF
  chown -R postgres:postgres "$node_dir"
}

start_node() {
  local dir=$1 etcd_port=$2 node=$3 port=$4
  write_config "$dir" "$etcd_port" "$node" "$port"
  # Patroni's pid file and log stay root's, beside the node's folder that postgres owns.
  start_daemon "$dir/$node.pid" "$dir/$node.log" "${RUN_AS[@]}" \
    env HOME="$dir/$node" PATH="$PG_BIN:/usr/sbin:/usr/bin:/bin" patroni "$dir/$node/patroni.yml"
}

# The REST API's answer about the cluster: who leads, who is the synchronous standby.
cluster_json() {
  curl -sf "http://127.0.0.1:$1/cluster"
}

has_sync_standby() {
  cluster_json "$1" | python3 -c '
import json, sys
members = json.load(sys.stdin)["members"]
roles = {m["role"] for m in members if m["state"] == "running" or m["role"] == "leader"}
sys.exit(0 if "leader" in roles and "sync_standby" in roles else 1)'
}

status() {
  local api=$1
  cluster_json "$api" | python3 -c '
import json, sys
for m in json.load(sys.stdin)["members"]:
    print("  {name}: {role}, {state}, PostgreSQL {host}:{port}, REST API {api_url}".format(**m))'
}

# pg1 and pg2, the one Patroni names leader last (as its REST API says, if it answers).
nodes_leader_last() {
  local dir=$1 node api leader=""
  for node in pg1 pg2; do
    [ -s "$dir/$node/patroni.yml" ] || continue
    api=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["restapi"]["listen"])' \
      "$dir/$node/patroni.yml")
    leader=$(curl -sf "http://$api/cluster" | python3 -c '
import json, sys
print(next((m["name"] for m in json.load(sys.stdin)["members"] if m["role"] == "leader"), ""))
' 2>/dev/null) && [ -n "$leader" ] && break
  done
  for node in pg1 pg2; do [ "$node" != "$leader" ] && echo "$node"; done
  [ -n "$leader" ] && echo "$leader"
  return 0
}

kill_node() {
  local dir=$1 node=$2 postmaster
  # The machine is gone: Patroni and PostgreSQL die at once, nothing shuts down cleanly.
  if [ -s "$dir/$node/data/postmaster.pid" ]; then
    postmaster=$(head -n1 "$dir/$node/data/postmaster.pid")
    kill -KILL "$postmaster" 2>/dev/null || true
  fi
  [ -s "$dir/$node.pid" ] && kill -KILL "$(cat "$dir/$node.pid")" 2>/dev/null || true
  # The postmaster's children notice its death and exit on their own.
  rm -f "$dir/$node.pid"
}

stop_node() {
  local dir=$1 node=$2 postmaster
  # SIGTERM: Patroni stops PostgreSQL (a fast shutdown) and gives up the leader key.
  stop_daemon "$dir/$node.pid" 60
  if [ -s "$dir/$node/data/postmaster.pid" ]; then
    postmaster=$(head -n1 "$dir/$node/data/postmaster.pid")
    if kill -0 "$postmaster" 2>/dev/null; then
      kill -INT "$postmaster" 2>/dev/null || true  # PostgreSQL's fast shutdown
      for _ in $(seq 100); do kill -0 "$postmaster" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
}

command=${1:-}
dir=${2:-}
[ -n "$command" ] && [ -n "$dir" ] || {
  echo "usage: $0 start|stop|status DIR ETCD_PORT PG_PORT1 PG_PORT2 | kill DIR NODE" >&2
  exit 2
}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

case $command in
  start)
    etcd_port=$3 port1=$4 port2=$5
    start_etcd "$dir" "$etcd_port"
    start_node "$dir" "$etcd_port" pg1 "$port1"
    # The first node bootstraps alone; the second then copies it (pg_basebackup).
    wait_for 90 "PostgreSQL on port $port1" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port1"
    start_node "$dir" "$etcd_port" pg2 "$port2"
    wait_for 120 "a synchronous standby" has_sync_standby $((port1 + API_OFFSET))
    ;;
  start-node)
    start_node "$dir" "$3" "$4" "$5"
    ;;
  stop)
    # The standby first: the leader stopping first would hand its role over for nothing.
    for node in $(nodes_leader_last "$dir"); do stop_node "$dir" "$node"; done
    stop_daemon "$dir/etcd/etcd.pid"
    ;;
  kill)
    kill_node "$dir" "$3"
    ;;
  status)
    status "$3"
    ;;
  *)
    echo "usage: $0 start|stop|status DIR ... (see the comment at its top)" >&2
    exit 2
    ;;
esac
