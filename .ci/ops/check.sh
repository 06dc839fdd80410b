#!/usr/bin/env bash
# Checks the shipped operations files (deploy/prometheus, deploy/alertmanager,
# deploy/grafana) with the tools that read them, and against a real
# reference deployment:
#
#   1. promtool check rules   alerts.yml, recording.yml
#   2. promtool test rules    deploy/prometheus/tests/*.yml, and every alert
#                             has a firing and a non-firing case, every
#                             recorded series a test (check_ops.py coverage)
#   3. promtool check config  prometheus.yml, and its commented Kubernetes
#                             variant uncommented
#   4. amtool check-config    alertmanager.yml, and where each severity routes
#   5. the Grafana dashboard: its structure, and every query (template
#                             variables substituted) parsed by promtool
#   6. the metrics: the gateway binary ($OPS_BIN, default
#      target/debug/enterprise_gateway) started twice on spare loopback
#      ports with the demo config and the memory backend — once driven by
#      exercise.py (logins ok, failed, locked; an evicted session; allowed,
#      denied and unauthenticated calls; refresh-token reuse; a workflow run;
#      a rate-limit refusal), once with its state backend pointing at a
#      closed port (state-backend errors and latency, the state check down)
#      — and every metric the dashboard and rules name must be in the
#      scrapes of /metrics, or in metrics-allowlist.txt with a reason; every
#      label value they match on must be in the scrapes or, for events the
#      run cannot cause (status="5xx", outcome="failed"), a string literal
#      of the crates (a typo would make a rule silently never fire).
#
# Installs Debian's prometheus and prometheus-alertmanager (for promtool and
# amtool) when they are missing: as root, or through `sudo -n`; their
# services are kept from starting. Under CI=true a tool or binary that is
# missing and cannot be had fails the run; elsewhere that is a skip (exit 0
# for the tools; the static checks still run without the binary). Any other
# failure exits 1 naming the file, rule, query or metric.
#
# usage: [OPS_BIN=path/to/enterprise_gateway] [OPS_KEEP=1] .ci/ops/check.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

BIN=${OPS_BIN:-target/debug/enterprise_gateway}
prom=deploy/prometheus
am=deploy/alertmanager/alertmanager.yml
dash=deploy/grafana/kailash.json

started=$(date +%s)
step() { printf '[ops] %s (t+%ss)\n' "$1" "$(( $(date +%s) - started ))"; }
fail() { echo "[ops] FAILED: $*" >&2; exit 1; }
unavailable() {
  if [ "${CI:-}" = "true" ]; then
    echo "[ops] FAILED: $* (CI=true: failing instead of skipping)" >&2
    exit 1
  fi
  echo "[ops] SKIPPED: $*" >&2
  exit 0
}

work=$(mktemp -d -t kailash-ops.XXXXXX)
pids=()
policy_rc=""
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  [ -z "$policy_rc" ] || ${SUDO:-} rm -f "$policy_rc"
  if [ -n "${OPS_KEEP:-}" ]; then echo "[ops] work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- tools ---------------------------------------------------------------------
# Debian's packages, without their recommends; a policy-rc.d that refuses
# every service start is in place during the install (when there is none
# already), so no Prometheus or Alertmanager daemon is left running.
SUDO=""
apt_install() { # <package>...
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null || return 1
    SUDO="sudo -n"
  fi
  command -v apt-get >/dev/null 2>&1 || return 1
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy_rc=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\n# kailash .ci/ops/check.sh: no service starts during its install\nexit 101\n' |
      $SUDO tee "$policy_rc" >/dev/null && $SUDO chmod 755 "$policy_rc" || return 1
  fi
  local rc=0
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
    rc=1
  if [ -n "$policy_rc" ]; then $SUDO rm -f "$policy_rc"; policy_rc=""; fi
  return "$rc"
}

step "tools"
command -v python3 >/dev/null 2>&1 || unavailable "python3 is missing"
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
if [ "${#need[@]}" -gt 0 ]; then
  echo "[ops] installing ${need[*]} (Debian) for promtool/amtool"
  t0=$(date +%s)
  apt_install "${need[@]}" || unavailable "promtool/amtool are missing and ${need[*]} could not be installed (uid $(id -u))"
  echo "[ops] installed in $(( $(date +%s) - t0 ))s"
