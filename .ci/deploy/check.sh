#!/usr/bin/env bash
# Checks the Kubernetes manifests (deploy/k8s) and the Dockerfile offline,
# then runs the binary the Dockerfile builds the way the Deployment runs it:
#
#   1. schemas        every manifest against Kubernetes $K8S_VERSION's JSON
#                     schemas, strict (unknown fields refused), with
#                     kubernetes-validate (PyPI, pinned, its schemas shipped
#                     in the package; run without a network where possible)
#   2. kustomization  every listed file exists, every manifest is listed
#   3. values         the promised numbers and settings, explicitly
#                     (check_deploy.py values): HPA, resources, security
#                     context, probes, grace period, secrets by reference...
#   4. negative tests broken copies must fail steps 1 and 3
#   5. Dockerfile     its stages, the final numeric non-root USER, and the
#                     builder's one cargo command, extracted
#   6. build          exactly that cargo command, here
#   7. run            the built binary as the image's user (65532 through
#                     setpriv when run as root, else the current user), no
#                     new privileges, with the ConfigMap's gateway.toml, a
#                     Secret-like signing key, a writable data directory and
#                     everything else read-only; the machine's Redis
#                     ($KAILASH_TEST_REDIS_URL, default 127.0.0.1:6379) and
#                     a throwaway database on the machine's PostgreSQL
#                     ($KAILASH_TEST_DATABASE_URL's server); /health/live,
#                     /health/ready and the operations port probed with
#                     curl; SIGTERM must end it with status 0 within the
#                     Deployment's terminationGracePeriodSeconds
#
# Overrides in step 7, each because a test machine is not a pod: the listen
# addresses (spare loopback ports instead of 0.0.0.0:8000/9000), the signing
# key's path (a temporary file instead of the Secret volume's mount), the
# Redis key prefix (this run's own, deleted at the end) and the two URLs.
#
# No container engine runs here: the image itself is not built.
#
# Installs kubernetes-validate into $DEPLOY_VENV (default
# target/k8s-validate-venv) when missing. Under CI=true anything missing
# (Python, the package, curl, Redis, PostgreSQL) fails the run; elsewhere it
# is a skip (exit 0). Any other failure exits 1 naming what failed.
#
# usage: [CARGO_TARGET_DIR=dir] [DEPLOY_KEEP=1] .ci/deploy/check.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

K8S_VERSION=1.30.0
VALIDATE_VERSION=1.37.0
venv=${DEPLOY_VENV:-target/k8s-validate-venv}
k8s=deploy/k8s
run_uid=65532

started=$(date +%s)
step() { printf '[deploy] %s (t+%ss)\n' "$1" "$(( $(date +%s) - started ))"; }
fail() { echo "[deploy] FAILED: $*" >&2; exit 1; }
unavailable() {
  if [ "${CI:-}" = "true" ]; then
    echo "[deploy] FAILED: $* (CI=true: failing instead of skipping)" >&2
    exit 1
  fi
  echo "[deploy] SKIPPED: $*" >&2
  exit 0
}

work=$(mktemp -d -t kailash-deploy.XXXXXX)
chmod 755 "$work"
gateway_pid=""
admin_url=""
db_name=""
redis_url=""
key_prefix=""
cleanup() {
  if [ -n "$gateway_pid" ] && kill -0 "$gateway_pid" 2>/dev/null; then
    kill -KILL "$gateway_pid" 2>/dev/null || true
    wait "$gateway_pid" 2>/dev/null || true
  fi
  if [ -n "$db_name" ]; then
    psql "$admin_url" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$db_name\" WITH (FORCE)" >/dev/null 2>&1 ||
      echo "[deploy] could not drop database $db_name" >&2
  fi
  if [ -n "$key_prefix" ]; then
    redis-cli -u "$redis_url" --scan --pattern "${key_prefix}*" 2>/dev/null |
      xargs -r -n 100 redis-cli -u "$redis_url" del >/dev/null 2>&1 || true
  fi
  if [ -n "${DEPLOY_KEEP:-}" ]; then
    echo "[deploy] work dir kept: $work" >&2
  else
    # The read-only directories are read-only for their owner too.
    chmod -R u+w "$work" 2>/dev/null || true
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- tools ---------------------------------------------------------------------
step "tools"
command -v python3 >/dev/null 2>&1 || unavailable "python3 is missing"
python3 -c 'import tomllib' 2>/dev/null || unavailable "python3 is older than 3.11 (no tomllib)"
if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))' 2>/dev/null)" != "$VALIDATE_VERSION" ]; then
  echo "[deploy] installing kubernetes-validate==$VALIDATE_VERSION into $venv"
  rm -rf "$venv"
  { python3 -m venv "$venv" &&
    "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$VALIDATE_VERSION"; } ||
    unavailable "kubernetes-validate==$VALIDATE_VERSION could not be installed into $venv"
