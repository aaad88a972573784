# Shared by the scripts of deploy/cluster/: daemons started in a session of their own with a pid
# file, stopped by that pid file, and waits with a deadline. Source it; it defines functions only.

# start_daemon PIDFILE LOG COMMAND...: runs COMMAND in the background as the leader of a new
# session (so stopping it reaches its children too), output to LOG, its pid in PIDFILE.
# Nothing is started when PIDFILE names a live process.
start_daemon() {
  local pidfile=$1 log=$2
  shift 2
  if is_running "$pidfile"; then return 0; fi
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$log")"
  setsid "$@" >>"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

# is_running PIDFILE: whether the pid it holds is a live process.
is_running() {
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# stop_daemon PIDFILE [SECONDS]: SIGTERM to the process's session (its whole group), SIGKILL
# after SECONDS (default 30) if it is still there, then the pid file removed. A missing pid file
# or a dead process is fine: stopping twice is safe.
stop_daemon() {
  local pidfile=$1 seconds=${2:-30} pid
  [ -s "$pidfile" ] || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $((seconds * 10))); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "  $pidfile: pid $pid still running after ${seconds}s, killing it" >&2
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

# wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds; fails saying WHAT after SECONDS.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq $((seconds * 5))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "$what did not come up within ${seconds}s" >&2
  return 1
}

# port_open PORT: whether something accepts connections on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