fi
echo "[ops] $(promtool --version 2>&1 | head -1)"
echo "[ops] $(amtool --version 2>&1 | head -1)"

# ---- rules -----------------------------------------------------------------------
step "promtool check rules"
promtool check rules "$prom/alerts.yml" "$prom/recording.yml" || fail "promtool check rules"

step "promtool test rules"
python3 "$here/check_ops.py" coverage "$prom/alerts.yml" "$prom/recording.yml" "$prom"/tests/*.yml ||
  fail "the rule tests do not cover every rule"
promtool test rules "$prom"/tests/*.yml || fail "promtool test rules"

# ---- Prometheus config -----------------------------------------------------------
step "promtool check config"
# rule_files are relative to the config file: promtool resolves them there.
promtool check config "$prom/prometheus.yml" || fail "promtool check config $prom/prometheus.yml"
# The Kubernetes variant: the static job removed, the commented job in force.
mkdir -p "$work/k8s"
cp "$prom/alerts.yml" "$prom/recording.yml" "$work/k8s/"
awk '
  /# BEGIN static/     { skip = 1; next }
  /# END static/       { skip = 0; next }
  /# BEGIN kubernetes/ { k8s = 1; next }
  /# END kubernetes/   { k8s = 0; next }
  skip { next }
  k8s  { sub(/^  # ?/, "  "); print; next }
  { print }
' "$prom/prometheus.yml" >"$work/k8s/prometheus.yml"
grep -q "^    kubernetes_sd_configs:" "$work/k8s/prometheus.yml" || fail "no Kubernetes variant found in $prom/prometheus.yml"
if promtool check config "$work/k8s/prometheus.yml" >"$work/k8s/check.log" 2>&1; then
  echo "[ops] the Kubernetes variant (pod discovery) is valid too"
elif grep -q "field kubernetes_sd_configs not found" "$work/k8s/check.log"; then
  # Debian builds Prometheus without Kubernetes discovery. Check the rest of
  # the job (its relabelling) with the discovery swapped for a static target.
  sed -i -e 's/^    kubernetes_sd_configs:$/    static_configs:/' \
    -e 's/^      - role: pod$/      - targets: ["127.0.0.1:8000"]/' "$work/k8s/prometheus.yml"
  promtool check config "$work/k8s/prometheus.yml" >"$work/k8s/check.log" 2>&1 ||
    { cat "$work/k8s/check.log" >&2; fail "the Kubernetes variant of $prom/prometheus.yml"; }
  echo "[ops] the Kubernetes variant is valid apart from kubernetes_sd_configs, which this promtool" \
    "(built without Kubernetes discovery) cannot read"
else
  cat "$work/k8s/check.log" >&2
  fail "the Kubernetes variant of $prom/prometheus.yml"
fi

# ---- Alertmanager config ---------------------------------------------------------
step "amtool check-config"
# The *_file secrets are read when a notification is sent, not by
# check-config: no secret (nor dummy) needs to exist here.
amtool check-config "$am" || fail "amtool check-config $am"
route_test() { # <expected receivers> <label=value>...
  local want=$1
  shift
  amtool config routes test --config.file="$am" --verify.receivers="$want" "$@" >/dev/null 2>&1 ||
    fail "$am: an alert with $* should reach $want, reaches $(amtool config routes test --config.file="$am" "$@" 2>/dev/null)"
  echo "[ops] route: $* -> $want"
}
route_test pagerduty-oncall,email-oncall,slack-ops severity=critical alertname=KailashStateBackendDown job=kailash-gateway
route_test slack-ops severity=warning alertname=KailashDiskUsageHigh job=kailash-gateway
route_test slack-info severity=info alertname=KailashTenantRefusals job=kailash-gateway
route_test slack-ops alertname=SomethingWithoutSeverity

# ---- Grafana dashboard -----------------------------------------------------------
step "dashboard queries"
python3 "$here/check_ops.py" dashboard "$dash" "$work/dashboard-rules.yml" || fail "$dash"
if ! promtool check rules "$work/dashboard-rules.yml" >"$work/dashboard-check.log" 2>&1; then
  # Name the query that does not parse.
  mkdir -p "$work/one"
  python3 "$here/check_ops.py" dashboard-one "$dash" "$work/one" | while IFS=$'\t' read -r file what; do
    if ! promtool check rules "$file" >"$file.log" 2>&1; then
      echo "[ops] does not parse: $what" >&2
      sed 's/^/    /' "$file.log" >&2
    fi
  done
  fail "dashboard queries in $dash do not parse"
fi
echo "[ops] every dashboard query parses"

# ---- metrics against a real scrape -----------------------------------------------------
step "metrics of the reference deployment"
if [ ! -x "$BIN" ]; then
  if [ "${CI:-}" = "true" ]; then
    fail "no gateway binary at $BIN (set OPS_BIN, or build enterprise_gateway first)"
  fi
  echo "[ops] SKIPPED the metrics check: no gateway binary at $BIN (set OPS_BIN)"
  step "done (static checks only)"
  exit 0
fi
command -v curl >/dev/null 2>&1 || unavailable "curl is missing"

config=examples/config/enterprise.toml
# No KAILASH_* from the caller's environment (KAILASH_REDIS_URL would move
# the state to Redis) and none of the integrations' API keys.
mapfile -t unset_env < <(
  env | sed -n 's/^\(KAILASH_[A-Za-z0-9_]*\)=.*/-u\n\1/p'
  python3 -c 'import sys, tomllib
