#!/usr/bin/env bash
# The honest full-stack bench: wrk (an external load generator) against
#   bare          bare hyper 1.x answering "ok" (benches/src/bin/bare.rs)
#   axum-towerhttp  axum 0.8 + 5 tower-http layers + RS256 verified per request
#   jwt-authorizer  axum 0.7 + jwt-authorizer 0.15 (RS256 per request)
#   gw-live       the reference deployment, GET /health/live (default layers, no auth)
#   gw-full       the reference deployment, GET /api/reports as bob with his
#                 real RS256 token from /auth/login (memory backend): token,
#                 session, tenant, per-IP/user/tenant limits, quota, hybrid
#                 RBAC+ABAC, metrics, audit of the decision, handler
#   gw-redis      the same with KAILASH_REDIS_URL (all shared state in Redis)
#   gw-cluster    the same on a Redis Cluster (CLUSTER_URL, a redis+cluster://
#                 seed list, e.g. from .ci/redis-cluster/cluster.sh start);
#                 Redis CPU is the sum over every node of the cluster
#   gw-pg         gw-full with the audit trail in PostgreSQL (audit.sink =
#                 "postgres", a fresh database per run): the ratio to gw-full
#                 is the cost of the database sink
# in interleaved rounds, one server at a time, in one run; prints each run
# and a summary of medians (req/s, ratio to bare in the same round, p50/p99,
# server CPU µs per request, Redis CPU µs per request). After every gateway
# run it counts the audit trail's access decisions against the requests the
# gateway answered, and fails if one is missing.
#
# It builds nothing: a missing binary is named with the command that builds
# it. Everything listens on 127.0.0.1 only. Full reference: benches/README.md.
#
# usage: [NEW=target/release/enterprise_gateway] [BASE=other/enterprise_gateway]
#        [ROUNDS=3] [DUR=10] [WARMUP=2] [THREADS=2] [CONNECTIONS=50]
#        [ONLY=bare,gw-full,...] [REDIS_URL=redis://127.0.0.1:6379] [REDIS_DB=9]
#        [PG_URL=postgres://postgres@127.0.0.1:5432] (PG_URL= skips gw-pg)
#        [CLUSTER_URL=redis+cluster://127.0.0.1:7000,...] (unset skips gw-cluster)
#        [PORT=18180] [KEEP=1] benches/fullstack.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
NEW=${NEW:-$root/target/release/enterprise_gateway}
BASE=${BASE:-}
BARE=${BARE:-$root/target/release/bare}
PEERS=${PEERS:-$here/peers/target/release}
CONFIG_SRC=${CONFIG_SRC:-$root/examples/config/enterprise.toml}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10}
WARMUP=${WARMUP:-2}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-50}
ONLY=${ONLY:-}
REDIS_URL=${REDIS_URL-redis://127.0.0.1:6379}
REDIS_DB=${REDIS_DB:-9}
REDIS_PREFIX=kailash-fullstack-bench:
CLUSTER_URL=${CLUSTER_URL:-}
PG_URL=${PG_URL-postgres://postgres@127.0.0.1:5432}
PG_DB=kailash_fullstack_bench
PORT=${PORT:-18180}
KEEP=${KEEP:-}

die() { echo "fullstack.sh: $*" >&2; exit 1; }

# ---- prerequisites: tools and binaries (never built here) -------------------
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || die "needs $tool (Debian: apt-get install $tool)"
done
wanted() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
missing=""
[ -x "$NEW" ] || missing+="  NEW=$NEW: (cd $root && cargo build --release -p kailash-examples --bin enterprise_gateway)
"
[ -x "$BARE" ] || missing+="  BARE=$BARE: (cd $root && cargo build --release -p kailash-benches --bin bare)
"
for p in peer-axum-towerhttp peer-jwt-authorizer; do
  # Only the peers a run asks for (ONLY=) need to be built.
  wanted "${p#peer-}" || continue
  [ -x "$PEERS/$p" ] || missing+="  $PEERS/$p: (cd $here/peers && cargo build --release --bins)
"
done
if [ -n "$BASE" ] && [ ! -x "$BASE" ]; then
  missing+="  BASE=$BASE: git worktree add /tmp/kailash-base <commit> && (cd /tmp/kailash-base && cargo build --release -p kailash-examples --bin enterprise_gateway)
"
fi
[ -z "$missing" ] || die "missing binaries; build them with:
$missing"
if [ -n "$REDIS_URL" ]; then
  command -v redis-cli >/dev/null || die "needs redis-cli for the Redis runs (or set REDIS_URL= to skip them)"
  redis-cli -u "$REDIS_URL/$REDIS_DB" ping >/dev/null 2>&1 || die "no Redis at $REDIS_URL (set REDIS_URL= to skip the Redis runs)"
fi
if [ -n "$PG_URL" ] && wanted gw-pg; then
  command -v psql >/dev/null || die "needs psql for the PostgreSQL runs (or set PG_URL= to skip them)"
  psql "$PG_URL/postgres?sslmode=disable" -Atqc 'SELECT 1' >/dev/null 2>&1 || die "no PostgreSQL at $PG_URL (set PG_URL= to skip the gw-pg runs)"
fi

work=$(mktemp -d -t kailash-fullstack.XXXXXX)
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  if [ -n "$KEEP" ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
tick=$(getconf CLK_TCK)
cpu_ticks() { local p t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }

# ---- the bench config: the demo config with every limit out of the way -------
# Derived at run time from examples/config/enterprise.toml so it never goes
# stale; tomllib then checks the result says what this bench assumes.
python3 "$here/lib/bench_config.py" "$CONFIG_SRC" "$work/bench.toml" "$REDIS_PREFIX"
audit_rel=$(python3 -c 'import sys,tomllib;print(tomllib.load(open(sys.argv[1],"rb")).get("audit",{}).get("file","audit.jsonl"))' "$work/bench.toml")
issuer=$(python3 -c 'import sys,tomllib;print(tomllib.load(open(sys.argv[1],"rb"))["auth"]["issuer"])' "$work/bench.toml")
audience=$(python3 -c 'import sys,tomllib;print(tomllib.load(open(sys.argv[1],"rb"))["auth"]["audience"])' "$work/bench.toml")

# ---- helpers -----------------------------------------------------------------
port_free() { ! curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null; }
wait_up() { # url pid
  for _ in $(seq 1 300); do
    curl -s -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
stop() { # pid: SIGTERM, then wait (the gateway drains and flushes its audit trail)
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 1200); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$1" 2>/dev/null; then kill -KILL "$1"; die "pid $1 did not stop within 120 s of SIGTERM"; fi
  wait "$1" 2>/dev/null || true
  pids=$(echo " $pids " | sed "s/ $1 / /")
}
login() { # port -> bob's access token
  curl -sf -X POST "127.0.0.1:$1/auth/login" -H 'content-type: application/json' \
    -d '{"username":"bob","password":"Bob-Demo-Passw0rd!"}' |
    python3 -c 'import sys,json;print(json.load(sys.stdin)["access_token"])'
}
expect_code() { # want url [curl args...]
  local want=$1 url=$2; shift 2
  local got; got=$(curl -s -o /dev/null -w '%{http_code}' "$@" "$url")
  [ "$got" = "$want" ] || die "$url answered $got, expected $want"
}
redis_pid=""
if [ -n "$REDIS_URL" ]; then
  redis_pid=$(redis-cli -u "$REDIS_URL" info server | tr -d '\r' | awk -F: '$1=="process_id"{print $2}')
  [ -r "/proc/$redis_pid/stat" ] || redis_pid=""  # a remote Redis: its CPU is not measured
fi
cluster_pids=""
if [ -n "$CLUSTER_URL" ]; then
  seed=${CLUSTER_URL#*://}; seed=${seed##*@}; seed=${seed%%,*}; seed=${seed%/}
  for node in $(redis-cli -h "${seed%:*}" -p "${seed##*:}" cluster nodes | awk '{split($2, a, "@"); print a[1]}'); do
    p=$(redis-cli -h "${node%:*}" -p "${node##*:}" info server | tr -d '\r' | awk -F: '$1=="process_id"{print $2}')
    [ -r "/proc/$p/stat" ] && cluster_pids+=" $p"
  done
  [ -n "$cluster_pids" ] || die "no local node of the cluster at CLUSTER_URL answers"
fi
# The Redis processes whose CPU a target's run is charged with.
redis_pids_of() {
  case "$1" in
    gw-redis) echo "$redis_pid" ;;
    gw-cluster) echo "$cluster_pids" ;;
  esac
}
redis_reset() { # empties REDIS_DB, refusing if it holds anyone else's keys
  local keys foreign
  keys=$(redis-cli -u "$REDIS_URL/$REDIS_DB" --scan) || die "cannot list the keys of Redis db $REDIS_DB"
  foreign=$(grep -v "^$REDIS_PREFIX" <<<"$keys" | grep -m3 . || true)
  [ -z "$foreign" ] || die "Redis db $REDIS_DB holds keys that are not this bench's (${foreign//$'\n'/ } ...); choose another REDIS_DB"
  [ "$(redis-cli -u "$REDIS_URL/$REDIS_DB" flushdb)" = OK ] || die "FLUSHDB of Redis db $REDIS_DB failed"
}

# ---- setup: the gateway's key, its JWKS and a token for the peers ------------
# One gateway start generates the RS256 key; every later gateway run gets a
# copy in its data dir (as instances sharing a key do), and the peers verify
# against the JWKS it publishes, with bob's token from it.
gw_port=$((PORT + 3))
port_free "$gw_port" || die "port $gw_port is taken (set PORT=)"
mkdir -p "$work/setup"
"$NEW" --config "$work/bench.toml" --data-dir "$work/setup" --listen "127.0.0.1:$gw_port" >"$work/setup/log" 2>&1 &
setup_pid=$!; pids+=" $setup_pid"
wait_up "http://127.0.0.1:$gw_port/health/live" "$setup_pid" || { tail -5 "$work/setup/log"; die "setup gateway did not start"; }
curl -sf "127.0.0.1:$gw_port/.well-known/jwks.json" >"$work/jwks.json" || die "no JWKS at /.well-known/jwks.json"
peer_token=$(login "$gw_port") || die "setup login as bob failed"
stop "$setup_pid"
keyfile=$(cd "$work/setup/keys" && ls -- *.pem | head -1) || die "no key file in the data dir's keys/"
cp -p "$work/setup/keys/$keyfile" "$work/$keyfile"

# ---- one measured run --------------------------------------------------------
results=$work/results.tsv
: >"$results"
failed=0
# measure round target build pid url [token]: warm-up, measured wrk run with
# the server's CPU around it; appends to results.tsv, prints the run.
measure() {
  local round=$1 target=$2 build=$3 pid=$4 url=$5 token=${6:-}
  local hdr=(); [ -z "$token" ] || hdr=(-H "authorization: Bearer $token")
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" "${hdr[@]}" "$url" >"$work/warmup.txt"
  local before rbefore=0 rafter=0 rpids
  rpids=$(redis_pids_of "$target")
  before=$(cpu_ticks "$pid")
  # shellcheck disable=SC2086
  [ -z "$rpids" ] || rbefore=$(cpu_ticks $rpids)
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DUR}s" --latency "${hdr[@]}" "$url" >"$work/wrk.txt"
  local after; after=$(cpu_ticks "$pid")
  # shellcheck disable=SC2086
  [ -z "$rpids" ] || rafter=$(cpu_ticks $rpids)
  python3 - "$work/warmup.txt" "$work/wrk.txt" "$round" "$target" "$build" \
    "$((after - before))" "$([ -n "$rpids" ] && echo $((rafter - rbefore)) || echo -)" \
    "$tick" "$results" "$work/client_count" <<'PY'
import re, sys
warm, meas, rnd, target, build, ticks, rticks, tick, results, count_file = sys.argv[1:11]
def parse(path):
    t = open(path).read()
    reqs = int(re.search(r"(\d+) requests in", t).group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    non2xx = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    errs = sum(map(int, m.groups())) if m else 0
    return t, reqs, non2xx, errs
def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[u]
_, wreqs, wnon, werr = parse(warm)
t, reqs, non2xx, errs = parse(meas)
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", t, re.M))
p50, p99 = ms(lat["50"]), ms(lat["99"])
srv = int(ticks) / int(tick) * 1e6 / reqs
red = "-" if rticks == "-" else f"{int(rticks) / int(tick) * 1e6 / reqs:.1f}"
open(results, "a").write(f"{rnd}\t{target}\t{build}\t{rps:.0f}\t{p50:.3f}\t{p99:.3f}\t{srv:.2f}\t{red}\t{non2xx + wnon}\t{errs + werr}\n")
open(count_file, "w").write(str(wreqs + reqs))
redis = "" if red == "-" else f"  redis {red:>6} µs/req"
print(f"round {rnd}  {target + ('' if build == '-' else '(' + build + ')'):<22} {rps:>9.0f} req/s  p50 {p50:7.3f} ms  p99 {p99:7.3f} ms  srv {srv:6.1f} µs/req{redis}  non-2xx {non2xx + wnon}  socket errors {errs + werr}")
PY
}

# Audit accounting of one gateway run, after the process exited (so its
# audit writer has flushed): access decisions in the audit trail against
# the requests the gateway answered on /api/reports (its /metrics, scraped
# when the load stopped). Matches entries by the access decision's action
# `access.check` under the key `action`, or under any key of at most three
# characters (a compact entry format), never inside other fields.
audit_check() { # datadir metrics_file client_requests
  python3 - "$1/$audit_rel" "$2" "$3" <<'PY' || failed=1
import json, re, sys
path, metrics, client = sys.argv[1], sys.argv[2], int(sys.argv[3])
ACTION = "access.check"
answered = other = 0
for line in open(metrics):
    m = re.match(r'http_requests_total\{([^}]*)\}\s+(\d+)', line)
    if not m or 'route="/api/reports"' not in m.group(1):
        continue
    if 'status="2xx"' in m.group(1):
        answered += int(m.group(2))
    else:
        other += int(m.group(2))
decisions = {}
unparsed = stray = 0
# The trail is the live file and the segments rotation closed beside it
# (`audit-<first seq>.jsonl`, gzip-compressed once closed): a fast run
# writes past `rotate_bytes`.
import glob, gzip, os
stem, ext = os.path.splitext(path)
plain = glob.glob(f"{stem}-[0-9]*{ext}")
# A segment caught mid-compression at shutdown exists twice: read it once.
segments = sorted(plain + [g for g in glob.glob(f"{stem}-[0-9]*{ext}.gz") if g[:-3] not in plain])
def lines():
    for seg in segments + [path]:
        try:
            opener = gzip.open if seg.endswith(".gz") else open
            with opener(seg, "rb") as f:
                yield from f
        except FileNotFoundError:
            pass
for raw in lines():
    if ACTION.encode() not in raw:
        continue
    try:
        e = json.loads(raw)
    except ValueError:
        unparsed += 1
        continue
    hit = [k for k, v in e.items() if v == ACTION and (k == "action" or len(k) <= 3)]
    if not hit:
        stray += 1  # the text appears, but not as the action (a reason, a path)
        continue
    d = e.get("decision", e.get("d", e.get("dec", "?")))
    decisions[d] = decisions.get(d, 0) + 1
events = sum(decisions.values())
detail = ", ".join(f"{k} {v}" for k, v in sorted(decisions.items())) or "none"
note = f"(/api/reports: answered {answered}, other outcomes {other}; client saw {client}; decisions: {detail})"
if unparsed:
    note += f"; {unparsed} unparsable lines mention {ACTION}"
if stray:
    note += f"; {stray} entries mention {ACTION} outside the action"
if events == answered:
    print(f"           audit events == decisions: {events} {note}")
elif answered < events <= answered + other:
    print(f"           audit events == decisions: {events} = {answered} answered + {events - answered} decided but "
          f"abandoned when wrk stopped (of {other} not answered) {note}")
elif events < answered:
    print(f"           AUDIT EVENTS MISSING: {answered - events} of {answered} decisions have no entry {note}")
    sys.exit(1)
else:
    print(f"           AUDIT EVENTS EXTRA: {events - answered - other} more entries than requests {note}")
    sys.exit(1)
PY
}

# run_target round target [build binary]
run_target() {
  local round=$1 target=$2 build=${3:--} bin=${4:-}
  local port pid url token="" dd=""
  case $target in
    bare)
      port=$PORT; port_free "$port" || die "port $port is taken (set PORT=)"
      "$BARE" "127.0.0.1:$port" >/dev/null 2>&1 &
      pid=$!; pids+=" $pid"; url="http://127.0.0.1:$port/"
      wait_up "$url" "$pid" || die "bare did not start"
      ;;
    axum-towerhttp | jwt-authorizer)
      port=$((PORT + 1)); [ "$target" = axum-towerhttp ] || port=$((PORT + 2))
      port_free "$port" || die "port $port is taken (set PORT=)"
      "$PEERS/peer-$target" "127.0.0.1:$port" --jwks "$work/jwks.json" --issuer "$issuer" --audience "$audience" \
        >"$work/$target.log" 2>&1 &
      pid=$!; pids+=" $pid"; url="http://127.0.0.1:$port/api/reports"; token=$peer_token
      wait_up "$url" "$pid" || { tail -5 "$work/$target.log"; die "$target did not start"; }
      expect_code 401 "$url"
      expect_code 200 "$url" -H "authorization: Bearer $token"
      ;;
    gw-live | gw-full | gw-redis | gw-cluster | gw-pg)
      port=$gw_port; port_free "$port" || die "port $port is taken (set PORT=)"
      dd=$(mktemp -d -p "$work" gw.XXXXXX)
      mkdir -m 700 "$dd/keys"; cp -p "$work/$keyfile" "$dd/keys/$keyfile"
      local env=()
      if [ "$target" = gw-redis ]; then redis_reset; env=(KAILASH_REDIS_URL="$REDIS_URL/$REDIS_DB"); fi
      # A cluster has one database: each run gets a key prefix of its own
      # (the keys expire with their sessions and windows).
      if [ "$target" = gw-cluster ]; then
        env=(KAILASH_REDIS_URL="$CLUSTER_URL" KAILASH_STATE__KEY_PREFIX="kailash-fullstack-bench-$$-$round-$build:")
      fi
      if [ "$target" = gw-pg ]; then
        psql "$PG_URL/postgres?sslmode=disable" -q -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" -c "CREATE DATABASE $PG_DB" >/dev/null \
          || die "cannot create the bench database $PG_DB"
        env=(KAILASH_AUDIT__SINK=postgres KAILASH_DATABASE__PRIMARY__URL_ENV=KAILASH_BENCH_PG_URL
             KAILASH_BENCH_PG_URL="$PG_URL/$PG_DB?sslmode=disable")
      fi
      env "${env[@]}" "$bin" --config "$work/bench.toml" --data-dir "$dd" --listen "127.0.0.1:$port" >"$dd/log" 2>&1 &
      pid=$!; pids+=" $pid"
      wait_up "http://127.0.0.1:$port/health/live" "$pid" || { tail -5 "$dd/log"; die "$target ($build) did not start"; }
      if [ "$target" = gw-live ]; then
        url="http://127.0.0.1:$port/health/live"
      else
        url="http://127.0.0.1:$port/api/reports"
        token=$(login "$port") || { tail -5 "$dd/log"; die "$target ($build): login as bob failed"; }
        expect_code 401 "$url"
        expect_code 200 "$url" -H "authorization: Bearer $token"
      fi
      ;;
  esac
  measure "$round" "$target" "$build" "$pid" "$url" "$token"
  if [ -n "$dd" ]; then
    sleep 0.3  # let requests cut off by wrk's stop finish or drop
    curl -sf "127.0.0.1:$port/metrics" >"$dd/metrics.txt" || die "$target ($build): no /metrics"
    stop "$pid"
    if [ "$target" = gw-pg ]; then
      # The trail is the table: its lines, in order, where the file would be.
      psql "$PG_URL/$PG_DB?sslmode=disable" -Atqc "SELECT line FROM kailash_audit ORDER BY seq" >"$dd/$audit_rel" \
        || die "gw-pg ($build): cannot read the audit table"
    fi
    local client; client=$(cat "$work/client_count")
    [ "$target" = gw-live ] || client=$((client + 1))  # the setup check above
    audit_check "$dd" "$dd/metrics.txt" "$client"
    rm -rf "$dd"
    sync  # the run's audit file (~100 MB) is written back now, not in the next run
  else
    stop "$pid"
  fi
}

