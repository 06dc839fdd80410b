//! The workflow model, the node registry and the executor, end to end on
//! real components (the built-in `transform`, user node types, tokio time).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kailash_core::clock::SystemClock;
use kailash_core::{Principal, TenantId};
use kailash_runtime::definition::Definition;
use kailash_runtime::node::{ConfigError, NodeContext, NodeError, Ports, Values};
use kailash_runtime::{
    CancelToken, CompiledWorkflow, DefinitionError, EventSink, Executor, Node, NodeHook, NodeInfo,
    NodeRegistry, NodeStatus, Refusal, RunContext, RunEvent, RunLimits, RunRecord, RunStatus,
    compile,
};
use kailash_tenancy::model::{Tenant, TenantSpec};
use serde_json::{Value, json};

fn tenant(spec: Value) -> Arc<Tenant> {
    let spec: TenantSpec = serde_json::from_value(spec).unwrap();
    Arc::new(Tenant::try_from(spec).unwrap())
}

fn acme() -> Arc<Tenant> {
    tenant(json!({ "id": "acme", "features": ["custom_nodes"] }))
}

fn def(v: Value) -> Definition {
    serde_json::from_value(v).unwrap()
}

fn ctx(tenant: Arc<Tenant>) -> RunContext {
    let id = tenant.id.clone();
    let who = Principal::builder("dave")
        .tenant(TenantId::new(id.as_str()).unwrap())
        .build();
    RunContext::new("wf-test", tenant, who).unwrap()
}

fn executor() -> Executor {
    Executor::new(Arc::new(SystemClock))
}

/// A user node whose behaviour is a closure over its input.
struct Custom {
    ports: Ports,
    run: Box<dyn Fn(Values) -> futures_run::BoxRun + Send + Sync>,
}

mod futures_run {
    use std::future::Future;
    use std::pin::Pin;

    use kailash_runtime::node::{NodeError, Values};

    pub(crate) type BoxRun = Pin<Box<dyn Future<Output = Result<Values, NodeError>> + Send>>;
}

#[async_trait]
impl Node for Custom {
    fn ports(&self) -> Ports {
        self.ports.clone()
    }
    async fn run(&self, _ctx: &NodeContext<'_>, input: Values) -> Result<Values, NodeError> {
        (self.run)(input).await
    }
}

fn custom<F, Fut>(registry: &mut NodeRegistry, name: &str, ports: Ports, f: F)
where
    F: Fn(Values) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<Values, NodeError>> + Send + 'static,
{
    registry
        .register_custom(
            name,
            move |_: &Value| -> Result<Arc<dyn Node>, ConfigError> {
                let f = f.clone();
                Ok(Arc::new(Custom {
                    ports: ports.clone(),
                    run: Box::new(move |input| Box::pin(f(input))),
                }))
            },
        )
        .unwrap();
}

fn result(v: Value) -> Values {
    Values::from_iter([("result".to_owned(), v)])
}

async fn run(
    ex: &Executor,
    tenant: Arc<Tenant>,
    wf: &CompiledWorkflow,
    inputs: Value,
) -> RunRecord {
    ex.run(&ctx(tenant), wf, inputs, &CancelToken::new()).await
}

fn node<'a>(r: &'a RunRecord, id: &str) -> &'a kailash_runtime::NodeRecord {
    r.nodes.iter().find(|n| n.id == id).unwrap()
}

mod validation {
    use super::*;

    /// A node type with fixed ports and a config-dependent feature.
    struct Gated(Option<String>);

    #[async_trait]
    impl Node for Gated {
        fn ports(&self) -> Ports {
            Ports::named(&["in"], &["out"])
        }
        fn required_feature(&self) -> Option<&str> {
            self.0.as_deref()
        }
        async fn run(&self, _: &NodeContext<'_>, _: Values) -> Result<Values, NodeError> {
            Ok(Values::from_iter([("out".to_owned(), Value::Null)]))
        }
    }

