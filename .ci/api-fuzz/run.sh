#!/usr/bin/env bash
# API contract fuzz: schemathesis against a fresh reference deployment.
#
# Builds the `enterprise_gateway` binary if needed (as `cargo test-all`
# builds it, so after CI's test step nothing is rebuilt), starts it on a
# spare 127.0.0.1 port with the memory backend and the demo config with its
# limits lifted (fuzz_config.py), waits for /health/ready, logs in the demo
# admin (alice, with her TOTP code) and the demo users whose permissions
# admin lacks (bob, dave), and runs schemathesis on /openapi.json with the
# settings of schemathesis.toml and the per-run operation selection of
# select_ops.py (what is left out and why is printed). Prints failures per
# check and the number of generated requests; exits non-zero on any failure,
# when the gateway does not start, log in or serve its document, and when a
# tool cannot be installed or the binary built (under CI=true; elsewhere
# that is a skip with exit 0).
#
# usage: [API_FUZZ_MAX_EXAMPLES=25] [API_FUZZ_TIMEOUT=200] [API_FUZZ_SEED=n]
#        [API_FUZZ_VENV=target/api-fuzz-venv] [API_FUZZ_OUT=file]
#        [API_FUZZ_BIN=path/to/enterprise_gateway] .ci/api-fuzz/run.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

MAX_EXAMPLES=${API_FUZZ_MAX_EXAMPLES:-}
TIMEOUT=${API_FUZZ_TIMEOUT:-200}
SEED=${API_FUZZ_SEED:-}
VENV=${API_FUZZ_VENV:-$root/target/api-fuzz-venv}
OUT=${API_FUZZ_OUT:-}
BIN=${API_FUZZ_BIN:-}

# Something this step needs is missing: a failure under CI=true, else a skip.
unavailable() {
  echo "api-fuzz: $*" >&2
  if [ "${CI:-}" = "true" ]; then
    echo "api-fuzz: CI=true: failing instead of skipping" >&2
    exit 1
  fi
  echo "api-fuzz: skipped" >&2
  exit 0
}

# The product itself misbehaved (no start, no login, no document): always a failure.
fail() {
  echo "api-fuzz: $*" >&2
  exit 1
}

for tool in python3 curl; do
  command -v "$tool" >/dev/null || unavailable "needs $tool"
done

# ---- schemathesis, pinned, in its own venv ------------------------------------
st="$VENV/bin/schemathesis"
pinned=$(sed -n 's/^schemathesis==//p' "$here/requirements.txt")
if ! [ -x "$st" ] || [ "$("$st" --version 2>/dev/null | awk '{print $NF}')" != "$pinned" ]; then
  echo "api-fuzz: installing schemathesis $pinned into $VENV"
  { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q --disable-pip-version-check \
      -r "$here/requirements.txt"; } || unavailable "could not install schemathesis (pip)"
fi
"$st" --version

# ---- the gateway binary ---------------------------------------------------------
if [ -z "$BIN" ]; then
  features=$(sed -n 's/^test-all = "test --workspace --locked --features \([^" ]*\)"$/\1/p' .cargo/config.toml)
  [ -n "$features" ] || unavailable "no test-all alias with --features in .cargo/config.toml"
  # `cargo test --no-run`, not `cargo build`: the same packages and features
  # as the test step, so the same feature unification (dev-dependencies
  # included) and nothing rebuilt; a plain build would compile the whole
  # dependency graph a second time, in time and in disk.
  cargo test --workspace --locked --features "$features" --no-run -q ||
    unavailable "could not build enterprise_gateway"
  target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  BIN="$target_dir/debug/enterprise_gateway"
fi
[ -x "$BIN" ] || unavailable "no gateway binary at $BIN"

