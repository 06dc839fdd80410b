#!/usr/bin/env bash
# Headless-browser test of the API explorer at /docs against the reference
# deployment (enterprise_gateway with the demo config, memory backend).
#
# Installs what is missing (Debian's chromium, node/npm, puppeteer-core at
# the version in package-lock.json; nothing downloads a browser of its
# own), builds and starts the gateway on a spare loopback port, waits for
# /health/ready, runs docs.test.mjs, and stops the gateway by its PID.
#
# A missing tool that cannot be installed fails the run under CI=true and
# skips the test elsewhere (exit 0); a gateway that does not build or start
# always fails it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

started=$(date +%s%N)
phase_start=$started
phase_name=""
phase() { # <name of the next phase, or "" at the end>: times the one before
  local now
  now=$(date +%s%N)
  if [ -n "$phase_name" ]; then
    printf '[browser] %s: %d ms\n' "$phase_name" $(( (now - phase_start) / 1000000 ))
  fi
  if [ -z "$1" ]; then
    printf '[browser] total: %d ms\n' $(( (now - started) / 1000000 ))
  fi
  phase_name=$1
  phase_start=$now
}
unavailable() { # <what>
  if [ "${CI:-}" = "true" ]; then
    echo "[browser] FAILED: $1 (CI=true: failing instead of skipping)"
    exit 1
  fi
  echo "[browser] SKIPPED: $1"
  exit 0
}
apt_install() { # <package>...
  if [ "$(id -u)" -ne 0 ]; then
    return 1
  fi
  if [ -z "${apt_updated:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || return 1
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null || return 1
}

# --- tools -------------------------------------------------------------------
phase "tools"
chromium="${CHROMIUM:-$(command -v chromium || true)}"
if [ -z "$chromium" ]; then
  echo "[browser] installing Debian's chromium"
  apt_install chromium || unavailable "chromium is not installed and could not be installed (root: $(id -u))"
  chromium="$(command -v chromium)"
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "[browser] installing node and npm"
  apt_install nodejs npm || unavailable "node/npm are not installed and could not be installed"
fi
for tool in curl cargo; do
  command -v "$tool" >/dev/null 2>&1 || unavailable "$tool is missing"
done
echo "[browser] $("$chromium" --version 2>/dev/null | head -1), node $(node --version)"

# puppeteer-core, exactly as locked; it never downloads a browser.
if ! cmp -s "$here/package-lock.json" "$here/node_modules/.package-lock.json.ci" 2>/dev/null; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) \
    || unavailable "npm ci in .ci/browser failed"
  cp "$here/package-lock.json" "$here/node_modules/.package-lock.json.ci"
fi

# --- build --------------------------------------------------------------------
phase "build enterprise_gateway"
# Built as the test step builds it (`cargo test-all`: the same packages and
# features, so the same feature unification), which makes this a no-op in
# CI right after that step; `--no-run` builds the example's binary for its
# integration tests.
features=$(sed -n 's/^test-all = ".*--features \([^ "]*\).*/\1/p' .cargo/config.toml)
if ! cargo test --workspace --locked --features "$features" --no-run -q; then
  echo "[browser] FAILED: enterprise_gateway did not build"
  exit 1
fi
target_dir=$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
binary="$target_dir/debug/enterprise_gateway"

# --- start ----------------------------------------------------------------------
phase "start the gateway"
port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
data_dir=$(mktemp -d)
log="$data_dir/gateway.log"
# The memory backend: no Redis, whatever the environment says.
env -u KAILASH_REDIS_URL -u KAILASH_LISTEN "$binary" --config examples/config/enterprise.toml \
  --listen "127.0.0.1:$port" --data-dir "$data_dir" >"$log" 2>&1 &
pid=$!
cleanup() {
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$data_dir"
}
trap cleanup EXIT
base="http://127.0.0.1:$port"
ready=""
for _ in $(seq 1 150); do
  if curl -fsS -o /dev/null "$base/health/ready" 2>/dev/null; then
    ready=1
    break
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.2
done
if [ -z "$ready" ]; then
  echo "[browser] the gateway did not become ready; its log:"
  tail -n 40 "$log" || true
  echo "[browser] FAILED: enterprise_gateway did not start"
  exit 1
fi
echo "[browser] gateway (pid $pid) ready at $base"

# --- test -----------------------------------------------------------------------
phase "headless browser test"
set +e
BASE_URL="$base" CHROMIUM="$chromium" node "$here/docs.test.mjs"
status=$?
set -e
phase ""
if [ "$status" -ne 0 ]; then
  echo "[browser] the explorer test failed; the gateway's log:"
  tail -n 40 "$log" || true
fi
exit "$status"
