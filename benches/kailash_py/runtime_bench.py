#!/usr/bin/env python3
"""The runtime benches' two workflows on kailash-py's LocalRuntime.

Builds the same two workflows as `kailash-benches`' `runtime` bench and its
`runtime_bench` binary (see benches/README.md, "Workflow runtime"):

- chain10:  workflow input `data` -> n0 -> n1 -> ... -> n9, each node a
  transform whose expression is `data` (its input `data`, given on `result`);
- fanout10: workflow input `data` -> f0..f9 (each `data`) -> one join whose
  inputs are a0..a9 and whose expression is `[a0, a1, ..., a9]` (11 nodes).

The transform node is kailash-py's `DataTransformer`
(kailash.nodes.transform.processors): a node configured with expression
strings (`transformations`) evaluated over its named inputs, its value on
the output `result` -- the same shape as the Rust `transform` node (a
JMESPath expression over the input ports, value on `result`).
`PythonCodeNode` (`code="result = data"`) was measured too and is ~8x
slower per node (it re-checks the code's AST and imports its allowed
modules on every run), so it would only inflate the ratio.

The join's inputs a0..a9 are not among DataTransformer's declared
parameters (`data`, `arg1`..`arg5`); the node accepts them on purpose
(its validate_inputs override) but kailash-py's base class logs an
"Unknown parameter(s)" WARNING for them on every run. That logger is set to
ERROR here so no log line is written; the check itself (a difflib
suggestion per name) still runs, as it does for every user of the node.

The fan-out's single workflow input reaches the ten nodes as per-node
parameters (`{"f0": {"data": X}, ...}`), kailash-py's way of feeding one
value to several entry nodes.

Two LocalRuntime configs are timed: `LocalRuntime()` as a user gets it,
whose task tracking writes every run and node to a SQLite file under
~/.kailash/tracking (most of its time: commits and closes), and
`LocalRuntime(enable_monitoring=False)`, which skips that tracking.

Each configuration is timed with `runtime.execute(workflow, parameters=...)`
on one LocalRuntime (used as a context manager, as its docs require), after
warm-up runs, in batches; the per-run time is the median of the batch
means. `node_alone` times the node's own work alone: `node.run(**inputs)`
(the DataTransformer's eval of its expression and its output validation)
on pre-built inputs, for every node of one run.

Prints one JSON object on stdout.
"""

import argparse
import json
import logging
import os
import statistics
import sys
import time
import warnings

NODES = 10
ITEM = {"id": 7, "qty": 2, "price": 5}
JOIN_EXPR = "[" + ", ".join(f"a{i}" for i in range(NODES)) + "]"


def chain(WorkflowBuilder):
    wf = WorkflowBuilder()
    for i in range(NODES):
        wf.add_node("DataTransformer", f"n{i}", {"transformations": ["data"]})
    for i in range(1, NODES):
        wf.add_connection(f"n{i - 1}", "result", f"n{i}", "data")
    params = {"n0": {"data": ITEM}}

    def check(results):
        assert results[f"n{NODES - 1}"]["result"] == ITEM, results

    # (inputs of each node of one run, node id) for node_alone
    work = [({"data": ITEM}, f"n{i}") for i in range(NODES)]
    return wf.build(), params, check, work


def fan_out(WorkflowBuilder):
    wf = WorkflowBuilder()
    for i in range(NODES):
        wf.add_node("DataTransformer", f"f{i}", {"transformations": ["data"]})
    wf.add_node("DataTransformer", "join", {"transformations": [JOIN_EXPR]})
    for i in range(NODES):
        wf.add_connection(f"f{i}", "result", "join", f"a{i}")
    params = {f"f{i}": {"data": ITEM} for i in range(NODES)}

    def check(results):
        assert results["join"]["result"] == [ITEM] * NODES, results

    work = [({"data": ITEM}, f"f{i}") for i in range(NODES)]
    work.append(({f"a{i}": ITEM for i in range(NODES)}, "join"))
    return wf.build(), params, check, work


def timed_batches(fn, batches, per_batch):
    """Median over `batches` of the mean seconds of `fn()` in a batch."""
    means = []
    for _ in range(batches):
        t = time.perf_counter()
        for _ in range(per_batch):
            fn()
        means.append((time.perf_counter() - t) / per_batch)
    return statistics.median(means), means


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="timed runs per workflow and config")
    ap.add_argument("--batches", type=int, default=5, help="batches the runs are split into")
    ap.add_argument("--warmup", type=int, default=20, help="untimed runs first")
    args = ap.parse_args()
    per_batch = max(1, args.runs // args.batches)

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)  # no log line is written per node (see the module doc)
    import kailash
    from kailash.nodes.transform.processors import DataTransformer
    from kailash.runtime.local import LocalRuntime
    from kailash.workflow.builder import WorkflowBuilder

    configs = {
        # what `LocalRuntime()` gives a user
        "default": {},
        # the per-node performance monitoring off (faster; not the default)
        "no_monitoring": {"enable_monitoring": False},
    }
    out = {
        "kailash": kailash.__version__,
        "python": sys.version.split()[0],
        "node": "DataTransformer",
        "runs": per_batch * args.batches,
        "batches": args.batches,
        "warmup": args.warmup,
        "workflows": {},
    }
    for name, build in (("chain10", chain), ("fanout10", fan_out)):
        workflow, params, check, work = build(WorkflowBuilder)
        nodes = len(work)
        entry = {"nodes": nodes, "configs": {}}
        for cname, kwargs in configs.items():
            with LocalRuntime(**kwargs) as runtime:
                results, _run_id = runtime.execute(workflow, parameters=params)
                check(results)
                for _ in range(args.warmup):
                    runtime.execute(workflow, parameters=params)
                per_run, means = timed_batches(
                    lambda: runtime.execute(workflow, parameters=params),
                    args.batches,
                    per_batch,
                )
            entry["configs"][cname] = {
                "runtime_kwargs": kwargs,
                "per_run_us": per_run * 1e6,
                "per_node_us": per_run * 1e6 / nodes,
                "runs_per_s": 1.0 / per_run,
                "batch_means_us": [m * 1e6 for m in means],
            }

        # The node's own work: each node of one run, on pre-built inputs.
        instances = [(DataTransformer(**workflow.nodes[nid].config), inputs) for inputs, nid in work]
        for node, inputs in instances:
            node.run(**inputs)
        alone, _ = timed_batches(
            lambda: [node.run(**inputs) for node, inputs in instances],
            args.batches,
            per_batch,
        )
        entry["node_alone_us"] = alone * 1e6
        for c in entry["configs"].values():
            c["overhead_per_node_us"] = (c["per_run_us"] - entry["node_alone_us"]) / nodes
        out["workflows"][name] = entry
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