    fn registry() -> NodeRegistry {
        let mut r = NodeRegistry::builtin();
        r.register_open(
            "gated",
            |config: &Value| -> Result<Arc<dyn Node>, ConfigError> {
                let db = config.get("db").and_then(Value::as_str);
                Ok(Arc::new(Gated(
                    (db == Some("analytics")).then(|| "advanced_analytics".to_owned()),
                )))
            },
        )
        .unwrap();
        r.register_custom("mine", |_: &Value| -> Result<Arc<dyn Node>, ConfigError> {
            Ok(Arc::new(Gated(None)))
        })
        .unwrap();
        r
    }

    fn t(id: &str, ty: &str) -> Value {
        json!({ "id": id, "type": ty })
    }

    fn conn(from: &str, out: &str, to: &str, input: &str) -> Value {
        json!({ "from": { "node": from, "output": out }, "to": { "node": to, "input": input } })
    }

    #[test]
    fn every_refusal_about_a_node_names_it() {
        let plain = tenant(json!({
            "id": "globex", "max_workflow_nodes": 5,
            "allowed_node_types": ["transform", "gated", "mine", "secret"]
        }));
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "duplicate id",
                json!({ "nodes": [t("a", "transform"), t("a", "transform")] }),
                "a",
            ),
            (
                "disallowed type",
                json!({ "nodes": [t("a", "transform"), t("b", "llm")] }),
                "b",
            ),
            (
                "unregistered type",
                json!({ "nodes": [t("a", "transform"), t("b", "secret")] }),
                "b",
            ),
            (
                "invalid id",
                json!({ "nodes": [t("a b", "transform")] }),
                "a b",
            ),
            (
                "config too large",
                json!({ "nodes": [{ "id": "big", "type": "transform", "config": { "expression": "x".repeat(20_000) } }] }),
                "big",
            ),
            (
                "bad expression",
                json!({ "nodes": [t("a", "transform"), { "id": "bad", "type": "transform", "config": { "expression": "items[?" } }] }),
                "bad",
            ),
            (
                "expanding expression",
                json!({ "nodes": [{ "id": "boom", "type": "transform", "config": { "expression": (["[@, @] | []"; 11].join(" | ")) } }] }),
                "boom",
            ),
            (
                "unknown config field",
                json!({ "nodes": [{ "id": "c", "type": "transform", "config": { "expr": "@" } }] }),
                "c",
            ),
            (
                "dangling source node",
                json!({ "nodes": [t("a", "transform")], "connections": [conn("ghost", "result", "a", "x")] }),
                "ghost",
            ),
            (
                "dangling target node",
                json!({ "nodes": [t("a", "transform")], "connections": [conn("a", "result", "ghost", "x")] }),
                "ghost",
            ),
            (
                "unknown output port",
                json!({ "nodes": [t("a", "transform"), t("b", "transform")], "connections": [conn("a", "nope", "b", "x")] }),
                "a",
            ),
            (
                "unknown input port",
                json!({ "nodes": [t("a", "transform"), t("g", "gated")], "connections": [conn("a", "result", "g", "nope")] }),
                "g",
            ),
            (
                "input connected twice",
                json!({ "nodes": [t("a", "transform"), t("b", "transform"), t("c", "transform")],
                        "connections": [conn("a", "result", "c", "x"), conn("b", "result", "c", "x")] }),
                "c",
            ),
            (
                "user type without custom_nodes",
                json!({ "nodes": [t("a", "transform"), t("m", "mine")] }),
                "m",
            ),
            (
                "config needing advanced_analytics",
                json!({ "nodes": [{ "id": "q", "type": "gated", "config": { "db": "analytics" } }] }),
                "q",
            ),
            (
                "output from an unknown node",
                json!({ "nodes": [t("a", "transform")], "outputs": { "o": { "node": "zz", "output": "result" } } }),
                "zz",
            ),
        ];
        let registry = registry();
        for (what, d, node) in cases {
            let err = compile(&def(d), &plain, &registry).unwrap_err();
            assert_eq!(err.node(), Some(node), "{what}: {err}");
            assert!(
                err.to_string().contains(&format!("{node:?}")),
                "{what}: {err}"
            );
        }
    }

    #[test]
    fn a_cycle_is_refused_naming_a_node_on_it() {
        // x feeds the cycle a -> b -> c -> a but is not on it.
        let d = def(json!({
            "nodes": [t("x", "transform"), t("a", "transform"), t("b", "transform"), t("c", "transform")],
            "connections": [
                conn("x", "result", "a", "x"), conn("a", "result", "b", "a"),
                conn("b", "result", "c", "b"), conn("c", "result", "a", "c"),
            ]
        }));
        let err = compile(&d, &acme(), &registry()).unwrap_err();
        let DefinitionError::Cycle { node } = &err else {
            panic!("{err:?}")
        };
        assert!(["a", "b", "c"].contains(&node.as_str()), "{err}");
        let self_loop = def(
            json!({ "nodes": [t("s", "transform")], "connections": [conn("s", "result", "s", "x")] }),
        );
        let err = compile(&self_loop, &acme(), &registry()).unwrap_err();
        assert_eq!(err, DefinitionError::Cycle { node: "s".into() });
    }

    #[test]
    fn sizes_and_workflow_ports_are_bounded() {
        let many: Vec<Value> = (0..300).map(|i| t(&format!("n{i}"), "transform")).collect();
        let err = compile(&def(json!({ "nodes": many })), &acme(), &registry()).unwrap_err();
        assert!(
            matches!(err, DefinitionError::TooManyNodes { count: 300, .. }),
            "{err}"
        );
        let conns: Vec<Value> = (0..1025)
            .map(|i| conn("a", "result", "b", &format!("p{i}")))
            .collect();
        let err = compile(
            &def(json!({ "nodes": [t("a", "transform"), t("b", "transform")], "connections": conns })),
            &acme(),
            &registry(),
        )
        .unwrap_err();
        assert!(
            matches!(err, DefinitionError::TooManyConnections { count: 1025, .. }),
            "{err}"
        );
        // The tenant's own node limit, through kailash-tenancy.
        let small = tenant(json!({ "id": "tiny", "max_workflow_nodes": 1 }));
        let err = compile(
            &def(json!({ "nodes": [t("a", "transform"), t("b", "transform")] })),
            &small,
            &registry(),
        )
        .unwrap_err();
        assert!(matches!(err, DefinitionError::Tenant(_)), "{err}");
        // Undeclared and repeated workflow inputs.
        for d in [
            json!({ "nodes": [t("a", "transform")], "connections": [{ "from": { "input": "q" }, "to": { "node": "a", "input": "x" } }] }),
            json!({ "nodes": [t("a", "transform")], "inputs": ["q", "q"] }),
        ] {
            let err = compile(&def(d), &acme(), &registry()).unwrap_err();
            assert!(
                matches!(err, DefinitionError::BadWorkflowPort { .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn gated_types_pass_with_the_feature() {
        let rich =
            tenant(json!({ "id": "rich", "features": ["custom_nodes", "advanced_analytics"] }));
        let d = def(json!({
            "nodes": [t("m", "mine"), { "id": "q", "type": "gated", "config": { "db": "analytics" } }],
            "connections": [conn("m", "out", "q", "in")]
        }));
        assert_eq!(compile(&d, &rich, &registry()).unwrap().len(), 2);
    }
}

mod execution {
    use super::*;

    #[tokio::test]
    async fn outputs_flow_along_a_diamond() {
        let d = def(json!({
            "inputs": ["n"],
            "nodes": [
                { "id": "top", "type": "transform", "config": { "expression": "{v: n, tag: 'top'}" } },
                { "id": "left", "type": "transform", "config": { "expression": "t.v" } },
                { "id": "right", "type": "transform", "config": { "expression": "t.tag" } },
                { "id": "join", "type": "transform", "config": { "expression": "[l, r]" } }
            ],
            "connections": [
                { "from": { "input": "n" }, "to": { "node": "top", "input": "n" } },
                { "from": { "node": "top", "output": "result" }, "to": { "node": "left", "input": "t" } },
                { "from": { "node": "top", "output": "result" }, "to": { "node": "right", "input": "t" } },
                { "from": { "node": "left", "output": "result" }, "to": { "node": "join", "input": "l" } },
                { "from": { "node": "right", "output": "result" }, "to": { "node": "join", "input": "r" } }
            ]
        }));
        let wf = compile(&d, &acme(), &NodeRegistry::builtin()).unwrap();
        let r = run(&executor(), acme(), &wf, json!({ "n": 7 })).await;
        assert_eq!(r.status, RunStatus::Completed, "{r:?}");
        // No declared outputs: the sink node's outputs, by node id.
        assert_eq!(r.outputs, Some(json!({ "join": { "result": [7, "top"] } })));
        assert_eq!(node(&r, "left").output, Some(json!({ "result": 7 })));
        assert!(
            r.nodes
                .iter()
                .all(|n| n.status == NodeStatus::Completed && n.duration_us.is_some())
        );
        assert!(r.peak_bytes > 0 && r.run_id.starts_with("run-"));
        assert_eq!(serde_json::to_value(r.status).unwrap(), json!("completed"));
    }

    #[tokio::test]
    async fn independent_branches_run_concurrently() {
        // Each of two nodes waits until both have arrived: serial would hang.
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let mut registry = NodeRegistry::builtin();
        custom(
            &mut registry,
            "meet",
            Ports::named(&[], &["result"]),
            move |_| {
                let barrier = barrier.clone();
                async move {
                    barrier.wait().await;
                    Ok(result(json!("met")))
                }
            },
        );
        let d =
            def(json!({ "nodes": [{ "id": "a", "type": "meet" }, { "id": "b", "type": "meet" }] }));
        let wf = compile(&d, &acme(), &registry).unwrap();
        let ex = executor().with_limits(RunLimits {
            max_execution_time: Some(Duration::from_secs(10)),
            ..RunLimits::default()
        });
        let r = run(&ex, acme(), &wf, json!({})).await;
        assert_eq!(r.status, RunStatus::Completed, "{r:?}");
        assert_eq!(
            r.outputs,
            Some(json!({ "a": { "result": "met" }, "b": { "result": "met" } }))
        );
    }

    /// A node that never finishes; it says when it started and sets
    /// `dropped` when its future is dropped.
    fn forever(
        registry: &mut NodeRegistry,
        started: Arc<tokio::sync::Notify>,
        dropped: Arc<AtomicBool>,
    ) {
        struct OnDrop(Arc<AtomicBool>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        custom(
            registry,
            "forever",
            Ports::named(&[], &["result"]),
            move |_| {
                let (started, dropped) = (started.clone(), dropped.clone());
                async move {
                    let _guard = OnDrop(dropped);
                    started.notify_one();
                    std::future::pending::<()>().await;
                    Ok(Values::new())
                }
            },
        );
    }

    #[tokio::test]
    async fn cancellation_stops_in_flight_nodes_promptly() {
        let (started, dropped) = (
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(AtomicBool::new(false)),
        );
        let mut registry = NodeRegistry::builtin();
        forever(&mut registry, started.clone(), dropped.clone());
        let d = def(
            json!({ "nodes": [{ "id": "stuck", "type": "forever" }, { "id": "quick", "type": "transform" }] }),
        );
        let wf = Arc::new(compile(&d, &acme(), &registry).unwrap());
        let token = CancelToken::new();
        let handle = tokio::spawn({
            let (wf, token) = (wf.clone(), token.clone());
            async move { executor().run(&ctx(acme()), &wf, json!({}), &token).await }
        });
        started.notified().await;
        let at = std::time::Instant::now();
        token.cancel();
        let r = tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .unwrap()
            .unwrap();
        assert!(at.elapsed() < Duration::from_secs(1));
        assert_eq!(r.status, RunStatus::Cancelled, "{r:?}");
        assert_eq!(node(&r, "stuck").status, NodeStatus::Cancelled);
        assert_eq!(node(&r, "quick").status, NodeStatus::Completed);
        assert!(
            dropped.load(Ordering::SeqCst),
            "the in-flight node was not dropped"
        );
        assert!(r.outputs.is_none());

        // A token cancelled before the run starts: no node starts.
        dropped.store(false, Ordering::SeqCst);
        let r = executor().run(&ctx(acme()), &wf, json!({}), &token).await;
        assert_eq!(r.status, RunStatus::Cancelled);
        assert!(r.nodes.iter().all(|n| n.status == NodeStatus::Pending));
        assert!(!dropped.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_times_out_and_drops_in_flight_nodes() {
        let (started, dropped) = (
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(AtomicBool::new(false)),
        );
        let mut registry = NodeRegistry::builtin();
        forever(&mut registry, started, dropped.clone());
        let d = def(json!({ "nodes": [{ "id": "stuck", "type": "forever" }] }));
        let wf = compile(&d, &acme(), &registry).unwrap();

        // The executor's own deadline.
        let ex = executor().with_limits(RunLimits {
            max_execution_time: Some(Duration::from_millis(250)),
            ..RunLimits::default()
        });
        let at = tokio::time::Instant::now();
        let r = run(&ex, acme(), &wf, json!({})).await;
        assert_eq!(r.status, RunStatus::TimedOut, "{r:?}");
        assert_eq!(at.elapsed(), Duration::from_millis(250));
        assert_eq!(node(&r, "stuck").status, NodeStatus::Cancelled);
        assert!(dropped.swap(false, Ordering::SeqCst));

        // The tenant's lower limit wins over the executor's default 300 s.
        let quick = tenant(
            json!({ "id": "quick", "features": ["custom_nodes"], "max_execution_time_secs": 2 }),
        );
        let wf = compile(&d, &quick, &registry).unwrap();
        let at = tokio::time::Instant::now();
        let r = run(&executor(), quick, &wf, json!({})).await;
        assert_eq!(r.status, RunStatus::TimedOut, "{r:?}");
        assert_eq!(at.elapsed(), Duration::from_secs(2));
        assert!(r.reason.unwrap().contains("2000 ms"));
        assert!(dropped.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn the_byte_budget_trips_naming_the_node() {
        let mut registry = NodeRegistry::builtin();
        // A user node that ignores the budget it is handed.
        custom(
            &mut registry,
            "bloat",
            Ports::named(&["x"], &["result"]),
            |_| async { Ok(result(json!("y".repeat(10_000)))) },
        );
        let d = def(json!({
            "inputs": ["x"],
            "nodes": [
                { "id": "small", "type": "transform", "config": { "expression": "x" } },
                { "id": "fat", "type": "bloat" },
                { "id": "after", "type": "transform" }
            ],
            "connections": [
                { "from": { "input": "x" }, "to": { "node": "small", "input": "x" } },
                { "from": { "node": "small", "output": "result" }, "to": { "node": "fat", "input": "x" } },
                { "from": { "node": "fat", "output": "result" }, "to": { "node": "after", "input": "x" } }
            ]
        }));
        let wf = compile(&d, &acme(), &registry).unwrap();
        let ex = executor().with_limits(RunLimits {
            max_bytes: Some(5_000),
            ..RunLimits::default()
        });
        let r = run(&ex, acme(), &wf, json!({ "x": "tiny" })).await;
        assert_eq!(r.status, RunStatus::Failed, "{r:?}");
        assert_eq!(r.failed_node.as_deref(), Some("fat"));
        let reason = r.reason.clone().unwrap();
        assert!(
            reason.contains("\"fat\"") && reason.contains("byte budget of 5000"),
            "{reason}"
        );
        assert_eq!(node(&r, "small").status, NodeStatus::Completed);
        assert_eq!(node(&r, "fat").status, NodeStatus::Failed);
        assert_eq!(node(&r, "after").status, NodeStatus::Pending);
        assert!(r.peak_bytes <= 5_000);

        // The tenant's max_memory_mb sets the budget too; a transform that
        // could expand past it refuses before building its result.
        let tight = tenant(json!({ "id": "tight", "max_memory_mb": 1 }));
        let d = def(json!({
            "inputs": ["s"],
            "nodes": [{ "id": "copy", "type": "transform", "config": { "expression": "[s, s, s, s, s, s, s, s]" } }],
            "connections": [{ "from": { "input": "s" }, "to": { "node": "copy", "input": "s" } }]
        }));
        let wf = compile(&d, &tight, &NodeRegistry::builtin()).unwrap();
        let r = run(&executor(), tight, &wf, json!({ "s": "z".repeat(200_000) })).await;
        assert_eq!(r.status, RunStatus::Failed, "{r:?}");
        assert_eq!(r.failed_node.as_deref(), Some("copy"));
        assert!(r.reason.unwrap().contains("budget"));
        assert!(r.peak_bytes <= 1 << 20);

        // Inputs larger than the whole budget fail before any node runs.
        let r = run(
            &ex,
            acme(),
            &compile(
                &def(json!({ "inputs": ["x"], "nodes": [{ "id": "a", "type": "transform" }] })),
                &acme(),
                &registry,
            )
            .unwrap(),
            json!({ "x": "q".repeat(6_000) }),
        )
        .await;
        assert_eq!((r.status, r.failed_node), (RunStatus::Failed, None));
        assert!(r.nodes.iter().all(|n| n.status == NodeStatus::Pending));
    }

    /// Refuses one node by id and remembers every node it was asked about.
    struct RefuseOne {
        refuse: &'static str,
        asked: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl NodeHook for RefuseOne {
        async fn before_node(&self, ctx: &RunContext, node: &NodeInfo<'_>) -> Result<(), Refusal> {
            assert_eq!(ctx.principal.subject(), "dave");
            self.asked.lock().unwrap().push(node.id.to_owned());
            if node.id == self.refuse {
                return Err(Refusal::new(format!(
                    "node:{}:execute denied",
                    node.node_type
                )));
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_refused_node_refuses_the_run_and_later_nodes_never_run() {
        let ran = Arc::new(AtomicUsize::new(0));
        let mut registry = NodeRegistry::builtin();
        let counter = ran.clone();
        custom(
            &mut registry,
            "count",
            Ports::named(&["x"], &["result"]),
            move |_| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    Ok(result(Value::Null))
                }
            },
        );
        let d = def(json!({
            "nodes": [{ "id": "a", "type": "count" }, { "id": "b", "type": "count" }, { "id": "c", "type": "count" }],
            "connections": [
                { "from": { "node": "a", "output": "result" }, "to": { "node": "b", "input": "x" } },
                { "from": { "node": "b", "output": "result" }, "to": { "node": "c", "input": "x" } }
            ]
        }));
        let wf = compile(&d, &acme(), &registry).unwrap();
        let hook = Arc::new(RefuseOne {
            refuse: "b",
            asked: Mutex::new(Vec::new()),
        });
        let r = run(&executor().with_hook(hook.clone()), acme(), &wf, json!({})).await;
        assert_eq!(r.status, RunStatus::Refused, "{r:?}");
        assert_eq!(r.failed_node.as_deref(), Some("b"));
        assert!(r.reason.as_deref().unwrap().contains("\"b\""));
        assert!(
            r.reason
                .as_deref()
                .unwrap()
                .contains("node:count:execute denied")
        );
        assert_eq!(node(&r, "b").status, NodeStatus::Refused);
        assert_eq!(node(&r, "c").status, NodeStatus::Pending);
        assert_eq!(ran.load(Ordering::SeqCst), 1, "only a ran");
        assert_eq!(*hook.asked.lock().unwrap(), ["a", "b"]);
        assert_eq!(serde_json::to_value(r.status).unwrap(), json!("refused"));
    }

    #[derive(Default)]
    struct Collect(Mutex<Vec<Value>>);

    impl EventSink for Collect {
        fn publish(&self, event: &RunEvent) {
            let v = serde_json::to_value(event).unwrap();
            assert_eq!(v["event"], event.name());
            self.0.lock().unwrap().push(v);
        }
    }

    #[tokio::test]
    async fn events_failures_inputs_and_truncated_records() {
        let sink = Arc::new(Collect::default());
        let mut registry = NodeRegistry::builtin();
        custom(
            &mut registry,
            "fail",
            Ports::named(&["x"], &["result"]),
            |_| async { Err(NodeError::new("upstream said no")) },
        );
        custom(
            &mut registry,
            "silent",
            Ports::named(&[], &["result"]),
            |_| async { Ok(Values::new()) },
        );
        let ex = executor().with_events(sink.clone()).with_limits(RunLimits {
            max_recorded_output_bytes: 16,
            ..RunLimits::default()
        });

        // Completed: the events in order, a long output recorded cut short.
        let d = def(json!({
            "inputs": ["s"],
            "nodes": [{ "id": "a", "type": "transform", "config": { "expression": "s" } }],
            "connections": [{ "from": { "input": "s" }, "to": { "node": "a", "input": "s" } }],
            "outputs": { "copy": { "node": "a", "output": "result" }, "raw": { "input": "s" } }
        }));
        let wf = compile(&d, &acme(), &registry).unwrap();
        let long = "é".repeat(50);
        let r = run(&ex, acme(), &wf, json!({ "s": long })).await;
        assert_eq!(r.status, RunStatus::Completed, "{r:?}");
        let a = node(&r, "a");
        assert!(a.output_truncated);
        assert!(a.output.as_ref().unwrap().as_str().unwrap().len() <= 16);
        assert!(r.outputs_truncated);
        let events = std::mem::take(&mut *sink.0.lock().unwrap());
        let names: Vec<&str> = events
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["execution.started", "node.completed", "execution.completed"]
        );
        assert_eq!(events[1]["node"], "a");
        assert_eq!(events[2]["status"], "completed");
        assert_eq!(events[0]["run_id"], json!(r.run_id));

        // Inputs of the wrong shape: failed before any node, the reason says which.
        for (inputs, says) in [
            (json!([1]), "object"),
            (json!({}), "missing"),
            (json!({ "s": 1, "t": 2 }), "not declared"),
        ] {
            assert!(wf.check_inputs(&inputs).is_err());
            let r = run(&ex, acme(), &wf, inputs).await;
            assert_eq!(r.status, RunStatus::Failed);
            assert!(
                r.reason.as_deref().unwrap().contains(says),
                "{:?}",
                r.reason
            );
        }

        // A failing node fails the run naming it; its event says failed.
        sink.0.lock().unwrap().clear();
        let d = def(json!({ "nodes": [{ "id": "boom", "type": "fail" }] }));
        let r = run(
            &ex,
            acme(),
            &compile(&d, &acme(), &registry).unwrap(),
            json!({}),
        )
        .await;
        assert_eq!(
            (r.status, r.failed_node.as_deref()),
            (RunStatus::Failed, Some("boom"))
        );
        assert!(r.reason.unwrap().contains("upstream said no"));
        let events = sink.0.lock().unwrap().clone();
        assert_eq!(events[1]["status"], "failed");
        assert_eq!(events[2]["status"], "failed");

        // A node that leaves out an output someone reads fails, named.
        let d = def(json!({
            "nodes": [{ "id": "s", "type": "silent" }, { "id": "t", "type": "transform" }],
            "connections": [{ "from": { "node": "s", "output": "result" }, "to": { "node": "t", "input": "x" } }]
        }));
        let r = run(
            &ex,
            acme(),
            &compile(&d, &acme(), &registry).unwrap(),
            json!({}),
        )
        .await;
        assert_eq!(
            (r.status, r.failed_node.as_deref()),
            (RunStatus::Failed, Some("s"))
        );
        assert!(r.reason.unwrap().contains("\"result\""));
    }
}

#[path = "runtime_access/mod.rs"]
mod access;
