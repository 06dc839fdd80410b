# Shared by .ci/redis-cluster/cluster.sh and .ci/redis-sentinel/sentinel.sh
# (sourced): the servers of a throwaway set each keep `<dir>/<port>/redis.pid`.

# stop_servers <dir>: SIGTERM every server of the set, then wait (up to 5 s
# each) until it is gone.
stop_servers() {
  local pidfile
  for pidfile in "$1"/*/redis.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  for pidfile in "$1"/*/redis.pid; do
    [ -f "$pidfile" ] || continue
    local pid; pid=$(cat "$pidfile")
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
}
