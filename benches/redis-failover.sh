#!/usr/bin/env bash
# The gateway under load while Redis fails over.
#
# Starts a throwaway Redis Cluster (.ci/redis-cluster/cluster.sh) or
# Sentinel set (.ci/redis-sentinel/sentinel.sh) on spare ports, the
# reference deployment on it (the bench config of benches/lib/bench_config.py:
# limits out of the way), logs bob in, and loads GET /api/reports with wrk
# for DUR seconds. KILL_AT seconds in, one primary is SIGKILLed. A probe
# beside wrk asks every 50 ms and records when answers stopped being 200
# and when they were 200 again. Prints the answers by status (from the
# gateway's own metrics), the recovery time, and checks that every admitted
# request has its audit entry (the trail is a file, not in Redis). Never
# touches the shared Redis on 6379; everything listens on 127.0.0.1.
#
# usage: [TOPOLOGY=cluster|sentinel] [DUR=20] [KILL_AT=5] [CONNECTIONS=20]
#        [NEW=target/release/enterprise_gateway] [PORT=18290] benches/redis-failover.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
TOPOLOGY=${TOPOLOGY:-cluster}
DUR=${DUR:-20}
KILL_AT=${KILL_AT:-5}
CONNECTIONS=${CONNECTIONS:-20}
NEW=${NEW:-$root/target/release/enterprise_gateway}
PORT=${PORT:-18290}
die() { echo "redis-failover.sh: $*" >&2; exit 1; }
case "$TOPOLOGY" in
  cluster) script=$root/.ci/redis-cluster/cluster.sh ;;
  sentinel) script=$root/.ci/redis-sentinel/sentinel.sh ;;
  *) die "TOPOLOGY is cluster or sentinel" ;;
esac
for tool in wrk curl python3 redis-server; do
  command -v "$tool" >/dev/null || die "needs $tool"
done
[ -x "$NEW" ] || die "no gateway at $NEW: (cd $root && cargo build --release -p kailash-examples --bin enterprise_gateway)"

