#!/usr/bin/env bash
# Workflow runs per second through the reference deployment's HTTP API
# (issue 14 item 8): wrk drives `POST /api/sessions/{sid}/executions` as
# dave (data_scientist, tenant acme) through the whole stack — token,
# session, tenant, limits and quota, `workflow:execute` decided and
# audited, the runtime's run decision, concurrency slots and run record —
# and the runs execute in the gateway while the load goes on.
#
# Two workflows, each loaded in turn:
#   chain10  10 `transform` nodes wired node to node, each `{"expression": "x"}`
#            (pass-through of a small JSON object)
#   single   one such node
# on the memory backend and, with REDIS_URL, on Redis (all state there).
#
# Reported per (backend, workflow): accepted runs/s (202s only, counted by
# wrk's Lua `response()`), other statuses, p50/p99 of the answers (the 202
# when every answer was one), runs whose outcome `workflow.run` success is
# in the audit trail (during the load, and after it once drained), failed
# or abandoned ones, and the gateway's CPU per accepted run (load + drain).
#
# The config is the demo's (examples/config/enterprise.toml) with every
# limit out of the way, derived at run time and checked with tomllib: rate
# limits and acme's daily quota (as fullstack.sh), the runtime's
# max_concurrent_workflows (process, tenant, user) at 1 000 000, each role's
# max_executions_per_hour at 1 000 000 000, no process_memory_watermark_mb,
# and no size rotation of the audit file (one file to count).
#
# It builds nothing. Everything listens on 127.0.0.1. Whole run with the
# defaults: about 1.5–2.5 min (the drain wait is at most DRAIN s per load).
#
# usage: [BIN=target/release/enterprise_gateway] [DUR=10] [THREADS=2]
#        [CONNECTIONS=32] [DRAIN=30] [ONLY=chain10,single]
#        [REDIS_URL=redis://127.0.0.1:6379] [REDIS_DB=10] [PORT=18290]
#        [KEEP=1] benches/runtime_http.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BIN=${BIN:-$root/target/release/enterprise_gateway}
CONFIG_SRC=${CONFIG_SRC:-$root/examples/config/enterprise.toml}
DUR=${DUR:-10}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
DRAIN=${DRAIN:-30}
ONLY=${ONLY:-chain10,single}
REDIS_URL=${REDIS_URL:-}
REDIS_DB=${REDIS_DB:-10}
PORT=${PORT:-18290}
KEEP=${KEEP:-}
# Unique per run: the Redis keys of this run are exactly those under it.
PREFIX="kailash-runtime-bench-$$-$(date +%s):"

die() { echo "runtime_http.sh: $*" >&2; exit 1; }

for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || die "needs $tool (Debian: apt-get install $tool)"
done
[ -x "$BIN" ] || die "no $BIN; build it: (cd $root && cargo build --release -p kailash-examples --bin enterprise_gateway)"
if [ -n "$REDIS_URL" ]; then
  command -v redis-cli >/dev/null || die "needs redis-cli for the Redis run (or leave REDIS_URL unset)"
  redis-cli -u "$REDIS_URL/$REDIS_DB" ping >/dev/null 2>&1 || die "no Redis at $REDIS_URL"
fi
curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/" && die "port $PORT is taken (set PORT=)"