fi
py="$venv/bin/python"
# Prove that validation needs no network: without one where this user may
# make a network namespace (root).
offline=()
net_note=""
if unshare -n true 2>/dev/null; then offline=(unshare -n); net_note=", no network"; fi
validate=("${offline[@]}" "$venv/bin/kubernetes-validate" --strict --kubernetes-version "$K8S_VERSION")

mapfile -t manifests < <(find "$k8s" -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml ! -name secret.example.yaml | sort)
[ "${#manifests[@]}" -gt 0 ] || fail "no manifests in $k8s"

# ---- static checks -----------------------------------------------------------------
step "schemas: ${#manifests[@]} manifests, Kubernetes $K8S_VERSION$net_note"
"${validate[@]}" "${manifests[@]}" ||
  fail "a manifest in $k8s does not validate against Kubernetes $K8S_VERSION"

step "kustomization"
"$py" "$here/check_deploy.py" kustomization "$root" || fail "$k8s/kustomization.yaml"

step "values (HPA, resources, security, probes, grace, secrets, ports)"
"$py" "$here/check_deploy.py" values "$root" || fail "the manifests' values"

step "negative tests"
# Each broken copy must be refused; a check that passes everything is no check.
must_fail() { # <what> <command...>
  local what=$1
  shift
  if "$@" >"$work/negative.log" 2>&1; then
    fail "negative test passed but must fail: $what"
  fi
  echo "[deploy] refused as it must be: $what ($(head -c 200 "$work/negative.log" | head -1))"
}
neg() { # <file> <python statement on doc>: a fresh copy of deploy/k8s with one change
  rm -rf "$work/neg" && cp -r "$k8s" "$work/neg"
  "$py" "$here/check_deploy.py" mutate "$work/neg" "$1" "$2"
}
neg deployment.yaml 'c = doc["spec"]["template"]["spec"]["containers"][0]; c["livenessProbe"]["httpGet"]["pathh"] = c["livenessProbe"]["httpGet"].pop("path")'
must_fail "schema: a misspelt probe field" "${validate[@]}" "$work/neg/deployment.yaml"
neg hpa.yaml 'doc["spec"]["minReplicas"] = "2"'
must_fail "schema: minReplicas as a string" "${validate[@]}" "$work/neg/hpa.yaml"
neg hpa.yaml 'doc["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] = 60'
must_fail "values: a scale-up window of 60 s" "$py" "$here/check_deploy.py" values "$root" "$work/neg"
neg deployment.yaml 'doc["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False'
must_fail "values: a writable root filesystem" "$py" "$here/check_deploy.py" values "$root" "$work/neg"
neg deployment.yaml 'doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30'
must_fail "values: a grace period within shutdown_grace" "$py" "$here/check_deploy.py" values "$root" "$work/neg"

step "Dockerfile"
mapfile -t cargo_cmd < <("$py" "$here/check_deploy.py" dockerfile "$root")
[ "${#cargo_cmd[@]}" -gt 2 ] || fail "no cargo command from the Dockerfile"
echo "[deploy] the builder's command: ${cargo_cmd[*]}"

# ---- the build, exactly as the image's builder runs it ------------------------------------
step "build: ${cargo_cmd[*]}"
t0=$(date +%s)
"${cargo_cmd[@]}" || fail "the Dockerfile's cargo command"
echo "[deploy] built in $(( $(date +%s) - t0 ))s"
bin="${CARGO_TARGET_DIR:-target}/release/enterprise_gateway"
[ -x "$bin" ] || fail "no binary at $bin after the build"

# ---- the binary, run as the pod runs it ------------------------------------------------
step "run as the Deployment does"
command -v curl >/dev/null 2>&1 || unavailable "curl is missing"
command -v openssl >/dev/null 2>&1 || unavailable "openssl is missing"
command -v redis-cli >/dev/null 2>&1 || unavailable "redis-cli is missing"
command -v psql >/dev/null 2>&1 || unavailable "psql is missing"

