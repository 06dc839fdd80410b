#!/usr/bin/env bash
# Full-stack A/B: the reference deployment (memory backend, demo config with
# limits lifted) built at two commits, driven by wrk with bob's real RS256
# token on GET /api/reports, alternating builds. Prints req/s, p99 and server
# CPU µs per request (utime+stime of the gateway over the measured run).
#
# usage: BASE=path/to/enterprise_gateway NEW=path/to/enterprise_gateway \
#        CONFIG=bench.toml [BARE=target/release/bare] [DUR=10] [ROUNDS=3] \
#        [ORDER=reverse] benches/fullstack-ab.sh
# BARE: bare hyper answering "ok" (`cargo build --release -p kailash-benches
# --bin bare`), loaded with the same wrk settings each round; the gateway's
# ratio to it is printed per round.
# CONFIG: the demo config with its rate limits raised (rate/burst 1000000
# per 1s) and acme's max_api_calls_per_day at 4000000000, listening on
# 127.0.0.1:18080 — every request then takes the allowed path. Needs wrk
# (Debian package) and curl. Loopback only; each run is bounded by DUR.
set -euo pipefail
: "${BASE:?}" "${NEW:?}" "${CONFIG:?}"
DUR=${DUR:-10}; ROUNDS=${ROUNDS:-3}
tick=$(getconf CLK_TCK)
run() {
  local name=$1 bin=$2
  local dir; dir=$(mktemp -d)
  "$bin" --config "$CONFIG" --data-dir "$dir" --listen 127.0.0.1:18080 >"$dir/log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -sf 127.0.0.1:18080/health/live >/dev/null 2>&1 && break; sleep 0.1; done
  local token
  token=$(curl -sf -X POST 127.0.0.1:18080/auth/login -H 'content-type: application/json' \
    -d '{"username":"bob","password":"Bob-Demo-Passw0rd!"}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["access_token"])')
  local code; code=$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $token" 127.0.0.1:18080/api/reports)
  [ "$code" = 200 ] || { echo "$name: /api/reports answered $code"; cat "$dir/log" | tail -5; kill $pid; exit 1; }
  wrk -t2 -c50 -d2s -H "authorization: Bearer $token" http://127.0.0.1:18080/api/reports >/dev/null
  local before; before=$(awk '{print $14+$15}' /proc/$pid/stat)
  local out; out=$(wrk -t2 -c50 -d${DUR}s --latency -H "authorization: Bearer $token" http://127.0.0.1:18080/api/reports)
  local after; after=$(awk '{print $14+$15}' /proc/$pid/stat)
  kill $pid; wait $pid 2>/dev/null || true
  local reqs rps p99 non2xx
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  local cpu_us; cpu_us=$(python3 -c "print(round(($after-$before)/$tick*1e6/$reqs,1))")
  local audit; audit=$(wc -l < "$dir/audit.jsonl" 2>/dev/null || echo 0)
  printf '%-6s %10s req/s  p99 %-8s  srv %6s us/req  non2xx %s  audit lines %s\n' "$name" "$rps" "$p99" "$cpu_us" "${non2xx:-0}" "$audit"
  rm -rf "$dir"
}
bare() {
  "$BARE" 127.0.0.1:18081 >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -sf 127.0.0.1:18081/ >/dev/null 2>&1 && break; sleep 0.1; done
  wrk -t2 -c50 -d2s http://127.0.0.1:18081/ >/dev/null
  local before; before=$(awk '{print $14+$15}' /proc/$pid/stat)
  local out; out=$(wrk -t2 -c50 -d${DUR}s --latency http://127.0.0.1:18081/)
  local after; after=$(awk '{print $14+$15}' /proc/$pid/stat)
  kill $pid; wait $pid 2>/dev/null || true
  local reqs rps p99
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  local cpu_us; cpu_us=$(python3 -c "print(round(($after-$before)/$tick*1e6/$reqs,1))")
  printf '%-6s %10s req/s  p99 %-8s  srv %6s us/req\n' bare "$rps" "$p99" "$cpu_us"
}
for r in $(seq 1 "$ROUNDS"); do
  if [ -n "${BARE:-}" ]; then bare; fi
  if [ "${ORDER:-}" = reverse ]; then
    run new "$NEW"
    run base "$BASE"
  else
    run base "$BASE"
    run new "$NEW"
  fi
done
