//! The workflow runtime's per-run time and per-node overhead as one JSON
//! object, for `benches/runtime_vs_py.sh` to put beside kailash-py's
//! (`benches/kailash_py/runtime_bench.py`, the same workflows and data).
//!
//! For each workflow of `kailash_benches::runtime_workflows` (`chain10`,
//! `fanout10`):
//!
//! - **run**: a whole run through `Executor::run` (default limits: deadline
//!   timer and byte budget armed), a fresh `RunContext` (random run id) per
//!   run, on a current-thread tokio runtime, `block_on` per run — the
//!   in-process equivalent of kailash-py's `LocalRuntime.execute`. After
//!   `--warmup` seconds, `--batches` batches of about `--secs / --batches`
//!   seconds each; `per_run_us` is the median of the batch means.
//! - **node_alone**: the nodes' own work — each node's compiled JMESPath
//!   expression (`Transform::evaluate`) on the exact input the executor
//!   hands it, for every node of one run, on inputs built before the
//!   timing starts; median of batch means likewise.
//! - `overhead_per_node_us = (per_run_us − node_alone_us) / nodes`.
//!
//! usage: `runtime_bench [--secs S] [--warmup S] [--batches N]`
//! (defaults 3, 0.5, 10).

#![forbid(unsafe_code)]

use std::hint::black_box;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kailash_benches::runtime_workflows::{Shape, principal, tenant};
use kailash_core::clock::SystemClock;
use kailash_runtime::{CancelToken, Executor, NodeRegistry, RunContext, RunStatus, compile};
use serde_json::{Value, json};

/// Runs of the node-alone loop per timed batch (inputs prebuilt for them).
const ALONE_BATCH: usize = 2000;

struct Args {
    secs: f64,
    warmup: f64,
    batches: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        secs: 3.0,
        warmup: 0.5,
        batches: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--secs" => args.secs = value()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--warmup" => args.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--batches" => {
                args.batches = value()?.parse().map_err(|e| format!("--batches: {e}"))?;
            }
            "-h" | "--help" => {
                return Err("usage: runtime_bench [--secs S] [--warmup S] [--batches N]".into());
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !(args.secs > 0.0 && args.secs <= 600.0 && args.warmup >= 0.0 && args.warmup <= 60.0) {
        return Err("--secs must be in (0, 600] and --warmup in [0, 60]".into());
    }
    if args.batches == 0 || args.batches > 1000 {
        return Err("--batches must be in 1..=1000".into());
    }
    Ok(args)
}

/// Calls `step` (which does `n` units of work and returns how long the
/// timed part took) until `budget` has passed; the mean per unit.
fn batch_mean(budget: Duration, n: usize, mut step: impl FnMut() -> Duration) -> f64 {
    let start = Instant::now();
    let mut timed = Duration::ZERO;
    let mut units = 0usize;
    while units == 0 || start.elapsed() < budget {
        timed += step();
        units += n;
    }
    timed.as_secs_f64() / units as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("runtime_bench: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime_bench: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tenant = tenant();
    let who = principal();
    let executor = Executor::new(Arc::new(SystemClock));
    let registry = NodeRegistry::builtin();
    let batch_budget = Duration::from_secs_f64(args.secs / args.batches as f64);
    let mut workflows = serde_json::Map::new();

    for shape in Shape::ALL {
        let wf = match compile(&shape.definition(), &tenant, &registry) {
            Ok(wf) => wf,
            Err(e) => {
                eprintln!("runtime_bench: {}: {e}", shape.name());
                return ExitCode::FAILURE;
            }
        };
        let inputs = shape.inputs();
        let cancel = CancelToken::new();
        let run_once = || {
            let ctx = RunContext::new("wf-bench", tenant.clone(), who.clone())
                .map_err(|e| e.to_string())?;
            let r = rt.block_on(executor.run(&ctx, &wf, inputs.clone(), &cancel));
            if r.status != RunStatus::Completed {
                return Err(format!("{:?}: {:?}", r.status, r.reason));
            }
            Ok(r)
        };
        match run_once() {
            Ok(r) if r.outputs.as_ref().is_some_and(|o| shape.check(o)) => {}
            Ok(r) => {
                eprintln!(
                    "runtime_bench: {}: wrong outputs {:?}",
                    shape.name(),
                    r.outputs
                );
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("runtime_bench: {}: {e}", shape.name());
                return ExitCode::FAILURE;
            }
        }
        let warm = Instant::now();
        while warm.elapsed().as_secs_f64() < args.warmup {
            black_box(run_once().is_ok());
        }
        let mut failed = 0u64;
        let mut runs = 0u64;
        let run_means: Vec<f64> = (0..args.batches)
            .map(|_| {
                batch_mean(batch_budget, 64, || {
                    let t = Instant::now();
                    for _ in 0..64 {
                        if black_box(run_once()).is_err() {
                            failed += 1;
                        }
                    }
                    runs += 64;
                    t.elapsed()
                })
            })
            .collect();
        if failed > 0 {
            eprintln!(
                "runtime_bench: {}: {failed} runs did not complete",
                shape.name()
            );
            return ExitCode::FAILURE;
        }

        let work = shape.node_work();
        let alone_means: Vec<f64> = (0..args.batches)
            .map(|_| {
                batch_mean(batch_budget, ALONE_BATCH, || {
                    let prepared: Vec<Vec<Value>> = (0..ALONE_BATCH)
                        .map(|_| {
                            work.iter()
                                .map(|(_, input)| Value::Object(input.clone()))
                                .collect()
                        })
                        .collect();
                    let t = Instant::now();
                    for inputs in prepared {
                        for ((expr, _), input) in work.iter().zip(inputs) {
                            black_box(expr.evaluate(input, u64::MAX).ok());
                        }
                    }
                    t.elapsed()
                })
            })
            .collect();

        let us = |s: f64| s * 1e6;
        let per_run = median(run_means.clone());
        let alone = median(alone_means);
        let nodes = shape.nodes();
        workflows.insert(
            shape.name().to_owned(),
            json!({
                "nodes": nodes,
                "runs": runs,
                "per_run_us": us(per_run),
                "per_node_us": us(per_run) / nodes as f64,
                "runs_per_s": 1.0 / per_run,
                "node_alone_us": us(alone),
                "overhead_per_node_us": us(per_run - alone) / nodes as f64,
                "batch_means_us": run_means.into_iter().map(us).collect::<Vec<_>>(),
            }),
        );
    }
    let out = json!({
        "runtime": "kailash-runtime",
        "version": env!("CARGO_PKG_VERSION"),
        "batches": args.batches,
        "secs": args.secs,
        "workflows": workflows,
    });
    println!("{out:#}");
    ExitCode::SUCCESS
}
