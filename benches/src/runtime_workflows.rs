//! The workflow-runtime benches' two workflows, shared by the Criterion
//! bench `runtime`, the `runtime_bench` binary and (rebuilt in Python, same
//! shape, same data) `benches/kailash_py/runtime_bench.py`:
//!
//! - [`Shape::Chain`] (`chain10`): workflow input `data` → `n0` → `n1` → …
//!   → `n9`, ten `transform` nodes each evaluating `data` (its input port
//!   `data`, its value on `result`);
//! - [`Shape::FanOut`] (`fanout10`): workflow input `data` → `f0` … `f9`
//!   (ten `transform` nodes evaluating `data`, independent of each other)
//!   → one `join` transform with input ports `a0` … `a9` evaluating
//!   `[a0, a1, …, a9]`: eleven nodes.
//!
//! The workflow input is [`item`], a small JSON object. [`Shape::node_work`]
//! gives, for each node of one run, its compiled expression and the exact
//! input the executor hands it, so a bench can time the nodes' own work (the
//! JMESPath evaluation alone, [`Transform::evaluate`]) and subtract it from
//! a whole run: what is left, divided by the node count, is the runtime's
//! overhead per node.
//!
//! ```
//! use kailash_benches::runtime_workflows::{Shape, item};
//! use kailash_runtime::{CancelToken, Executor, NodeRegistry, RunContext, RunStatus, compile};
//! use kailash_core::clock::SystemClock;
//! use std::sync::Arc;
//!
//! let tenant = kailash_benches::runtime_workflows::tenant();
//! let wf = compile(&Shape::FanOut.definition(), &tenant, &NodeRegistry::builtin()).unwrap();
//! let ctx = RunContext::new("wf", tenant, kailash_benches::runtime_workflows::principal()).unwrap();
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! let run = rt.block_on(Executor::new(Arc::new(SystemClock)).run(
//!     &ctx, &wf, Shape::FanOut.inputs(), &CancelToken::new()));
//! assert_eq!(run.status, RunStatus::Completed);
//! assert!(Shape::FanOut.check(run.outputs.as_ref().unwrap()));
//! // The node-alone work gives the same values as the run.
//! for (t, input) in Shape::FanOut.node_work() {
//!     t.evaluate(serde_json::Value::Object(input), u64::MAX).unwrap();
//! }
//! ```

use std::sync::Arc;

use kailash_core::{Principal, TenantId};
use kailash_runtime::definition::Definition;
use kailash_runtime::node::Values;
use kailash_runtime::transform::Transform;
use kailash_tenancy::model::{Tenant, TenantSpec};
use serde_json::{Value, json};

/// The chain's length and the fan-out's width.
pub const WIDTH: usize = 10;

/// The workflow input `data`: a small order line.
pub fn item() -> Value {
    json!({ "id": 7, "qty": 2, "price": 5 })
}

/// The join's expression: `[a0, a1, …, a9]`.
pub fn join_expression() -> String {
    let ports: Vec<String> = (0..WIDTH).map(|i| format!("a{i}")).collect();
    format!("[{}]", ports.join(", "))
}

/// The tenant the benches run in (`acme`, every default).
///
/// # Panics
/// Never for this fixed spec (bench code).
pub fn tenant() -> Arc<Tenant> {
    let spec: TenantSpec = serde_json::from_value(json!({ "id": "acme" })).expect("tenant spec");
    Arc::new(Tenant::try_from(spec).expect("tenant"))
}

/// The principal that starts the runs (`dave` of `acme`).
///
/// # Panics
/// Never for this fixed id (bench code).
pub fn principal() -> Principal {
    let tenant = TenantId::new("acme").expect("tenant id");
    Principal::builder("dave").tenant(tenant).build()
}

/// One of the two benched workflows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Ten transforms in a row.
    Chain,
    /// One input to ten transforms, joined by an eleventh.
    FanOut,
}

impl Shape {
    /// Both, in the order the benches run them.
    pub const ALL: [Shape; 2] = [Shape::Chain, Shape::FanOut];

    /// `chain10` or `fanout10`.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Chain => "chain10",
            Shape::FanOut => "fanout10",
        }
    }

    /// Its node count: 10 or 11.
    pub fn nodes(self) -> usize {
        match self {
            Shape::Chain => WIDTH,
            Shape::FanOut => WIDTH + 1,
        }
    }

    /// Its definition (validated by `compile`, not here).
    ///
    /// # Panics
    /// Never: the JSON is fixed and of the definition's shape (bench code).
    pub fn definition(self) -> Definition {
        let transform = |id: String, expression: &str| json!({ "id": id, "type": "transform", "config": { "expression": expression } });
        let mut nodes = Vec::new();
        let mut connections = Vec::new();
        match self {
            Shape::Chain => {
                for i in 0..WIDTH {
                    nodes.push(transform(format!("n{i}"), "data"));
                    let from = if i == 0 {
                        json!({ "input": "data" })
                    } else {
                        json!({ "node": format!("n{}", i - 1), "output": "result" })
                    };
                    connections.push(
                        json!({ "from": from, "to": { "node": format!("n{i}"), "input": "data" } }),
                    );
                }
            }
            Shape::FanOut => {
                for i in 0..WIDTH {
                    nodes.push(transform(format!("f{i}"), "data"));
                    connections.push(json!({
                        "from": { "input": "data" },
                        "to": { "node": format!("f{i}"), "input": "data" }
                    }));
                    connections.push(json!({
                        "from": { "node": format!("f{i}"), "output": "result" },
                        "to": { "node": "join", "input": format!("a{i}") }
                    }));
                }
                nodes.push(transform("join".to_owned(), &join_expression()));
            }
        }
        serde_json::from_value(
            json!({ "inputs": ["data"], "nodes": nodes, "connections": connections }),
        )
        .expect("a definition")
    }

    /// A run's inputs: `{"data": item()}`.
    pub fn inputs(self) -> Value {
        json!({ "data": item() })
    }

    /// Whether `outputs` (a completed run's) are what the workflow computes:
    /// `{"n9": {"result": item}}` or `{"join": {"result": [item × 10]}}`.
    pub fn check(self, outputs: &Value) -> bool {
        let expected = match self {
            Shape::Chain => json!({ format!("n{}", WIDTH - 1): { "result": item() } }),
            Shape::FanOut => json!({ "join": { "result": vec![item(); WIDTH] } }),
        };
        *outputs == expected
    }

    /// Each node of one run: its compiled expression and the input object
    /// the executor hands it (port name → value).
    ///
    /// # Panics
    /// Never: the expressions are fixed and valid (bench code).
    pub fn node_work(self) -> Vec<(Transform, Values)> {
        let compile = |e: &str| Transform::compile(e).expect("a valid expression");
        let data = || Values::from_iter([("data".to_owned(), item())]);
        let mut work: Vec<(Transform, Values)> =
            (0..WIDTH).map(|_| (compile("data"), data())).collect();
        if self == Shape::FanOut {
            let joined = (0..WIDTH).map(|i| (format!("a{i}"), item())).collect();
            work.push((compile(&join_expression()), joined));
        }
        work
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kailash_core::clock::SystemClock;
    use kailash_runtime::{CancelToken, Executor, NodeRegistry, RunContext, RunStatus, compile};

    /// Each shape runs to the outputs `check` expects, and the node-alone
    /// work evaluates to exactly what each node gave in the run (same
    /// expressions, same inputs), so subtracting it is subtracting the
    /// nodes' own work.
    #[test]
    fn runs_and_node_work_agree() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let tenant = tenant();
        for shape in Shape::ALL {
            let wf = compile(&shape.definition(), &tenant, &NodeRegistry::builtin()).unwrap();
            let ctx = RunContext::new("wf", tenant.clone(), principal()).unwrap();
            let run = rt.block_on(Executor::new(Arc::new(SystemClock)).run(
                &ctx,
                &wf,
                shape.inputs(),
                &CancelToken::new(),
            ));
            assert_eq!(run.status, RunStatus::Completed, "{}", shape.name());
            assert!(
                shape.check(run.outputs.as_ref().unwrap()),
                "{:?}",
                run.outputs
            );
            assert!(!shape.check(&shape.inputs()));
            assert_eq!(run.nodes.len(), shape.nodes());
            let work = shape.node_work();
            assert_eq!(work.len(), shape.nodes());
            for ((t, input), node) in work.into_iter().zip(&run.nodes) {
                let alone = t.evaluate(Value::Object(input), u64::MAX).unwrap();
                assert_eq!(node.output, Some(json!({ "result": alone })), "{}", node.id);
            }
        }
    }
}
