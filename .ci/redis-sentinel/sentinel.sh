#!/usr/bin/env bash
# A throwaway Redis Sentinel set for the tests: a primary, a replica and
# three sentinels (redis-server --sentinel) on spare loopback ports,
# monitoring the primary as `kailash` with a quorum of 2 and a 1 s
# down-after. Never touches the shared Redis on 6379.
#
# usage: .ci/redis-sentinel/sentinel.sh start <dir>   # prints the Sentinel URL
#        .ci/redis-sentinel/sentinel.sh stop <dir>
#        .ci/redis-sentinel/sentinel.sh kill-primary <dir>  # SIGKILLs the primary, prints its port
set -euo pipefail
# shellcheck source=../redis-common.sh
. "$(dirname "$0")/../redis-common.sh"

cmd=${1:?usage: sentinel.sh start|stop|kill-primary <dir>}
dir=${2:?usage: sentinel.sh start|stop|kill-primary <dir>}
name=kailash

spare_ports() {
  python3 -c 'import socket
s=[socket.socket() for _ in range(5)]
[x.bind(("127.0.0.1", 0)) for x in s]
print(*[x.getsockname()[1] for x in s])'
}

primary_port() {
  local sentinel
  for sentinel in $(cat "$dir/sentinels"); do
    if reply=$(redis-cli -p "$sentinel" sentinel get-master-addr-by-name "$name" 2>/dev/null); then
      sed -n 2p <<<"$reply"
      return 0
    fi
  done
  return 1
}

case "$cmd" in
start)
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
    echo "sentinel.sh: redis-server and redis-cli are needed" >&2
    exit 1
  }
  mkdir -p "$dir"
  read -r primary replica s1 s2 s3 <<<"$(spare_ports)"
  for port in "$primary" "$replica"; do
    mkdir -p "$dir/$port"
    extra=()
    [ "$port" = "$replica" ] && extra=(--replicaof 127.0.0.1 "$primary")
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$dir/$port" \
      --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log" \
      --save "" --appendonly no "${extra[@]}"
  done
  for port in "$s1" "$s2" "$s3"; do
    mkdir -p "$dir/$port"
    cat >"$dir/$port/sentinel.conf" <<EOF
bind 127.0.0.1
port $port
daemonize yes
dir $dir/$port
pidfile $dir/$port/redis.pid
logfile $dir/$port/redis.log
sentinel monitor $name 127.0.0.1 $primary 2
sentinel down-after-milliseconds $name 1000
sentinel failover-timeout $name 5000
sentinel parallel-syncs $name 1
EOF
    redis-server "$dir/$port/sentinel.conf" --sentinel
  done
  echo "$s1 $s2 $s3" >"$dir/sentinels"
  echo "$primary $replica" >"$dir/servers"
  # The replica must have finished its first sync (or it cannot take
  # over), and every sentinel must know the replica and the others.
  ok=""
  for _ in $(seq 1 200); do
    if redis-cli -p "$replica" info replication 2>/dev/null | tr -d '\r' | grep -q '^master_link_status:up'; then
      ok=1
      break
    fi
    sleep 0.1
  done
  [ -n "$ok" ] || { echo "sentinel.sh: the replica never finished its first sync" >&2; exit 1; }
  for port in "$s1" "$s2" "$s3"; do
    ok=""
    for _ in $(seq 1 300); do
      info=$(redis-cli -p "$port" sentinel master "$name" 2>/dev/null | tr -d '\r' || true)
      replicas=$(awk 'prev == "num-slaves" { print } { prev = $0 }' <<<"$info")
      others=$(awk 'prev == "num-other-sentinels" { print } { prev = $0 }' <<<"$info")
      if [ "${replicas:-0}" -ge 1 ] && [ "${others:-0}" -ge 2 ]; then
        ok=1
        break
      fi
      sleep 0.1
    done
    [ -n "$ok" ] || { echo "sentinel.sh: sentinel $port never saw the replica and the other sentinels" >&2; exit 1; }
  done
  echo "redis+sentinel://127.0.0.1:$s1,127.0.0.1:$s2,127.0.0.1:$s3/$name"
  ;;
stop)
  stop_servers "$dir"
  ;;
kill-primary)
  port=$(primary_port) || { echo "sentinel.sh: no sentinel names a primary" >&2; exit 1; }
  kill -9 "$(cat "$dir/$port/redis.pid")"
  echo "$port"
  ;;
*)
  echo "usage: sentinel.sh start|stop|kill-primary <dir>" >&2
  exit 2
  ;;
esac