redis_url=${KAILASH_TEST_REDIS_URL:-redis://127.0.0.1:6379}
[ "$(redis-cli -u "$redis_url" ping 2>/dev/null)" = "PONG" ] || unavailable "no Redis at $redis_url"
# A database of this run's own on the test server, dropped at the end.
db_name="kailash_deploy_check_$$"
read -r admin_url gateway_db_url < <(python3 - "${KAILASH_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}" "$db_name" <<'EOF'
import sys, urllib.parse as u
url = u.urlsplit(sys.argv[1])
print(url._replace(path="/postgres").geturl(), url._replace(path="/" + sys.argv[2]).geturl())
EOF
)
if ! psql "$admin_url" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db_name\"" >/dev/null 2>&1; then
  db_name=""
  unavailable "cannot create a database on the test PostgreSQL ($KAILASH_TEST_DATABASE_URL or 127.0.0.1:5432)"
fi

# The pod's file system, as far as a process can be given it here: the
# binary and the config in directories it cannot write (the image, the
# ConfigMap volume), the signing key readable by its group only (the Secret
# volume, defaultMode 0440 with fsGroup), one writable directory (the
# emptyDir at --data-dir).
ro="$work/ro"
mkdir -p "$ro/bin" "$ro/etc" "$ro/secrets/jwt" "$work/data"
cp "$bin" "$ro/bin/enterprise_gateway"
"$py" "$here/check_deploy.py" config "$root" "$ro/etc/gateway.toml"
# The key exactly as the Secret's instructions make it (secret.example.yaml).
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$ro/secrets/jwt/signing-key.pem" 2>/dev/null ||
  fail "openssl genpkey"
chmod 555 "$ro/bin/enterprise_gateway"
chmod 444 "$ro/etc/gateway.toml"
chmod 440 "$ro/secrets/jwt/signing-key.pem"
runner=()
if [ "$(id -u)" -eq 0 ]; then
  command -v setpriv >/dev/null 2>&1 || unavailable "setpriv (util-linux) is missing"
  chown "0:$run_uid" "$ro/secrets/jwt/signing-key.pem"
  chown "$run_uid:$run_uid" "$work/data"
  # allowPrivilegeEscalation: false and capabilities drop ALL.
  runner=(setpriv --reuid "$run_uid" --regid "$run_uid" --clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all --)
else
  run_uid=$(id -u)
  echo "[deploy] not root: running as uid $run_uid instead of 65532"
fi
chmod 700 "$work/data"
chmod 555 "$ro/bin" "$ro/etc" "$ro/secrets/jwt" "$ro/secrets" "$ro"

spare_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(spare_port)
ops_port=$(spare_port)
key_prefix="kailash-deploy-check-$$:"
base="http://127.0.0.1:$port"
ops="http://127.0.0.1:$ops_port"
touch "$work/started"
# Only the environment the Deployment gives (env -i), plus the overrides
# named at the top of this file.
"${runner[@]}" env -i PATH=/usr/bin:/bin HOME=/nonexistent RUST_LOG=info \
  KAILASH_REDIS_URL="$redis_url" KAILASH_DATABASE_URL="$gateway_db_url" \
  KAILASH_AUTH__SIGNING_KEY="$ro/secrets/jwt/signing-key.pem" \
  KAILASH_SERVER__OPS_LISTEN="127.0.0.1:$ops_port" KAILASH_STATE__KEY_PREFIX="$key_prefix" \
  "$ro/bin/enterprise_gateway" --config "$ro/etc/gateway.toml" --data-dir "$work/data" --listen "127.0.0.1:$port" \
  >"$work/gateway.log" 2>&1 &
gateway_pid=$!
gateway_failed() { tail -n 30 "$work/gateway.log" >&2 || true; fail "$*"; }

# The startupProbe's 120 s, then the readiness probe.
t0=$(date +%s)
for _ in $(seq 1 1200); do
  curl -sf -o /dev/null --max-time 2 "$base/health/live" && break
  kill -0 "$gateway_pid" 2>/dev/null || gateway_failed "the gateway exited during start"
  sleep 0.1
done
curl -sf -o /dev/null --max-time 2 "$base/health/live" || gateway_failed "GET /health/live never answered 200 in 120 s"
echo "[deploy] /health/live 200 after $(( $(date +%s) - t0 ))s (pid $gateway_pid)"
for _ in $(seq 1 600); do
  [ "$(curl -s -o "$work/ready.json" -w '%{http_code}' --max-time 2 "$base/health/ready")" = "200" ] && break
  kill -0 "$gateway_pid" 2>/dev/null || gateway_failed "the gateway exited before it was ready"
  sleep 0.1
done
code=$(curl -s -o "$work/ready.json" -w '%{http_code}' --max-time 2 "$base/health/ready")
[ "$code" = "200" ] || gateway_failed "GET /health/ready answers $code: $(cat "$work/ready.json")"
echo "[deploy] /health/ready 200: $(cat "$work/ready.json")"

# The operations port has the details and the metrics; the main port not.
curl -sf --max-time 5 "$ops/health/ready" -o "$work/ops-ready.json" || gateway_failed "the operations port's /health/ready"
python3 - "$work/ops-ready.json" <<'EOF' || gateway_failed "the readiness report"
import json, sys
report = json.load(open(sys.argv[1]))
checks = report.get("checks", {})
if isinstance(checks, list):
    checks = {c.get("name"): c for c in checks}
summary = {name: c.get("status") for name, c in checks.items()}
print(f"[deploy] readiness details (operations port): {report.get('status')} {summary}")
for need in ("state", "pubsub", "audit", "database"):
    if summary.get(need) != "pass":
        sys.exit(f"check {need!r} is {summary.get(need)!r}, expected passing (Redis, pub/sub, audit, PostgreSQL)")
EOF
curl -sf --max-time 5 "$ops/metrics" -o "$work/metrics.prom" || gateway_failed "GET /metrics on the operations port"
grep -q '^kailash_' "$work/metrics.prom" || gateway_failed "no kailash_ metrics on the operations port"
# (404, or 401 from the authentication in front of every unknown route.)
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$base/metrics")
case $code in 401 | 404) ;; *) gateway_failed "the main port answers /metrics with $code (the metrics belong on the operations port only)" ;; esac
[ "$(psql "$gateway_db_url" -Atc "SELECT to_regclass('kailash_audit') IS NOT NULL")" = "t" ] ||
  gateway_failed "no kailash_audit table: the audit trail is not in PostgreSQL"

