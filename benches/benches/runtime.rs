//! Runtime overhead per node: a 10-node `transform` chain and a 10-wide
//! `transform` fan-out with trivial expressions (`x`), run through the
//! executor (validation done once, outside the loop), against the same ten
//! expressions evaluated directly (`transform_alone`: the nodes' own work).
//! Throughput is per node, so Criterion's elements/s inverted is the time
//! per node; per-node overhead = (chain or fan-out − alone) / 10.
//!
//! ```text
//! cargo bench -p kailash-benches --bench runtime
//! ```

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kailash_core::clock::SystemClock;
use kailash_core::{Principal, TenantId};
use kailash_runtime::definition::Definition;
use kailash_runtime::transform::Transform;
use kailash_runtime::{CancelToken, Executor, NodeRegistry, RunContext, RunStatus, compile};
use kailash_tenancy::model::{Tenant, TenantSpec};
use serde_json::{Value, json};

const NODES: usize = 10;

fn chain() -> Definition {
    let nodes: Vec<Value> = (0..NODES)
        .map(|i| json!({ "id": format!("n{i}"), "type": "transform", "config": { "expression": "x" } }))
        .collect();
    let mut connections =
        vec![json!({ "from": { "input": "x" }, "to": { "node": "n0", "input": "x" } })];
    for i in 1..NODES {
        connections.push(json!({
            "from": { "node": format!("n{}", i - 1), "output": "result" },
            "to": { "node": format!("n{i}"), "input": "x" }
        }));
    }
    serde_json::from_value(json!({ "inputs": ["x"], "nodes": nodes, "connections": connections }))
        .expect("chain")
}

fn fan_out() -> Definition {
    let nodes: Vec<Value> = (0..NODES)
        .map(|i| json!({ "id": format!("n{i}"), "type": "transform", "config": { "expression": "x" } }))
        .collect();
    let connections: Vec<Value> = (0..NODES)
        .map(|i| json!({ "from": { "input": "x" }, "to": { "node": format!("n{i}"), "input": "x" } }))
        .collect();
    serde_json::from_value(json!({ "inputs": ["x"], "nodes": nodes, "connections": connections }))
        .expect("fan-out")
}

fn bench_runtime(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let spec: TenantSpec = serde_json::from_value(json!({ "id": "acme" })).expect("spec");
    let tenant = Arc::new(Tenant::try_from(spec).expect("tenant"));
    let who = Principal::builder("dave")
        .tenant(TenantId::new("acme").expect("tenant id"))
        .build();
    let ctx = RunContext::new("wf-bench", tenant.clone(), who).expect("run id");
    let executor = Executor::new(Arc::new(SystemClock));
    let registry = NodeRegistry::builtin();
    let inputs = json!({ "x": 1 });

    let mut group = c.benchmark_group("runtime");
    group.throughput(Throughput::Elements(NODES as u64));
    for (name, def) in [("chain10", chain()), ("fanout10", fan_out())] {
        let wf = compile(&def, &tenant, &registry).expect("valid");
        let cancel = CancelToken::new();
        group.bench_function(name, |b| {
            b.iter(|| {
                let r = rt.block_on(executor.run(&ctx, &wf, inputs.clone(), &cancel));
                assert_eq!(r.status, RunStatus::Completed);
                black_box(r)
            })
        });
    }
    let alone = Transform::compile("x").expect("expression");
    group.bench_function("transform_alone", |b| {
        b.iter(|| {
            for _ in 0..NODES {
                let out = alone
                    .evaluate(black_box(json!({ "x": 1 })), u64::MAX)
                    .expect("evaluates");
                black_box(out);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_runtime);
criterion_main!(benches);
