#!/usr/bin/env bash
# The realtime bench of issue 13 (item 9): N WebSockets to one server, then
# E events published by HTTP POST and broadcast to every socket, measured by
# `wsload` (benches/peers/wsload, tokio-tungstenite, a separate process):
#   - server RSS per idle socket (VmRSS after every welcome minus before, / N);
#   - delivery latency p50/p99/max over all (socket, event) pairs, from the
#     publisher's send timestamp in the event to its receipt, same clock;
#   - deliveries/s, missing and duplicate deliveries (must be 0);
#   - client and server CPU µs per delivery over the broadcast phase (the
#     client must cost less than the server, or it is the bottleneck).
# Targets, one at a time, in interleaved rounds:
#   peer        peer-ws-broadcast: axum 0.8 ws + tokio::sync::broadcast, no
#               auth, tungstenite's default buffers — the limit to compare with
#   peer-small  the same with 4 KiB read/write buffers (what issue 13 asks of
#               the gateway)
#   gw          the reference deployment (GW=path/to/enterprise_gateway) with
#               a config derived from examples/config/enterprise.toml: bob's
#               sockets (token from /auth/login), alice publishing through
#               POST /api/events (system:configure, TOTP login). Run only
#               when the gateway serves GET /ws; otherwise the script says so
#               and measures the baselines only.
#
# It builds nothing: a missing binary is named with the command that builds
# it. Everything listens on and connects to 127.0.0.1 only.
#
# usage: [N=10000] [EVENTS=200] [RATE=20] [ROUNDS=3] [CONCURRENCY=128]
#        [TARGETS=peer,peer-small] [GW=target/release/enterprise_gateway]
#        [PORT=18190] [CAP=600] [KEEP=1] benches/realtime.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PEERS=${PEERS:-$here/peers/target/release}
GW=${GW:-}
CONFIG_SRC=${CONFIG_SRC:-$root/examples/config/enterprise.toml}
N=${N:-10000}
EVENTS=${EVENTS:-200}
RATE=${RATE:-20}
ROUNDS=${ROUNDS:-3}
CONCURRENCY=${CONCURRENCY:-128}
TARGETS=${TARGETS:-peer,peer-small}
PORT=${PORT:-18190}
CAP=${CAP:-600}
SETTLE=${SETTLE:-2}
DRAIN=${DRAIN:-10}
KEEP=${KEEP:-}

die() { echo "realtime.sh: $*" >&2; exit 1; }

# ---- prerequisites: tools, binaries (never built here), file descriptors -----
for tool in curl python3; do
  command -v "$tool" >/dev/null || die "needs $tool (Debian: apt-get install $tool)"
done
missing=""
for b in peer-ws-broadcast wsload; do
  [ -x "$PEERS/$b" ] || missing+="  $PEERS/$b: (cd $here/peers && nice -n 10 cargo build --release --bin peer-ws-broadcast --bin wsload)
"
done
if [ -n "$GW" ] && [ ! -x "$GW" ]; then
  missing+="  GW=$GW: (cd $root && cargo build --release -p kailash-examples --bin enterprise_gateway)
"
fi
[ -z "$missing" ] || die "missing binaries; build them with:
$missing"
[[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -gt 0 ] || die "N=$N is not a positive number"
# The client and the server are separate processes, each holding N sockets
# plus a few files; the limit applies to each. Ask for 2N + slack (headroom
# for the server's listener backlog and the publish connections), accept N + slack.
want_fds=$((2 * N + 1024)); need_fds=$((N + 512))
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || [ "$hard" -ge "$want_fds" ] || want_fds=$hard
ulimit -n "$want_fds" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge "$need_fds" ] ||
  die "N=$N needs at least $need_fds open files per process (ulimit -n is $(ulimit -n), hard limit $hard); raise the hard limit (e.g. /etc/security/limits.conf, or run with 'prlimit --nofile=$want_fds') or lower N"
read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
[ $((hi - lo)) -ge $((N + 1000)) ] ||
  die "the ephemeral port range $lo-$hi is too small for N=$N client sockets (sysctl net.ipv4.ip_local_port_range)"

work=$(mktemp -d -t kailash-realtime.XXXXXX)
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  if [ -n "$KEEP" ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

port_free() { ! curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null; }
wait_up() { # url pid
  for _ in $(seq 1 300); do
    curl -s -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
stop() { # pid: SIGTERM, then wait
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 600); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$1" 2>/dev/null; then kill -KILL "$1"; die "pid $1 did not stop within 60 s of SIGTERM"; fi
  wait "$1" 2>/dev/null || true
  pids=$(echo " $pids " | sed "s/ $1 / /")
}

# ---- the gateway (optional): a bench config, and does it serve /ws? ----------
plan=()
IFS=, read -r -a wanted_targets <<<"$TARGETS"
for t in "${wanted_targets[@]}"; do
  case $t in peer | peer-small) plan+=("$t") ;; gw) ;; *) die "unknown target $t in TARGETS" ;; esac