for i in tomllib.load(open(sys.argv[1], "rb")).get("integrations", []):
    if i.get("api_key_env"): print("-u"); print(i["api_key_env"])' "$config"
)
spare_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
start_gateway() { # <name> <ready path> [VAR=value...]: sets $base
  local name=$1 ready=$2 port
  shift 2
  port=$(spare_port)
  base="http://127.0.0.1:$port"
  # Health checks every second (the demo: 30 s), so their gauges are
  # exported within the run.
  env "${unset_env[@]}" RUST_LOG=warn KAILASH_HEALTH__CHECK_INTERVAL=1s KAILASH_HEALTH__TIMEOUT=1s "$@" \
    "$BIN" --config "$config" --listen "127.0.0.1:$port" --data-dir "$work/$name-data" \
    >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 600); do
    curl -sf -o /dev/null --max-time 2 "$base$ready" && { echo "[ops] $name: pid $! on $base"; return 0; }
    kill -0 "$!" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 30 "$work/$name.log" >&2 || true
  fail "gateway $name did not come up on $base"
}
scrape_until() { # <url> <out> <sample name>: scrapes until the sample is there (10 s)
  for _ in $(seq 1 100); do
    curl -sf --max-time 5 "$1/metrics" -o "$2" && grep -q "^$3[{ ]" "$2" && return 0
    sleep 0.1
  done
  fail "$1/metrics has no $3 after 10 s"
}

# A: the demo deployment, driven through the events.
start_gateway exercised /health/ready
python3 "$here/exercise.py" "$base" || fail "exercise.py against $base (log: $work/exercised.log)"
scrape_until "$base" "$work/exercised.prom" kailash_health_check_up
grep -q '^kailash_health_check_up{check="state"} 1' "$work/exercised.prom" ||
  fail "the exercised gateway's state check is not up"

# B: the state backend is a closed port (Redis down): errors and latency of
# the state backend, and the seed's database_health == false.
dead=$(spare_port)
start_gateway state-down /health/live "KAILASH_REDIS_URL=redis://127.0.0.1:$dead/0"
scrape_until "$base" "$work/state-down.prom" kailash_state_backend_errors_total
scrape_until "$base" "$work/state-down.prom" kailash_health_check_up
grep -q '^kailash_health_check_up{check="state"} 0' "$work/state-down.prom" ||
  fail "with Redis down, kailash_health_check_up{check=\"state\"} is not 0 (KailashStateBackendDown would not fire)"

python3 "$here/check_ops.py" names --allow "$here/metrics-allowlist.txt" \
  --rules "$prom/alerts.yml" --rules "$prom/recording.yml" --dashboard "$dash" --source "$root" \
  "$work/exercised.prom" "$work/state-down.prom" ||
  fail "metrics named by the operations files are missing from the gateway's /metrics"

step "done"
