#!/usr/bin/env bash
# A throwaway Redis Cluster for the tests: three primaries and three
# replicas of the machine's redis-server on spare loopback ports (each also
# needs its cluster-bus port, +10000), joined with `redis-cli --cluster
# create`. Never touches the shared Redis on 6379.
#
# usage: .ci/redis-cluster/cluster.sh start <dir>   # prints the seed URL
#        .ci/redis-cluster/cluster.sh stop <dir>
#        .ci/redis-cluster/cluster.sh kill-primary <dir>  # SIGKILLs one primary, prints its port
set -euo pipefail
# shellcheck source=../redis-common.sh
. "$(dirname "$0")/../redis-common.sh"

cmd=${1:?usage: cluster.sh start|stop|kill-primary <dir>}
dir=${2:?usage: cluster.sh start|stop|kill-primary <dir>}

# Six ports p with p and p + 10000 both free on 127.0.0.1.
spare_ports() {
  python3 - <<'EOF'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
picked = []
for p in random.sample(range(20000, 29990), 4000):
    if free(p) and free(p + 10000):
        picked.append(p)
    if len(picked) == 6:
        break
print(*picked)
EOF
}

case "$cmd" in
start)
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
    echo "cluster.sh: redis-server and redis-cli are needed" >&2
    exit 1
  }
  mkdir -p "$dir"
  read -r -a ports <<<"$(spare_ports)"
  [ "${#ports[@]}" -eq 6 ] || { echo "cluster.sh: no six spare ports" >&2; exit 1; }
  for port in "${ports[@]}"; do
    mkdir -p "$dir/$port"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" \
      --dir "$dir/$port" --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log" \
      --cluster-enabled yes --cluster-config-file "$dir/$port/nodes.conf" \
      --cluster-node-timeout 2000 --save "" --appendonly no
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 1 50); do
      redis-cli -p "$port" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
  nodes=()
  for port in "${ports[@]}"; do nodes+=("127.0.0.1:$port"); done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 || {
    cat "$dir/create.log" >&2
    exit 1
  }
  # Every node must see a healthy cluster before the tests start.
  for port in "${ports[@]}"; do
    ok=""
    for _ in $(seq 1 100); do
      if redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; then
        ok=1
        break
      fi
      sleep 0.1
    done
    [ -n "$ok" ] || { echo "cluster.sh: node $port never saw cluster_state:ok" >&2; exit 1; }
  done
  # Every replica must have finished its first sync: one that has not
  # cannot take over (a failover test would wait forever).
  for port in "${ports[@]}"; do
    ok=""
    for _ in $(seq 1 200); do
      info=$(redis-cli -p "$port" info replication 2>/dev/null | tr -d '\r')
      if grep -q '^role:master' <<<"$info" || grep -q '^master_link_status:up' <<<"$info"; then
        ok=1
        break
      fi
      sleep 0.1
    done
    [ -n "$ok" ] || { echo "cluster.sh: replica $port never finished its first sync" >&2; exit 1; }
  done
  echo "${ports[*]}" >"$dir/ports"
  seeds=$(printf '127.0.0.1:%s,' "${ports[@]:0:3}")
  echo "redis+cluster://${seeds%,}"
  ;;
stop)
  stop_servers "$dir"
  ;;
kill-primary)
  read -r -a ports <"$dir/ports"
  for port in "${ports[@]}"; do
    if redis-cli -p "$port" role 2>/dev/null | head -1 | grep -q '^master$'; then
      kill -9 "$(cat "$dir/$port/redis.pid")"
      echo "$port"
      exit 0
    fi
  done
  echo "cluster.sh: no primary left to kill" >&2
  exit 1
  ;;
*)
  echo "usage: cluster.sh start|stop|kill-primary <dir>" >&2
  exit 2
  ;;
esac