done
gw_port=$((PORT + 2))
if [ -n "$GW" ]; then
  # The demo config with every limit out of the way of N sockets from one
  # address and user: rate limits, connection caps, acme's daily quota; the
  # `time_based` policy (system:configure only 09-17 UTC on weekdays) is
  # dropped so alice can publish at any hour. tomllib checks the result.
  python3 - "$CONFIG_SRC" "$work/bench.toml" "$N" <<'PY'
import re, sys, tomllib
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = open(src, encoding="utf-8").read().splitlines()
LIMITS = {"rate": "1000000", "per": '"1s"', "burst": "1000000"}
out, section, block = [], None, []
def flush():
    global block
    if not block:
        return
    if section == "access.policies" and any(re.match(r'\s*name\s*=\s*"time_based"', l) for l in block):
        block = []
        return
    want = {}
    if section in ("rate_limit.per_ip", "rate_limit.per_user", "rate_limit.per_tenant"):
        want = dict(LIMITS)
    elif section == "tenants" and any(re.match(r'\s*id\s*=\s*"acme"', l) for l in block):
        want = {"max_api_calls_per_day": "4000000000"}
    elif section == "state":
        want = {"key_prefix": '"kailash-realtime-bench:"'}
    elif section == "realtime":
        want = {"max_connections_per_user": str(n + 1000), "max_connections_per_tenant": str(n + 1000)}
    elif section == "server":
        want = {"max_connections": str(n + 1000), "max_connections_per_ip": str(n + 1000)}
    for i, l in enumerate(block):
        m = re.match(r"\s*([A-Za-z0-9_]+)\s*=", l)
        if m and m.group(1) in want:
            block[i] = f"{m.group(1)} = {want.pop(m.group(1))}"
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
assert c["server"]["max_connections"] >= n + 1000 and c["server"]["max_connections_per_ip"] >= n + 1000
assert not [p for p in c["access"].get("policies", []) if p.get("name") == "time_based"]
assert c["realtime"]["max_connections_per_user"] >= n and c["realtime"]["max_connections_per_tenant"] >= n
PY
  port_free "$gw_port" || die "port $gw_port is taken (set PORT=)"
  mkdir -p "$work/probe"
  "$GW" --config "$work/bench.toml" --data-dir "$work/probe" --listen "127.0.0.1:$gw_port" >"$work/probe/log" 2>&1 &
  probe_pid=$!; pids+=" $probe_pid"
  wait_up "http://127.0.0.1:$gw_port/health/live" "$probe_pid" || { tail -5 "$work/probe/log"; die "the gateway did not start"; }
  # With bob's token: the gateway answers 401 to any unauthenticated path,
  # so only an authenticated GET tells a missing route (404) from one that
  # wants an upgrade.
  probe_token=$(curl -sf -X POST "127.0.0.1:$gw_port/auth/login" -H 'content-type: application/json' \
    -d '{"username":"bob","password":"Bob-Demo-Passw0rd!"}' |
    python3 -c 'import sys,json;print(json.load(sys.stdin)["access_token"])') ||
    { tail -5 "$work/probe/log"; die "the gateway: login as bob failed"; }
  ws_code=$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $probe_token" "http://127.0.0.1:$gw_port/ws")
  stop "$probe_pid"
  if [ "$ws_code" = 404 ]; then
    echo "realtime.sh: $GW has no GET /ws yet (404): no gateway figures in this run, the baselines only"
  else
    plan+=(gw)
  fi
elif [[ ",$TARGETS," == *",gw,"* ]]; then
  die "TARGETS has gw but GW= is not set"
