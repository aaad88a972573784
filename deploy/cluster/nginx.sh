#!/usr/bin/env bash
# nginx in front of the topology's web nodes, serving the shipped site's own snippets
# (deploy/nginx/snippets/, linked, not copied) with an upstream of every node and a plain HTTP
# listener on loopback: the shipped deploy/nginx/thisdb.conf minus TLS and its port-80 redirect.
#
# Usage: deploy/cluster/nginx.sh start|stop DIR PORT [WEB_PORT...]
#   start writes DIR/nginx.conf and runs nginx (master and one worker) from Debian's package;
#   every request is logged twice: DIR/access.log in the shipped `thisdb` format and
#   DIR/upstreams.log, which names the node that answered (the cluster tests read it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

[ $# -ge 3 ] || { echo "usage: $0 start|stop DIR PORT [WEB_PORT...]" >&2; exit 2; }
command=$1 dir=$2 port=$3
shift 3
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

case $command in
  start)
    bash "$project/deploy/ensure-packages.sh" nginx
    mkdir -p "$dir/tmp"
    ln -sfn "$project/deploy/nginx/snippets" "$dir/snippets"
    servers=""
    for web in "$@"; do servers+="        server 127.0.0.1:$web;"$'\n'; done
    cat >"$dir/nginx.conf" <<CONF
# Written by deploy/cluster/nginx.sh: the site of deploy/nginx/thisdb.conf for the topology.
daemon off;  # the script keeps the master's pid
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }

http {
    # Everything nginx writes stays in $dir.
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;

    include snippets/thisdb-http.conf;
    log_format upstreams '\$msec \$request_method \$status \$upstream_addr \$upstream_status';

    upstream thisdb {
$servers        # As in deploy/nginx/thisdb.conf.
        keepalive 32;
        keepalive_timeout 4s;
    }

    server {
        listen 127.0.0.1:$port;
        access_log $dir/access.log thisdb;
        access_log $dir/upstreams.log upstreams;
        include snippets/thisdb-server.conf;
    }
}
CONF
    nginx -t -q -p "$dir" -c "$dir/nginx.conf"
    start_daemon "$dir/master.pid" "$dir/nginx.out" nginx -p "$dir" -c "$dir/nginx.conf"
    wait_for 20 "nginx on port $port" port_open "$port"
    ;;
  stop)
    # SIGQUIT: the workers finish the requests they hold, then exit.
    if is_running "$dir/master.pid"; then kill -QUIT "$(cat "$dir/master.pid")" 2>/dev/null || true; fi
    stop_daemon "$dir/master.pid" 20
    ;;
  *)
    echo "usage: $0 start|stop DIR PORT [WEB_PORT...]" >&2
    exit 2
    ;;
esac