work=$(mktemp -d -t kailash-runtime-http.XXXXXX)
pids=""
redis_clean() { # deletes this run's keys (and only those)
  [ -n "$REDIS_URL" ] || return 0
  redis-cli -u "$REDIS_URL/$REDIS_DB" --scan --pattern "${PREFIX}*" |
    xargs -r -n 500 redis-cli -u "$REDIS_URL/$REDIS_DB" del >/dev/null
}
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  redis_clean || true
  if [ -n "$KEEP" ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
tick=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# ---- the bench config ---------------------------------------------------------
python3 - "$CONFIG_SRC" "$work/bench.toml" "$PREFIX" <<'PY'
import re, sys, tomllib
src, dst, prefix = sys.argv[1:4]
lines = open(src, encoding="utf-8").read().splitlines()
LIMITS = {"rate": "1000000", "per": '"1s"', "burst": "1000000"}
BIG = "1000000"
out, section, block = [], None, []
def flush():
    """Rewrite one section (a header and its lines) and append it to out."""
    global block
    if not block:
        return
    want, drop = {}, set()
    if section in ("rate_limit.per_ip", "rate_limit.per_user", "rate_limit.per_tenant"):
        want = dict(LIMITS)
    elif section == "tenants" and any(re.match(r'\s*id\s*=\s*"acme"', l) for l in block):
        want = {"max_api_calls_per_day": "4000000000"}
    elif section == "state":
        want = {"key_prefix": f'"{prefix}"'}
    elif section == "audit":
        want = {"rotate_bytes": str(1 << 40)}
    elif section == "runtime.resource_limits":
        drop = {"process_memory_watermark_mb"}
    elif section == "runtime.resource_limits.max_concurrent_workflows":
        want = {"process": BIG, "tenant": BIG, "user": BIG}
    elif section == "access.roles":
        want = {"max_executions_per_hour": "1000000000"}
    keep = []
    for l in block:
        m = re.match(r"\s*([A-Za-z0-9_]+)\s*=", l)
        if m and m.group(1) in drop:
            continue
        if m and m.group(1) in want:
            l = f"{m.group(1)} = {want.pop(m.group(1))}"
        keep.append(l)
    block = keep
    last = max((i for i, l in enumerate(block) if re.match(r"\s*[A-Za-z0-9_]+\s*=", l)), default=0)
    block[last + 1:last + 1] = [f"{k} = {v}" for k, v in want.items()]
    out.extend(block)
    block = []
for l in lines:
    h = re.match(r"\s*\[\[?\s*([A-Za-z0-9_.]+)\s*\]\]?\s*(#.*)?$", l)
    if h:
        flush()
        section = h.group(1)
    block.append(l)
flush()
open(dst, "w", encoding="utf-8").write("\n".join(out) + "\n")
c = tomllib.load(open(dst, "rb"))
for k in ("per_ip", "per_user", "per_tenant"):
    q = c["rate_limit"][k]
    assert (q["rate"], q["per"], q["burst"]) == (1000000, "1s", 1000000), (k, q)
acme = [t for t in c["tenants"] if t["id"] == "acme"]
assert acme and acme[0]["max_api_calls_per_day"] == 4000000000, acme
assert c["state"]["key_prefix"] == prefix
rl = c["runtime"]["resource_limits"]
assert "process_memory_watermark_mb" not in rl, rl
assert rl["max_concurrent_workflows"] == {"process": 1000000, "tenant": 1000000, "user": 1000000}, rl
ds = [r for r in c["access"]["roles"] if r["name"] == "data_scientist"]
assert ds and all(r["max_executions_per_hour"] == 1000000000 for r in c["access"]["roles"]), c["access"]["roles"]
assert "transform" in acme[0]["allowed_node_types"]
PY
audit_rel=$(python3 -c 'import sys,tomllib;print(tomllib.load(open(sys.argv[1],"rb")).get("audit",{}).get("file","audit.jsonl"))' "$work/bench.toml")

# ---- the requests -------------------------------------------------------------
# chain10: input "x" -> n1 -> ... -> n10 -> output "y"; each node's input is
# named x and its expression `x` passes it on unchanged.
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def chain(name, n):
    nodes = [{"id": f"n{i}", "type": "transform", "config": {"expression": "x"}} for i in range(1, n + 1)]
    conns = [{"from": {"input": "x"}, "to": {"node": "n1", "input": "x"}}]
    conns += [{"from": {"node": f"n{i}", "output": "result"}, "to": {"node": f"n{i + 1}", "input": "x"}}
              for i in range(1, n)]
    return {"name": name, "inputs": ["x"], "nodes": nodes, "connections": conns,
            "outputs": {"y": {"node": f"n{n}", "output": "result"}}}
json.dump(chain("bench-chain10", 10), open(f"{work}/chain10.json", "w"))
json.dump(chain("bench-single", 1), open(f"{work}/single.json", "w"))
PY
INPUT='{"order":{"id":"o-1","items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}],"note":"bench"}}'

cat >"$work/run.lua" <<'LUA'
-- POST a run; count answers by status in each thread, sum them in done().
wrk.method = "POST"
wrk.body = os.getenv("RUN_BODY")
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer " .. os.getenv("RUN_TOKEN")
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do io.write(string.format("STATUS %d %d\n", k, v)) end
  io.write(string.format("LAT %d %d %d\n", latency:percentile(50), latency:percentile(99), latency.max))
end
LUA

# ---- helpers -------------------------------------------------------------------
wait_up() { # url pid
  for _ in $(seq 1 300); do
    curl -s -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
stop() { # pid: SIGTERM, then wait (runs in flight end `abandoned`, the audit trail is flushed)
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 1200); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$1" 2>/dev/null; then kill -KILL "$1"; die "pid $1 did not stop within 120 s of SIGTERM"; fi
  wait "$1" 2>/dev/null || true
  pids=$(echo " $pids " | sed "s/ $1 / /")
}
api() { # method path token [body] -> body on stdout; fails on non-2xx
  local m=$1 p=$2 t=$3 b=${4:-}
  if [ -n "$b" ]; then
    curl -sf -X "$m" "$base$p" -H "authorization: Bearer $t" -H 'content-type: application/json' -d "$b"
  else
    curl -sf -X "$m" "$base$p" -H "authorization: Bearer $t"
  fi
}
jget() { python3 -c 'import sys,json;v=json.load(sys.stdin)
for k in sys.argv[1:]: v=v[k]
print(v)' "$@"; }
# outcomes file wf -> "success failure" of workflow.run outcomes of workflow wf so far
outcomes() {
  local s f
  s=$(grep -c "\"a\":\"workflow.run\",\"d\":\"success\".*of $2\"" "$1" || true)
  f=$(grep -c "\"a\":\"workflow.run\",\"d\":\"failure\".*of $2\"" "$1" || true)
  echo "$s $f"
}

results=$work/results.tsv
: >"$results"

# run_backend name [env...]
run_backend() {
  local backend=$1; shift
  local dd="$work/$backend"; mkdir -p "$dd"
  env "$@" "$BIN" --config "$work/bench.toml" --data-dir "$dd" --listen "127.0.0.1:$PORT" >"$dd/log" 2>&1 &
  local pid=$!; pids+=" $pid"
  base="http://127.0.0.1:$PORT"
  wait_up "$base/health/live" "$pid" || { tail -5 "$dd/log"; die "$backend: gateway did not start"; }
  local token
  token=$(curl -sf -X POST "$base/auth/login" -H 'content-type: application/json' \
    -d '{"username":"dave","password":"Dave-Demo-Passw0rd!"}' | jget access_token) || die "$backend: login as dave failed"
  local sid; sid=$(api POST /api/sessions "$token" | jget id) || die "$backend: no agent session"
  local audit="$dd/$audit_rel"
  local wf
  for wf in chain10 single; do
    [[ ",$ONLY," == *",$wf,"* ]] || continue
    local wid; wid=$(api POST /api/workflows "$token" "@$work/$wf.json" | jget id) || die "$backend: creating $wf failed"
    local body="{\"workflow_id\":\"$wid\",\"inputs\":{\"x\":$INPUT}}"
    # One run first, checked end to end: completed, every node, output == input.
    local rid; rid=$(api POST "/api/sessions/$sid/executions" "$token" "$body" | jget run_id) || die "$backend: first $wf run refused"
    local st=""
    for _ in $(seq 1 100); do
      api GET "/api/executions/$rid" "$token" >"$work/run.json" || die "$backend: GET run failed"
      st=$(jget status <"$work/run.json")
      [ "$st" = pending ] || [ "$st" = running ] || break
      sleep 0.1
    done
    python3 - "$work/run.json" "$INPUT" "$wf" <<'PY' || die "$backend: the checked $wf run is wrong"
import json, sys
r = json.load(open(sys.argv[1])); want = json.loads(sys.argv[2]); n = 10 if sys.argv[3] == "chain10" else 1
assert r["status"] == "completed", r.get("status")
assert r["outputs"] == {"y": want}, r["outputs"]
assert len(r["nodes"]) == n and all(x["status"] == "completed" for x in r["nodes"]), r["nodes"]
PY
    # The load.
    local before t0 t1
    before=$(cpu_ticks "$pid")
    t0=$(date +%s%3N)
    RUN_BODY=$body RUN_TOKEN=$token wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DUR}s" --latency -s "$work/run.lua" \
      "$base/api/sessions/$sid/executions" >"$work/wrk-$backend-$wf.txt"
    t1=$(date +%s%3N)
    local accepted
    accepted=$(awk '$1=="STATUS" && $2==202 {print $3}' "$work/wrk-$backend-$wf.txt"); accepted=${accepted:-0}
    # Drain: wait until every run wrk saw accepted (and the checked one) has
    # its outcome, and no further outcome came for 1 s (runs accepted while
    # wrk stopped, their 202 unread, end too).
    local want=$((accepted + 1)) done_at=$t1 got s f prev=-1 still=0
    for _ in $(seq 1 $((DRAIN * 4))); do
      read -r s f < <(outcomes "$audit" "$wid")
      got=$((s + f))
      if [ "$got" = "$prev" ]; then still=$((still + 1)); else still=0; done_at=$(date +%s%3N); fi
      prev=$got
      [ "$got" -lt "$want" ] || [ "$still" -lt 4 ] || break
      sleep 0.25
    done
    # Runs not yet ended among the newest 100 (none expected once drained).
    api GET "/api/executions?limit=100" "$token" | python3 -c 'import sys,json,collections
c=collections.Counter(r["status"] for r in json.load(sys.stdin)["executions"])
print(" ".join(f"{k}={v}" for k, v in sorted(c.items())))' >"$work/list-$backend-$wf.txt" || die "$backend: GET /api/executions failed"
    local after; after=$(cpu_ticks "$pid")
    echo "$backend	$wf	$wid	$t0	$t1	$done_at	$((after - before))	$work/wrk-$backend-$wf.txt	$work/list-$backend-$wf.txt" >>"$results"
  done
  stop "$pid"
  # After the stop every run has an outcome in the file (abandoned ones too).
  python3 - "$audit" "$results" "$backend" "$tick" <<'PY'
import json, re, sys
audit, results, backend, tick = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rows = [l.rstrip("\n").split("\t") for l in open(results) if l.startswith(backend + "\t")]
runs, decided = {}, {}
for raw in open(audit, "rb"):
    if b'"workflow.run"' not in raw and b'"workflow.execute"' not in raw:
        continue
    e = json.loads(raw)
    if e.get("a") == "workflow.execute" and e.get("d") == "allow":
        w = e.get("r", "").rsplit(" ", 1)[-1]
        decided[w] = decided.get(w, 0) + 1
    elif e.get("a") == "workflow.run":
        m = re.match(r"run (\S+) of (\S+)$", e.get("r", ""))
        if m:
            runs.setdefault(m.group(2), []).append((e["t"], e["d"], e.get("why", "")))
for _, wf, wid, t0, t1, done_at, ticks, wrkfile, listfile in rows:
    t0, t1, done_at, ticks = int(t0), int(t1), int(done_at), int(ticks)
    txt = open(wrkfile).read()
    st = {int(a): int(b) for a, b in re.findall(r"^STATUS (\d+) (\d+)$", txt, re.M)}
    p50, p99, mx = (int(x) / 1000 for x in re.search(r"^LAT (\d+) (\d+) (\d+)$", txt, re.M).groups())
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", txt)
    sock = sum(map(int, m.groups())) if m else 0
    acc = st.get(202, 0)
    dur = (t1 - t0) / 1000
    out = runs.get(wid, [])
    ok = [t for t, d, _ in out if d == "success"]
    in_load = sum(1 for t in ok if t0 <= t <= t1)
    kinds = {}
    for t, d, why in out:
        if d != "success":
            k = why.split(":")[0]
            kinds[k] = kinds.get(k, 0) + 1
    dec = decided.get(wid, 0)
    lost = dec - len(out)
    last = max(ok) if ok else t1
    listed = open(listfile).read().strip()
    other = ", ".join(f"{k}: {v}" for k, v in sorted(st.items()) if k != 202) or "none"
    print(f"{backend:<6} {wf:<8} accepted {acc:>7} ({acc / dur:6.0f} runs/s, 202s wrk read)  other answers: {other}; socket errors {sock}")
    print(f"{'':15} answers p50 {p50:.2f} ms  p99 {p99:.2f} ms  max {mx:.2f} ms")
    print(f"{'':15} workflow.execute allowed {dec} (1 checked run + {acc} read + {dec - acc - 1} whose answer wrk never read)")
    print(f"{'':15} completed {len(ok)}: {in_load} during the load ({in_load / dur:.0f}/s), the last {max(0, last - t1) / 1000:.1f} s after it"
          + (f"; ended otherwise: {kinds}" if kinds else "")
          + (f"; ALLOWED BUT NO OUTCOME: {lost}" if lost else ""))
    print(f"{'':15} newest 100 runs after the drain: {listed}")
    print(f"{'':15} gateway CPU {ticks / tick * 1e6 / max(acc, 1):.0f} µs per accepted run (load + drain)")
    open(results + ".summary", "a").write(
        f"| {backend} | {wf} | {acc / dur:.0f} | {p50:.2f} | {p99:.2f} | {dec} | {len(ok)} | {in_load / dur:.0f} | "
        f"{max(0, last - t1) / 1000:.1f} s | {lost} | {ticks / tick * 1e6 / max(acc, 1):.0f} | {other} |\n")
PY
}

echo "runtime_http: wrk -t$THREADS -c$CONNECTIONS -d${DUR}s POST /api/sessions/{sid}/executions as dave; loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  BIN=$BIN  $(git -C "$root" rev-parse --short HEAD 2>/dev/null || true)"
run_backend memory
if [ -n "$REDIS_URL" ]; then
  run_backend redis KAILASH_REDIS_URL="$REDIS_URL/$REDIS_DB"
  redis_clean
fi
echo
echo "| backend | workflow | accepted runs/s (202) | p50 ms | p99 ms | runs allowed | completed | completed/s during load | last completed after load | allowed, no outcome | gateway µs per run | other answers |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
cat "$results.summary"
echo "loadavg at end $(cut -d' ' -f1-3 /proc/loadavg)"