# ---- a fresh deployment ---------------------------------------------------------
work=$(mktemp -d -t kailash-api-fuzz.XXXXXX)
gw_pid=""
cleanup() {
  if [ -n "$gw_pid" ] && kill -0 "$gw_pid" 2>/dev/null; then
    kill -TERM "$gw_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$gw_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$gw_pid" 2>/dev/null || true
    wait "$gw_pid" 2>/dev/null || true
  fi
  [ -n "${API_FUZZ_KEEP:-}" ] && echo "api-fuzz: work dir kept: $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 "$here/fuzz_config.py" examples/config/enterprise.toml "$work/gateway.toml" ||
  fail "could not derive the fuzz config from examples/config/enterprise.toml"

# A spare port: bound by the OS, released, then taken by the gateway.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
# No KAILASH_* from the caller's environment (KAILASH_REDIS_URL would move
# the state to Redis, any other could change a limit back), and none of the
# integrations' API keys: a fuzzed workflow must never reach a real
# provider with real credentials (without a key its nodes fail, locally).
mapfile -t unset_env < <(
  env | sed -n 's/^\(KAILASH_[A-Za-z0-9_]*\)=.*/-u\n\1/p'
  python3 -c 'import sys, tomllib
for i in tomllib.load(open(sys.argv[1], "rb")).get("integrations", []):
    if i.get("api_key_env"): print("-u"); print(i["api_key_env"])' "$work/gateway.toml"
)
env "${unset_env[@]}" RUST_LOG=warn "$BIN" --config "$work/gateway.toml" \
  --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/gateway.log" 2>&1 &
gw_pid=$!
ready=""
for _ in $(seq 1 600); do
  if curl -sf -o /dev/null --max-time 2 "$base/health/ready"; then ready=1; break; fi
  kill -0 "$gw_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$ready" ]; then
  tail -n 30 "$work/gateway.log" >&2 || true
  fail "the gateway did not become ready on $base"
fi
echo "api-fuzz: gateway pid $gw_pid on $base (memory backend, limits lifted)"

# ---- tokens ---------------------------------------------------------------------
# The demo's public passwords (examples/README.md); alice is admin and needs
# her TOTP code. Never logged: schemathesis masks the Authorization header.
KAILASH_FUZZ_TOKEN=$(python3 "$here/login.py" "$base" alice 'Alice-Demo-Passw0rd!' JBSWY3DPEHPK3PXP) ||
  fail "could not log in as alice"
KAILASH_FUZZ_TOKEN_BOB=$(python3 "$here/login.py" "$base" bob 'Bob-Demo-Passw0rd!') ||
  fail "could not log in as bob"
KAILASH_FUZZ_TOKEN_DAVE=$(python3 "$here/login.py" "$base" dave 'Dave-Demo-Passw0rd!') ||
  fail "could not log in as dave"
export KAILASH_FUZZ_TOKEN KAILASH_FUZZ_TOKEN_BOB KAILASH_FUZZ_TOKEN_DAVE
export KAILASH_FUZZ_BASE_URL="$base"

# ---- the operations and the config ------------------------------------------------
curl -sf --max-time 10 -o "$work/openapi.json" "$base/openapi.json" ||
  fail "could not fetch $base/openapi.json"
cp "$here/schemathesis.toml" "$work/schemathesis.toml"
{ echo; echo "# ---- per run, from select_ops.py"; } >>"$work/schemathesis.toml"
python3 "$here/select_ops.py" "$work/openapi.json" "$work/gateway.toml" alice bob dave \
  >>"$work/schemathesis.toml" || fail "no operation to fuzz"

# ---- the fuzz ---------------------------------------------------------------------
args=(--config-file "$work/schemathesis.toml" run "$base/openapi.json"
  --no-color --report ndjson --report-ndjson-path "$work/events.ndjson")
[ -z "$MAX_EXAMPLES" ] || args+=(--max-examples "$MAX_EXAMPLES")
[ -z "$SEED" ] || args+=(--seed "$SEED")
echo "api-fuzz: schemathesis ${args[*]:2} (timeout ${TIMEOUT}s)"
started=$(date +%s)
# pyshim/sitecustomize.py works around a CPython < 3.11.8 bug that can
# abort hypothesis with an internal error (see the file).
export PYTHONPATH="$here/pyshim${PYTHONPATH:+:$PYTHONPATH}"
set +e
if [ -n "$OUT" ]; then
  timeout -k 10 "$TIMEOUT" "$st" "${args[@]}" 2>&1 | tee "$OUT"
  rc=${PIPESTATUS[0]}
else
  timeout -k 10 "$TIMEOUT" "$st" "${args[@]}"
  rc=$?
fi
set -e
echo "api-fuzz: schemathesis exited $rc after $(( $(date +%s) - started ))s"

kill -0 "$gw_pid" 2>/dev/null || { echo "api-fuzz: the gateway died during the run" >&2; tail -n 30 "$work/gateway.log" >&2; rc=1; }

# ---- the summary --------------------------------------------------------------------
python3 "$here/summary.py" "$work/events.ndjson" || rc=1
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
  echo "api-fuzz: schemathesis did not finish within ${TIMEOUT}s" >&2
fi
exit "$rc"