work=$(mktemp -d -t kailash-failover.XXXXXX)
gw_pid=""
probe_pid=""
cleanup() {
  [ -z "$probe_pid" ] || kill "$probe_pid" 2>/dev/null || true
  if [ -n "$gw_pid" ] && kill -0 "$gw_pid" 2>/dev/null; then
    kill -TERM "$gw_pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$gw_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  "$script" stop "$work/redis" >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

url=$("$script" start "$work/redis") || die "could not start the $TOPOLOGY"
echo "redis-failover: $TOPOLOGY at $url; wrk -t2 -c$CONNECTIONS -d${DUR}s, primary killed at ${KILL_AT}s"
python3 "$here/lib/bench_config.py" "$root/examples/config/enterprise.toml" "$work/bench.toml" "kailash-failover-bench:"
mkdir -p "$work/data"
KAILASH_REDIS_URL="$url" "$NEW" --config "$work/bench.toml" --data-dir "$work/data" \
  --listen "127.0.0.1:$PORT" >"$work/gateway.log" 2>&1 &
gw_pid=$!
for _ in $(seq 1 300); do
  curl -s -o /dev/null --max-time 1 "127.0.0.1:$PORT/health/live" && break
  kill -0 "$gw_pid" 2>/dev/null || { tail -5 "$work/gateway.log"; die "the gateway did not start"; }
  sleep 0.1
done
token=$(curl -sf -X POST "127.0.0.1:$PORT/auth/login" -H 'content-type: application/json' \
  -d '{"username":"bob","password":"Bob-Demo-Passw0rd!"}' |
  python3 -c 'import sys,json;print(json.load(sys.stdin)["access_token"])') || die "login as bob failed"
target="http://127.0.0.1:$PORT/api/reports"

# The probe: one request every 50 ms, "<unix time> <status>" per line.
python3 - "$target" "$token" "$work/probe.txt" <<'PY' &
import sys, time, urllib.request, urllib.error
url, token, out = sys.argv[1:4]
with open(out, "w", buffering=1) as f:
    while True:
        req = urllib.request.Request(url, headers={"authorization": f"Bearer {token}"})
        try:
            code = urllib.request.urlopen(req, timeout=5).status
        except urllib.error.HTTPError as e:
            code = e.code
        except Exception:
            code = 0
        f.write(f"{time.time():.3f} {code}\n")
        time.sleep(0.05)
PY
probe_pid=$!
wrk -t2 -c"$CONNECTIONS" -d"${DUR}s" -H "authorization: Bearer $token" "$target" >"$work/wrk.txt" &
wrk_pid=$!
sleep "$KILL_AT"
kill_at=$(date +%s.%N)
killed=$("$script" kill-primary "$work/redis") || die "could not kill a primary"
echo "redis-failover: killed the primary on port $killed"
wait "$wrk_pid"
kill "$probe_pid" 2>/dev/null || true
wait "$probe_pid" 2>/dev/null || true
probe_pid=""
sleep 0.5
curl -sf "127.0.0.1:$PORT/metrics" >"$work/metrics.txt" || die "no /metrics"
kill -TERM "$gw_pid"
for _ in $(seq 1 600); do kill -0 "$gw_pid" 2>/dev/null || break; sleep 0.1; done
gw_pid=""

python3 - "$work/wrk.txt" "$work/probe.txt" "$work/metrics.txt" "$work/data/audit.jsonl" "$kill_at" <<'PY'
import collections, glob, gzip, json, os, re, sys
wrk, probe, metrics, audit, kill_at = sys.argv[1:5] + [float(sys.argv[5])]
t = open(wrk).read()
total = int(re.search(r"(\d+) requests in", t).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
by_status = collections.Counter()
for line in open(metrics):
    m = re.match(r'http_requests_total\{([^}]*)\}\s+(\d+)', line)
    if m and 'route="/api/reports"' in m.group(1):
        status = re.search(r'status="([^"]+)"', m.group(1)).group(1)
        by_status[status] += int(m.group(2))
print(f"wrk: {total} requests, {rps:.0f} req/s over the run")
print("answers on /api/reports by status: " + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())))
# Probe times relative to the kill.
samples = [(float(a) - kill_at, int(b)) for a, b in (l.split() for l in open(probe) if l.strip())]
kill_at = 0.0
after = [(ts, code) for ts, code in samples if ts >= kill_at - 0.5]
first_bad = next((ts for ts, code in after if code != 200), None)
if first_bad is None:
    print("probe: every answer 200 through the failover")
else:
    last_bad = max(ts for ts, code in after if code != 200)
    codes = collections.Counter(code for ts, code in after if code != 200)
    print(f"probe: first non-200 {first_bad:+.2f}s from the kill, last {last_bad:+.2f}s "
          f"(answers {dict(codes)}): 200 again {last_bad:.2f}s after the kill")
    if any(c not in (503,) for c in codes):
        print("FAILED: refusals other than 503 during the failover")
        sys.exit(1)
    if last_bad > samples[-1][0] - 1:
        print("FAILED: not recovered by the end of the run")
        sys.exit(1)
# Every admitted request has its audit entry.
stem, ext = os.path.splitext(audit)
segments = sorted(glob.glob(f"{stem}-[0-9]*{ext}") + glob.glob(f"{stem}-[0-9]*{ext}.gz"))
allow = 0
for seg in segments + [audit]:
    opener = gzip.open if seg.endswith(".gz") else open
    with opener(seg, "rb") as f:
        for line in f:
            e = json.loads(line)
            if e.get("a") == "access.check" and e.get("d") == "allow":
                allow += 1
answered = by_status.get("2xx", 0)
print(f"audit: {allow} allow decisions for {answered} 2xx answers")
if allow < answered:
    print("FAILED: an admitted request has no audit entry")
    sys.exit(1)
PY
