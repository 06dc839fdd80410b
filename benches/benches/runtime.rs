//! Workflow runtime overhead per node, on the two workflows of
//! `kailash_benches::runtime_workflows`: `chain10` (ten `transform` nodes
//! in a row) and `fanout10` (one input → ten transforms → one join, eleven
//! nodes), each run whole through the executor (compiled once, outside the
//! loop; a fresh `RunContext` — run id — per run, default limits, so the
//! deadline timer and the byte budget are armed as in production).
//!
//! `alone/<shape>` times the same nodes' own work: each node's compiled
//! JMESPath expression ([`Transform::evaluate`]) on the exact input the
//! executor hands it, for every node of one run; the inputs are built in
//! the untimed setup (`iter_batched`), so building them — which the
//! executor does for each node — counts as the runtime's overhead.
//!
//! Per-node overhead = (time(`run/<shape>`) − time(`alone/<shape>`)) /
//! nodes. Both are per run; the throughput line is nodes/s.
//! `benches/runtime_vs_py.sh` computes the same figures with the
//! `runtime_bench` binary and puts kailash-py's beside them.
//!
//! ```text
//! cargo bench -p kailash-benches --bench runtime
//! ```

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use kailash_benches::runtime_workflows::{Shape, principal, tenant};
use kailash_core::clock::SystemClock;
use kailash_runtime::{CancelToken, Executor, NodeRegistry, RunContext, RunStatus, compile};
use serde_json::Value;

fn bench_runtime(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let tenant = tenant();
    let who = principal();
    let executor = Executor::new(Arc::new(SystemClock));
    let registry = NodeRegistry::builtin();

    let mut group = c.benchmark_group("runtime");
    for shape in Shape::ALL {
        group.throughput(Throughput::Elements(shape.nodes() as u64));
        let wf = compile(&shape.definition(), &tenant, &registry).expect("valid");
        let inputs = shape.inputs();
        let cancel = CancelToken::new();
        let check = rt.block_on(executor.run(
            &RunContext::new("wf-bench", tenant.clone(), who.clone()).expect("run id"),
            &wf,
            inputs.clone(),
            &cancel,
        ));
        assert_eq!(check.status, RunStatus::Completed);
        assert!(shape.check(check.outputs.as_ref().expect("outputs")));

        group.bench_function(format!("run/{}", shape.name()), |b| {
            b.iter(|| {
                let ctx = RunContext::new("wf-bench", tenant.clone(), who.clone()).expect("id");
                let r = rt.block_on(executor.run(&ctx, &wf, inputs.clone(), &cancel));
                debug_assert_eq!(r.status, RunStatus::Completed);
                black_box(r)
            })
        });

        let work = shape.node_work();
        group.bench_function(format!("alone/{}", shape.name()), |b| {
            b.iter_batched(
                || {
                    work.iter()
                        .map(|(_, input)| Value::Object(input.clone()))
                        .collect::<Vec<_>>()
                },
                |inputs| {
                    for ((t, _), input) in work.iter().zip(inputs) {
                        black_box(t.evaluate(input, u64::MAX).expect("evaluates"));
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_runtime);
criterion_main!(benches);