builds=("new $NEW")
[ -z "$BASE" ] || builds+=("base $BASE")
plan=()
for t in bare axum-towerhttp jwt-authorizer; do wanted "$t" && plan+=("$t"); done
for t in gw-live gw-full gw-redis gw-cluster gw-pg; do
  [ "$t" != gw-redis ] || [ -n "$REDIS_URL" ] || continue
  [ "$t" != gw-cluster ] || [ -n "$CLUSTER_URL" ] || continue
  [ "$t" != gw-pg ] || [ -n "$PG_URL" ] || continue
  wanted "$t" || continue
  for b in "${builds[@]}"; do
    # A base build may predate the PostgreSQL sink and the cluster client:
    # gw-pg and gw-cluster run the new one.
    [ "$t" != gw-pg ] && [ "$t" != gw-cluster ] || [[ $b == new* ]] || continue
    plan+=("$t $b")
  done
done
[ ${#plan[@]} -gt 0 ] || die "ONLY=$ONLY selects nothing"

echo "fullstack: $ROUNDS rounds, wrk -t$THREADS -c$CONNECTIONS, ${WARMUP}s warm-up + ${DUR}s measured; loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  NEW=$NEW${BASE:+  BASE=$BASE}${REDIS_URL:+  Redis $REDIS_URL/$REDIS_DB (pid ${redis_pid:-not local})}"
for round in $(seq 1 "$ROUNDS"); do
  # Odd rounds run the plan forwards, even rounds backwards, so no target
  # always follows the same neighbour (drift and writeback spread evenly).
  if [ $((round % 2)) = 1 ]; then order=("${plan[@]}"); else order=(); for ((i=${#plan[@]}-1; i>=0; i--)); do order+=("${plan[$i]}"); done; fi
  for item in "${order[@]}"; do
    # shellcheck disable=SC2086
    run_target "$round" $item
  done
done

python3 - "$results" <<'PY' || failed=1
import statistics as st, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
bare = {r[0]: float(r[3]) for r in rows if r[1] == "bare"}
order, data = [], {}
for rnd, target, build, rps, p50, p99, srv, red, non2xx, errs in rows:
    key = (target, build)
    if key not in data:
        order.append(key)
        data[key] = []
    data[key].append((float(rps), float(rps) / bare[rnd] if rnd in bare else None,
                      float(p50), float(p99), float(srv), None if red == "-" else float(red),
                      int(non2xx), int(errs)))
def med(xs):
    xs = [x for x in xs if x is not None]
    return st.median(xs) if xs else None
def f(v, fmt):
    return "—" if v is None else format(v, fmt)
print(f"\nmedians of {max(len(v) for v in data.values())} rounds (ratio: to bare hyper in the same round)\n")
print("| target | req/s | ratio to bare | p50 ms | p99 ms | server µs/req | Redis µs/req | non-2xx | socket errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
bad = False
for key in order:
    v = data[key]
    name = key[0] + ("" if key[1] == "-" else f" ({key[1]})")
    cols = [med([x[i] for x in v]) for i in range(6)]
    non2xx, errs = sum(x[6] for x in v), sum(x[7] for x in v)
    bad |= non2xx > 0
    print(f"| {name} | {f(cols[0], '.0f')} | {f(cols[1], '.2f')} | {f(cols[2], '.2f')} | {f(cols[3], '.2f')} | "
          f"{f(cols[4], '.1f')} | {f(cols[5], '.1f')} | {non2xx} | {errs} |")
if bad:
    print("\nnon-2xx answers: some requests did not take the allowed path; the figures above are not the full stack's")
    sys.exit(1)
PY
# Leave the Redis database as found: empty (it held only this bench's keys).
if [ -n "$REDIS_URL" ] && wanted gw-redis; then redis_reset; fi
if [ "$failed" != 0 ]; then
  echo "FAILED: see AUDIT / non-2xx lines above" >&2
  exit 1
fi