fi
[ ${#plan[@]} -gt 0 ] || die "TARGETS=$TARGETS selects nothing"

# alice's access token: password + TOTP (RFC 6238, SHA-1, 6 digits, 30 s) of
# the demo secret; she holds system:configure (POST /api/events).
alice_login() { # port
  python3 - "$1" <<'PY'
import base64, hashlib, hmac, json, struct, sys, time, urllib.request
port = sys.argv[1]
key = base64.b32decode("JBSWY3DPEHPK3PXP")
mac = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
o = mac[-1] & 15
code = "%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1000000)
body = json.dumps({"username": "alice", "password": "Alice-Demo-Passw0rd!", "totp": code}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/auth/login", body, {"content-type": "application/json"})
print(json.load(urllib.request.urlopen(req, timeout=10))["access_token"])
PY
}

results=$work/results.jsonl
: >"$results"
failed=0
# run_target round target
run_target() {
  local round=$1 target=$2 port pid dd="" args=()
  case $target in
    peer | peer-small)
      port=$PORT; port_free "$port" || die "port $port is taken (set PORT=)"
      local bufs=(); [ "$target" = peer ] || bufs=(--read-buffer 4096 --write-buffer 4096)
      "$PEERS/peer-ws-broadcast" "127.0.0.1:$port" "${bufs[@]}" >"$work/$target.log" 2>&1 &
      pid=$!; pids+=" $pid"
      # Any string is a token to the baseline.
      args=(--token baseline --publish-url "http://127.0.0.1:$port/api/events")
      ;;
    gw)
      port=$gw_port; port_free "$port" || die "port $port is taken (set PORT=)"
      dd=$(mktemp -d -p "$work" gw.XXXXXX)
      "$GW" --config "$work/bench.toml" --data-dir "$dd" --listen "127.0.0.1:$port" >"$dd/log" 2>&1 &
      pid=$!; pids+=" $pid"
      wait_up "http://127.0.0.1:$port/health/live" "$pid" || { tail -5 "$dd/log"; die "gw did not start"; }
      local publish_token
      publish_token=$(alice_login "$port") || { tail -5 "$dd/log"; die "gw: login as alice failed"; }
      args=(--login "http://127.0.0.1:$port/auth/login" bob 'Bob-Demo-Passw0rd!'
            --publish-url "http://127.0.0.1:$port/api/events" --publish-token "$publish_token")
      ;;
  esac
  [ "$target" = gw ] || wait_up "http://127.0.0.1:$port/" "$pid" || { tail -5 "$work/$target.log"; die "$target did not start"; }
  local rc=0
  "$PEERS/wsload" --url "ws://127.0.0.1:$port/ws" --connections "$N" --events "$EVENTS" --rate "$RATE" \
    --concurrency "$CONCURRENCY" --settle "$SETTLE" --drain "$DRAIN" --cap "$CAP" --pid "$pid" \
    --label "round $round $target" "${args[@]}" >"$work/out.txt" || rc=$?
  grep -v '^{' "$work/out.txt"
  grep '^{' "$work/out.txt" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d["round"]=int(sys.argv[1]); d["target"]=sys.argv[2]; print(json.dumps(d))' "$round" "$target" >>"$results" || true
  [ "$rc" = 0 ] || { echo "  wsload exit status $rc: this run is not clean"; failed=1; }
  stop "$pid"
  [ -z "$dd" ] || rm -rf "$dd"
}

echo "realtime: $ROUNDS rounds, N=$N sockets, $EVENTS events at $RATE/s, handshake concurrency $CONCURRENCY; ulimit -n $(ulimit -n); loadavg $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
echo "  targets: ${plan[*]}${GW:+  GW=$GW}"
for round in $(seq 1 "$ROUNDS"); do
  # Odd rounds forwards, even rounds backwards: no target always follows the same one.
  if [ $((round % 2)) = 1 ]; then order=("${plan[@]}"); else order=(); for ((i=${#plan[@]}-1; i>=0; i--)); do order+=("${plan[$i]}"); done; fi
  for t in "${order[@]}"; do
    run_target "$round" "$t"
    sleep 2  # the previous run's sockets leave the kernel's tables
  done
done

python3 - "$results" "${plan[@]}" <<'PY' || failed=1
import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(xs):
    xs = [x for x in xs if x is not None]
    return st.median(xs) if xs else None
def f(v, fmt):
    return "—" if v is None else format(v, fmt)
print(f"\nmedians of {max((sum(1 for r in rows if r['target'] == t) for t in sys.argv[2:]), default=0)} rounds\n")
print("| target | sockets | server bytes/idle socket | p50 ms | p99 ms | max ms | events/s published | deliveries/s | client µs/delivery | server µs/delivery | missing | failed sockets | early closes |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
bad = False
for t in sys.argv[2:]:
    v = [r for r in rows if r["target"] == t]
    if not v:
        continue
    m = lambda k: med([r[k] for r in v])
    miss, fail, early = (sum(r[k] for r in v) for k in ("missing", "failed", "closed_early"))
    bad |= bool(miss or fail or early)
    print(f"| {t} | {v[0]['connections']} | {f(m('bytes_per_idle_socket'), '.0f')} | {f(m('p50_ms'), '.1f')} | {f(m('p99_ms'), '.1f')} | "
          f"{f(m('max_ms'), '.1f')} | {f(m('events_per_s'), '.1f')} | {f(m('deliveries_per_s'), '.0f')} | {f(m('client_us_per_delivery'), '.2f')} | "
          f"{f(m('server_us_per_delivery'), '.2f')} | {miss} | {fail} | {early} |")
if bad:
    print("\nmissing deliveries, failed sockets or early closes: those runs are not clean")
    sys.exit(1)
PY
if [ "$failed" != 0 ]; then
  echo "FAILED: see the runs above" >&2
  exit 1
fi
