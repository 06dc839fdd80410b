#!/usr/bin/env bash
# The workflow runtime side by side with kailash-py 2.65's LocalRuntime, in
# one run, on the same two workflows and the same input (issue 14, item 8):
#   chain10   workflow input -> 10 transform nodes in a row
#   fanout10  workflow input -> 10 independent transforms -> 1 join (11 nodes)
# Rust: target/release/runtime_bench (benches/src/bin/runtime_bench.rs),
# Executor::run per run, in process. Python: benches/kailash_py/runtime_bench.py,
# LocalRuntime.execute per run, in process, kailash-py's DataTransformer as
# the transform node. Both: warm-up first, then batches; per run = median of
# the batch means.
#
# Rust runs twice (before and after Python) and the better of the two is
# kept per workflow; Python runs once (two configs: LocalRuntime() and
# LocalRuntime(enable_monitoring=False)); the ratio is against the faster
# Python config. Prints the load (/proc/loadavg) before and after, a table
# and the targets (overhead <= 5 us/node, ratio >= 100x).
#
# It builds runtime_bench in release (cargo, ~1 min warm; a cold release
# build of kailash-benches' dependencies takes much longer) unless NO_BUILD=1,
# and creates the venv with kailash==2.65.0 from PyPI when it is absent.
# Measuring takes ~1-2 min.
#
# usage: [VENV=/tmp/kailash-py-2.65] [RUST_SECS=3] [PY_RUNS=200] [NO_BUILD=1]
#        [KEEP=1] benches/runtime_vs_py.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
VENV=${VENV:-/tmp/kailash-py-2.65}
KAILASH_PY_VERSION=2.65.0
RUST_SECS=${RUST_SECS:-3}
PY_RUNS=${PY_RUNS:-200}
NO_BUILD=${NO_BUILD:-}
KEEP=${KEEP:-}
BIN=$root/target/release/runtime_bench

die() { echo "runtime_vs_py.sh: $*" >&2; exit 1; }
command -v python3 >/dev/null || die "needs python3 (3.10+)"

work=$(mktemp -d -t kailash-runtime-vs-py.XXXXXX)
cleanup() { if [ -n "$KEEP" ]; then echo "results kept in $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

# ---- the Python side: a venv with kailash-py, created when absent -----------
if ! "$VENV/bin/python" -c "import kailash, sys; sys.exit(kailash.__version__ != '$KAILASH_PY_VERSION')" 2>/dev/null; then
  echo "== creating $VENV with kailash==$KAILASH_PY_VERSION (PyPI)" >&2
  python3 -m venv "$VENV" || die "python3 -m venv $VENV failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/pip" install -q "kailash==$KAILASH_PY_VERSION" || die "pip install kailash==$KAILASH_PY_VERSION failed"
fi

# ---- the Rust side -----------------------------------------------------------
if [ -z "$NO_BUILD" ]; then
  echo "== cargo build --release -p kailash-benches --bin runtime_bench" >&2
  (cd "$root" && cargo build --release -q -p kailash-benches --bin runtime_bench) || die "build failed"
fi
[ -x "$BIN" ] || die "no $BIN: (cd $root && cargo build --release -p kailash-benches --bin runtime_bench)"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== load before: $load_before ($(nproc) cores)" >&2
echo "== rust, run 1" >&2
timeout 120 "$BIN" --secs "$RUST_SECS" > "$work/rust1.json"
echo "== kailash-py $KAILASH_PY_VERSION, $PY_RUNS runs per workflow and config" >&2
# kailash-py's default LocalRuntime records every run in a SQLite file under
# ~/.kailash/tracking: HOME points into the work directory so that file goes
# away with it.
mkdir -p "$work/home"
HOME="$work/home" timeout 300 "$VENV/bin/python" "$here/kailash_py/runtime_bench.py" --runs "$PY_RUNS" \
  > "$work/py.json" 2> "$work/py.stderr" || { cat "$work/py.stderr" >&2; die "the Python bench failed"; }
echo "== rust, run 2" >&2
timeout 120 "$BIN" --secs "$RUST_SECS" > "$work/rust2.json"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$work" "$load_before" "$load_after" <<'PY'
import json, sys
work, load_before, load_after = sys.argv[1:4]
rust = [json.load(open(f"{work}/rust{i}.json")) for i in (1, 2)]
py = json.load(open(f"{work}/py.json"))
print(f"load average before: {load_before}   after: {load_after}")
print(f"kailash-py {py['kailash']} (Python {py['python']}), node {py['node']}, "
      f"{py['runs']} runs per config after {py['warmup']} warm-up runs")
print()
hdr = ("workflow", "nodes", "rust µs/run", "(run 1 / 2)", "runs/s", "node work µs", "overhead µs/node",
       "py µs/run default", "py µs/run no-monitoring", "py overhead µs/node", "ratio", "ratio to default")
rows, ok = [], True
for name in ("chain10", "fanout10"):
    r1, r2 = (r["workflows"][name] for r in rust)
    r = min(r1, r2, key=lambda w: w["per_run_us"])
    p = py["workflows"][name]
    cfgs = p["configs"]
    best = min(cfgs.values(), key=lambda c: c["per_run_us"])
    ratio = best["per_run_us"] / r["per_run_us"]
    ok &= r["overhead_per_node_us"] <= 5.0 and ratio >= 100
    rows.append((name, str(r["nodes"]), f"{r['per_run_us']:.2f}",
                 f"{r1['per_run_us']:.2f} / {r2['per_run_us']:.2f}", f"{r['runs_per_s']:,.0f}",
                 f"{r['node_alone_us']:.2f}", f"{r['overhead_per_node_us']:.2f}",
                 f"{cfgs['default']['per_run_us']:,.0f}", f"{cfgs['no_monitoring']['per_run_us']:,.0f}",
                 f"{best['overhead_per_node_us']:,.0f}", f"{ratio:,.0f}x",
                 f"{cfgs['default']['per_run_us'] / r['per_run_us']:,.0f}x"))
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for row in rows:
    print("| " + " | ".join(row) + " |")
print()
print("ratio = kailash-py's faster config µs/run ÷ rust µs/run (the better of two rust runs);")
print("ratio to default = LocalRuntime() µs/run ÷ rust µs/run")
print("overhead µs/node = (µs/run − the nodes' own work µs) ÷ nodes")
print("targets: overhead ≤ 5 µs/node, ratio ≥ 100x:", "met" if ok else "NOT MET")
PY