# Who it runs as, and where it wrote.
[ "$(ps -o uid= -p "$gateway_pid" | tr -d ' ')" = "$run_uid" ] || gateway_failed "the gateway does not run as uid $run_uid"
if [ "$(id -u)" -eq 0 ]; then
  grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$gateway_pid/status" || gateway_failed "no_new_privs is not set"
  grep -q '^CapEff:[[:space:]]*0*$' "/proc/$gateway_pid/status" || gateway_failed "the gateway holds capabilities"
  # A read-only root file system: nothing of this uid outside the data dir.
  stray=$(find /tmp /var/tmp /dev/shm -xdev -path "$work/data" -prune -o -uid "$run_uid" -newer "$work/started" -print 2>/dev/null | head -5)
  [ -z "$stray" ] || gateway_failed "the gateway wrote outside its data directory: $stray"
fi
echo "[deploy] runs as uid $run_uid; data directory: $(cd "$work/data" && find . -mindepth 1 -maxdepth 2 | sort | tr '\n' ' ')"

# SIGTERM drains and exits 0 within the Deployment's grace period.
grace=$(python3 -c 'import sys, re; print(re.search(r"terminationGracePeriodSeconds:\s*(\d+)", open(sys.argv[1]).read()).group(1))' "$k8s/deployment.yaml")
t0=$(date +%s)
kill -TERM "$gateway_pid"
for _ in $(seq 1 $(( grace * 10 ))); do
  kill -0 "$gateway_pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$gateway_pid" 2>/dev/null && gateway_failed "still running ${grace}s after SIGTERM (the kubelet would SIGKILL it)"
rc=0
wait "$gateway_pid" || rc=$?
gateway_pid=""
[ "$rc" -eq 0 ] || gateway_failed "exited with status $rc after SIGTERM"
if grep -q ' ERROR ' "$work/gateway.log"; then
  grep ' ERROR ' "$work/gateway.log" | head -5 >&2
  fail "the gateway logged errors"
fi
echo "[deploy] SIGTERM: exited 0 after $(( $(date +%s) - t0 ))s"

step "done"
