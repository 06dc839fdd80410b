//! The access-controlled runtime on the memory backend: each check called
//! and audited, session isolation, every limit, cancellation (local and
//! from another instance), abandoned runs and shutdown.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kailash_access::spec::AccessSpec;
use kailash_access::{AccessControl, AccessPolicy};
use kailash_core::audit::{AuditDecision, AuditEvent, MemoryAuditSink};
use kailash_core::clock::ManualClock;
use kailash_core::state::SharedState;
use kailash_core::{Principal, TenantId};
use kailash_runtime::node::{ConfigError, NodeContext, NodeError, Ports, Values};
use kailash_runtime::runtime::{
    AUDIT_EXECUTE, AUDIT_NODE, AUDIT_RUN, AUDIT_SESSION, AccessControlledRuntime, RunRequest,
    RuntimeConfig, RuntimeError,
};
use kailash_runtime::{NewWorkflow, Node, NodeRegistry, NodeStatus, RunStatus, WorkflowStore};
use kailash_tenancy::model::{Tenant, TenantSpec};
use serde_json::{Value, json};

/// Sleeps `config.ms` milliseconds, then passes its input `x` on.
struct Hold(u64);

#[async_trait]
impl Node for Hold {
    fn ports(&self) -> Ports {
        Ports::named(&["x"], &["result"])
    }
    async fn run(&self, _: &NodeContext<'_>, input: Values) -> Result<Values, NodeError> {
        tokio::time::sleep(Duration::from_millis(self.0)).await;
        let x = input.get("x").cloned().unwrap_or(Value::Null);
        Ok(Values::from_iter([("result".to_owned(), x)]))
    }
}

/// A user node with a bug: it panics.
struct Boom;

#[async_trait]
impl Node for Boom {
    fn ports(&self) -> Ports {
        Ports::named(&[], &["result"])
    }
    async fn run(&self, _: &NodeContext<'_>, _: Values) -> Result<Values, NodeError> {
        panic!("a bug in a user node");
    }
}

fn registry() -> NodeRegistry {
    let mut r = NodeRegistry::builtin();
    r.register_custom("boom", |_: &Value| {
        Ok::<Arc<dyn Node>, ConfigError>(Arc::new(Boom))
    })
    .unwrap();
    r.register_custom("hold", |config: &Value| {
        let ms = config.get("ms").and_then(Value::as_u64).unwrap_or(0);
        Ok::<Arc<dyn Node>, ConfigError>(Arc::new(Hold(ms)))
    })
    .unwrap();
    r
}

fn tenant(spec: Value) -> Arc<Tenant> {
    Arc::new(Tenant::try_from(serde_json::from_value::<TenantSpec>(spec).unwrap()).unwrap())
}

fn acme() -> Arc<Tenant> {
    tenant(
        json!({ "id": "acme", "name": "Acme Corp", "plan": "enterprise", "features": ["custom_nodes"] }),
    )
}

fn user(name: &str, tenant: &str, role: &str) -> Principal {
    Principal::builder(name)
        .tenant(TenantId::new(tenant).unwrap())
        .role(role)
        .build()
}

async fn access() -> AccessControl {
    let spec: AccessSpec = serde_json::from_value(json!({ "roles": [
        { "name": "analyst", "permissions": [
            "workflow:create", "workflow:execute", "node:transform:execute", "node:hold:execute",
            "node:boom:execute"
        ], "max_executions_per_hour": 100 },
        { "name": "viewer", "permissions": ["workflow:create", "workflow:execute"] },
        { "name": "manager", "permissions": ["workflow:execute", "execution:manage"] },
        { "name": "limited", "permissions": [
            "workflow:create", "workflow:execute", "node:transform:execute", "node:hold:execute"
        ], "max_executions_per_hour": 2 }
    ]}))
    .unwrap();
    AccessControl::new(AccessPolicy::load(&spec).await.unwrap())
}

struct World {
    clock: Arc<ManualClock>,
    state: SharedState,
    access: AccessControl,
    workflows: WorkflowStore,
    audit: Arc<MemoryAuditSink>,
}

async fn world() -> World {
    let clock = Arc::new(ManualClock::starting_now());
    let state = SharedState::memory(clock.clone());
    let access = access().await.clock(clock.clone());
    let workflows = WorkflowStore::new(access.clone(), state.clone(), registry());
    World {
        clock,
        state,
        access,
        workflows,
        audit: Arc::new(MemoryAuditSink::new()),
    }
}

impl World {
    async fn runtime(&self, config: RuntimeConfig) -> AccessControlledRuntime {
        AccessControlledRuntime::builder(
            config,
            self.access.clone(),
            self.state.clone(),
            self.workflows.clone(),
        )
        .audit(self.audit.clone())
        .build()
        .await
        .unwrap()
    }

    async fn workflow(&self, owner: &Principal, tenant: &Tenant, v: Value) -> String {
        let new: NewWorkflow = serde_json::from_value(v).unwrap();
        self.workflows.create(owner, tenant, new).await.unwrap().id
    }

    fn events(&self, action: &str) -> Vec<AuditEvent> {
        self.audit
            .events()
            .into_iter()
            .filter(|e| e.action == action)
            .collect()
    }
}

fn chain() -> Value {
    json!({
        "name": "double", "inputs": ["n"],
        "nodes": [
            {"id": "x2", "type": "transform", "config": {"expression": "[n, n]"}},
            {"id": "plus1", "type": "transform", "config": {"expression": "sum(m)"}}
        ],
        "connections": [
            {"from": {"input": "n"}, "to": {"node": "x2", "input": "n"}},
            {"from": {"node": "x2", "output": "result"}, "to": {"node": "plus1", "input": "m"}}
        ],
        "outputs": {"out": {"node": "plus1", "output": "result"}}
    })
}

fn held(ms: u64) -> Value {
    json!({
        "name": "slow",
        "nodes": [
            {"id": "first", "type": "transform", "config": {"expression": "`1`"}},
            {"id": "wait", "type": "hold", "config": {"ms": ms}}
        ],
        "connections": [{"from": {"node": "first", "output": "result"}, "to": {"node": "wait", "input": "x"}}]
    })
}

fn run(workflow: &str, inputs: Value) -> RunRequest {
    RunRequest {
        workflow_id: workflow.to_owned(),
        inputs,
    }
}

#[tokio::test]
async fn a_run_is_decided_node_by_node_and_every_step_is_audited() {
    let w = world().await;
    let rt = w.runtime(RuntimeConfig::default()).await;
    let acme = acme();
    let dave = user("dave", "acme", "analyst");
    let wf = w.workflow(&dave, &acme, chain()).await;

    let session = rt.open_session(&dave, &acme).await.unwrap();
    assert_eq!(
        (
            session.tenant_id.as_str(),
            session.tenant_name.as_str(),
            session.billing_plan.as_str()
        ),
        ("acme", "Acme Corp", "enterprise")
    );
    assert_eq!(session.isolation_level, "session");
    assert_eq!(session.resource_limits.max_executions_per_hour, Some(100));
    assert_eq!(session.resource_limits.max_execution_time_secs, Some(300));

    let started = rt
        .start(&dave, &acme, &session.id, run(&wf, json!({"n": 20})))
        .await
        .unwrap();
    assert_eq!(started.status, RunStatus::Pending);
    assert_eq!(started.session.as_deref(), Some(session.id.as_str()));
    let done = rt.wait(&dave, &acme, &started.run_id).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(done.outputs, Some(json!({"out": 40.0})));

    assert_eq!(w.events(AUDIT_SESSION).len(), 1);
    let execute = w.events(AUDIT_EXECUTE);
    assert_eq!(execute.len(), 1);
    assert_eq!(execute[0].decision, AuditDecision::Allow);
    assert!(execute[0].resource.as_deref().unwrap().contains(&wf));
    let nodes = w.events(AUDIT_NODE);
    assert_eq!(nodes.len(), 2);
    assert!(nodes.iter().all(|e| e.decision == AuditDecision::Allow));
    assert!(
        nodes[0]
            .resource
            .as_deref()
            .unwrap()
            .starts_with("node:transform:execute")
    );
    // The outcome is written after the record: wait for it.
    for _ in 0..100 {
        if !w.events(AUDIT_RUN).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let outcome = w.events(AUDIT_RUN);
    assert_eq!(outcome.len(), 1);
    assert_eq!(outcome[0].decision, AuditDecision::Success);

    let listed = rt.list(&dave, &acme, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].run_id, started.run_id);
}

#[tokio::test]
async fn a_node_without_its_permission_refuses_the_run_at_that_node() {
    let w = world().await;
    let rt = w.runtime(RuntimeConfig::default()).await;
    let acme = acme();
    // viewer may run workflows but holds no node permission.
    let vic = user("vic", "acme", "viewer");
    let wf = w.workflow(&vic, &acme, chain()).await;
    let session = rt.open_session(&vic, &acme).await.unwrap();
    let r = rt
        .start(&vic, &acme, &session.id, run(&wf, json!({"n": 1})))
        .await
        .unwrap();
    let done = rt.wait(&vic, &acme, &r.run_id).await.unwrap();
    assert_eq!(done.status, RunStatus::Refused);
    assert_eq!(done.failed_node.as_deref(), Some("x2"));
    assert!(
        done.reason
            .as_deref()
            .unwrap()
            .contains("node:transform:execute")
    );
    assert_eq!(
        done.nodes[1].status,
        NodeStatus::Pending,
        "the later node never ran"
    );
    let nodes = w.events(AUDIT_NODE);
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].decision, AuditDecision::Deny);
}

#[tokio::test]
async fn without_workflow_execute_nothing_starts_and_the_refusal_is_audited() {
    let w = world().await;
    let rt = w.runtime(RuntimeConfig::default()).await;
    let acme = acme();
    let dave = user("dave", "acme", "analyst");
    let wf = w.workflow(&dave, &acme, chain()).await;
    let session = rt.open_session(&dave, &acme).await.unwrap();
    // The same subject without the role (its token changed meanwhile).
    let stripped = user("dave", "acme", "nobody");
    let e = rt
        .start(&stripped, &acme, &session.id, run(&wf, json!({"n": 1})))
        .await
        .unwrap_err();
    assert!(matches!(e, RuntimeError::Forbidden { .. }), "{e:?}");
    assert_eq!(e.to_problem().status(), 403);
    assert!(rt.list(&dave, &acme, 10).await.unwrap().is_empty());
    let refused = w.events(AUDIT_RUN);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].decision, AuditDecision::Deny);
    assert!(
        refused[0]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("forbidden")
    );

    // Bad inputs: 422, named; nothing runs.
    let e = rt
        .start(&dave, &acme, &session.id, run(&wf, json!({"m": 1})))
        .await
        .unwrap_err();
    assert_eq!(e.to_problem().status(), 422);
    assert!(e.to_string().contains("\"n\""), "{e}");
    // An unknown workflow and another user's session answer 404.
    let e = rt
        .start(&dave, &acme, &session.id, run("wf-nope", json!({})))
        .await
        .unwrap_err();
    assert!(matches!(e, RuntimeError::NotFound));
    let erin = user("erin", "acme", "analyst");
    let e = rt
        .start(&erin, &acme, &session.id, run(&wf, json!({"n": 1})))
        .await
        .unwrap_err();
    assert!(matches!(e, RuntimeError::NotFound));
    assert!(rt.list(&dave, &acme, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn runs_and_sessions_are_isolated_unless_a_permission_says_otherwise() {
    let w = world().await;
    let rt = w.runtime(RuntimeConfig::default()).await;
    let acme = acme();
    let dave = user("dave", "acme", "analyst");
    let erin = user("erin", "acme", "analyst");
    let boss = user("boss", "acme", "manager");
    let wf = w.workflow(&dave, &acme, held(60_000)).await;
    let session = rt.open_session(&dave, &acme).await.unwrap();
    let r = rt
        .start(&dave, &acme, &session.id, run(&wf, json!({})))
        .await
        .unwrap();

    // A peer in the tenant sees neither the run nor the session.
    assert!(matches!(
        rt.get(&erin, &acme, &r.run_id).await,
        Err(RuntimeError::NotFound)
    ));
    assert!(matches!(
        rt.cancel(&erin, &acme, &r.run_id).await,
        Err(RuntimeError::NotFound)
    ));
    assert!(matches!(
        rt.session(&erin, &acme, &session.id).await,
        Err(RuntimeError::NotFound)
    ));
    assert!(rt.list(&erin, &acme, 10).await.unwrap().is_empty());
    // Another tenant's principal is refused before any key is read.
    let carol = user("carol", "globex", "analyst");
    assert!(matches!(
        rt.get(&carol, &acme, &r.run_id).await,
        Err(RuntimeError::TenantMismatch)
    ));
    let globex = tenant(json!({"id": "globex"}));
    assert!(matches!(
        rt.get(&carol, &globex, &r.run_id).await,
        Err(RuntimeError::NotFound)
    ));

    // execution:manage sees and cancels it.
    assert_eq!(
        rt.get(&boss, &acme, &r.run_id).await.unwrap().subject,
        "dave"
    );
    rt.cancel(&boss, &acme, &r.run_id).await.unwrap();
    let done = rt.wait(&dave, &acme, &r.run_id).await.unwrap();
    assert_eq!(done.status, RunStatus::Cancelled);
    let e = rt.cancel(&dave, &acme, &r.run_id).await.unwrap_err();
    assert_eq!(e.to_problem().status(), 409);

    // With isolation off, the tenant's workflow:execute holders see it.
    let open = w
        .runtime(RuntimeConfig {
            session_isolation: false,
            ..RuntimeConfig::default()
        })
        .await;
    assert_eq!(
        open.get(&erin, &acme, &r.run_id).await.unwrap().run_id,
        r.run_id
    );
    assert_eq!(
        open.open_session(&erin, &acme)
            .await
            .unwrap()
            .isolation_level,
        "tenant"
    );
}

#[tokio::test]
async fn concurrency_slots_are_shared_by_instances_and_freed_when_runs_end() {
    let w = world().await;
    let mut config = RuntimeConfig::default();
    config.resource_limits.max_concurrent_workflows.user = Some(1);
    config.resource_limits.max_concurrent_workflows.tenant = Some(2);
    // Two instances on one state.
    let a = w.runtime(config.clone()).await;
    let b = w.runtime(config.clone()).await;
    let acme = acme();
    let dave = user("dave", "acme", "analyst");
    let erin = user("erin", "acme", "analyst");
    let fred = user("fred", "acme", "analyst");
    let slow = w.workflow(&dave, &acme, held(60_000)).await;
    let sd = a.open_session(&dave, &acme).await.unwrap();
    let se = b.open_session(&erin, &acme).await.unwrap();
    let sf = b.open_session(&fred, &acme).await.unwrap();

    let first = a
        .start(&dave, &acme, &sd.id, run(&slow, json!({})))
        .await
        .unwrap();
    // dave's second run, on the other instance: his one slot is taken.
    let e = b
        .start(&dave, &acme, &sd.id, run(&slow, json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            RuntimeError::Concurrency {
                scope: "user",
                max: 1
            }
        ),
        "{e:?}"
    );
    let p = e.to_problem();
    assert_eq!(
        (p.status().as_u16(), p.retry_after()),
        (429, Some(Duration::from_secs(1)))
    );
    // erin takes the tenant's second slot; fred finds the tenant full.
    let second = b
        .start(&erin, &acme, &se.id, run(&slow, json!({})))
        .await
        .unwrap();
    let e = b
        .start(&fred, &acme, &sf.id, run(&slow, json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            RuntimeError::Concurrency {
                scope: "tenant",
                ..
            }
        ),
        "{e:?}"
    );
    // A refused run leaves no slot behind: cancelling one frees one.
    a.cancel(&dave, &acme, &first.run_id).await.unwrap();
    a.wait(&dave, &acme, &first.run_id).await.unwrap();
    let third = b
        .start(&fred, &acme, &sf.id, run(&slow, json!({})))
        .await
        .unwrap();
    for (rt, who, r) in [(&b, &erin, &second), (&b, &fred, &third)] {
        rt.cancel(who, &acme, &r.run_id).await.unwrap();
        rt.wait(who, &acme, &r.run_id).await.unwrap();
    }

    // The process scope is per instance.
    let mut per_process = RuntimeConfig::default();
    per_process.resource_limits.max_concurrent_workflows.process = Some(1);
    let c = w.runtime(per_process.clone()).await;
    let d = w.runtime(per_process).await;
    let r1 = c
        .start(&dave, &acme, &sd.id, run(&slow, json!({})))
        .await
        .unwrap();
    let e = c
        .start(&erin, &acme, &se.id, run(&slow, json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            RuntimeError::Concurrency {
                scope: "process",
                ..
            }
        ),
        "{e:?}"
    );
    let r2 = d
        .start(&erin, &acme, &se.id, run(&slow, json!({})))
        .await
        .unwrap();
    c.shutdown(Duration::from_secs(5)).await;
    d.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        c.get(&dave, &acme, &r1.run_id).await.unwrap().status,
        RunStatus::Abandoned
    );
    assert_eq!(
        d.get(&erin, &acme, &r2.run_id).await.unwrap().status,
        RunStatus::Abandoned
    );
}

#[tokio::test]
async fn a_cancellation_on_another_instance_reaches_the_run() {
    let w = world().await;
    let a = w.runtime(RuntimeConfig::default()).await;
    let b = w.runtime(RuntimeConfig::default()).await;
    let acme = acme();
    let dave = user("dave", "acme", "analyst");
    let slow = w.workflow(&dave, &acme, held(60_000)).await;
    let s = a.open_session(&dave, &acme).await.unwrap();
    let r = a
        .start(&dave, &acme, &s.id, run(&slow, json!({})))
        .await
        .unwrap();
    while b.get(&dave, &acme, &r.run_id).await.unwrap().status != RunStatus::Running {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Node progress is stored as nodes end: the other instance sees the
    // first node completed while the second still runs.
    let progressed = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            let seen = b.get(&dave, &acme, &r.run_id).await.unwrap();
            if seen.nodes[0].status == NodeStatus::Completed {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("progress stored");
    assert_eq!(progressed.status, RunStatus::Running);
    assert_eq!(progressed.nodes[1].status, NodeStatus::Pending);
    // b does not run it: the request goes out on pub/sub.
    b.cancel(&dave, &acme, &r.run_id).await.unwrap();
    let done = tokio::time::timeout(Duration::from_secs(2), b.wait(&dave, &acme, &r.run_id))
        .await
        .expect("cancelled well before a lease renewal")
        .unwrap();
    assert_eq!(done.status, RunStatus::Cancelled);
    assert_eq!(a.running(), 0);
}

#[tokio::test]
async fn deadline_byte_budget_and_hourly_limit_are_enforced() {
    let w = world().await;
    let mut config = RuntimeConfig::default();
    config.resource_limits.max_memory_mb = Some(1);
    let rt = w.runtime(config).await;
    // The tenant's own deadline is lower than the runtime's.
    let acme =
        tenant(json!({ "id": "acme", "features": ["custom_nodes"], "max_execution_time_secs": 1 }));
    let dave = user("dave", "acme", "analyst");
    let s = rt.open_session(&dave, &acme).await.unwrap();
    assert_eq!(s.resource_limits.max_execution_time_secs, Some(1));
    assert_eq!(s.resource_limits.max_memory_mb, Some(1));

    let slow = w.workflow(&dave, &acme, held(60_000)).await;
    let r = rt
        .start(&dave, &acme, &s.id, run(&slow, json!({})))
        .await
        .unwrap();
    let done = rt.wait(&dave, &acme, &r.run_id).await.unwrap();
    assert_eq!(done.status, RunStatus::TimedOut);
    assert_eq!(done.nodes[1].status, NodeStatus::Cancelled);

    let wf = w.workflow(&dave, &acme, chain()).await;
    let big = "x".repeat(1 << 20);
    let r = rt
        .start(&dave, &acme, &s.id, run(&wf, json!({"n": big})))
        .await
        .unwrap();
    let done = rt.wait(&dave, &acme, &r.run_id).await.unwrap();
    assert_eq!(done.status, RunStatus::Failed);
    assert!(
        done.reason.as_deref().unwrap().contains("byte budget"),
        "{done:?}"
    );

    // max_executions_per_hour: 2 for `limited`.
    let lim = user("lim", "acme", "limited");
    let s = rt.open_session(&lim, &acme).await.unwrap();
    for _ in 0..2 {
        let r = rt
            .start(&lim, &acme, &s.id, run(&wf, json!({"n": 1})))
            .await
            .unwrap();
        rt.wait(&lim, &acme, &r.run_id).await.unwrap();
    }
    let e = rt
        .start(&lim, &acme, &s.id, run(&wf, json!({"n": 1})))
        .await
        .unwrap_err();
    let p = e.to_problem();
    assert_eq!(p.status(), 429);
    assert!(p.retry_after().is_some());
    // The hour passes.
    w.clock.advance(Duration::from_secs(3601));
    let r = rt
        .start(&lim, &acme, &s.id, run(&wf, json!({"n": 1})))
        .await
        .unwrap();
    rt.wait(&lim, &acme, &r.run_id).await.unwrap();
}

#[test]
fn a_dead_instance_leaves_an_abandoned_run_and_no_slot() {
    let driver = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let w = driver.block_on(world());
    let mut config = RuntimeConfig::default();
    config.resource_limits.max_concurrent_workflows.user = Some(1);
    let acme = acme();
    let dave = user("dave", "acme", "analyst");
    let slow = driver.block_on(w.workflow(&dave, &acme, held(60_000)));
    let s = driver.block_on(async {
        let probe = w.runtime(config.clone()).await;
        probe.open_session(&dave, &acme).await.unwrap()
    });

    // The doomed instance lives in its own tokio runtime, dropped mid-run:
    // its tasks vanish without writing anything.
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let r = doomed.block_on(async {
        let a = w.runtime(config.clone()).await;
        let r = a
            .start(&dave, &acme, &s.id, run(&slow, json!({})))
            .await
            .unwrap();
        while a.get(&dave, &acme, &r.run_id).await.unwrap().status != RunStatus::Running {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        r
    });
    drop(doomed);

    driver.block_on(async {
        let b = w.runtime(config.clone()).await;
        // Within the lease it still reads running, and holds dave's slot.
        assert_eq!(
            b.get(&dave, &acme, &r.run_id).await.unwrap().status,
            RunStatus::Running
        );
        let e = b
            .start(&dave, &acme, &s.id, run(&slow, json!({})))
            .await
            .unwrap_err();
        assert!(matches!(e, RuntimeError::Concurrency { .. }));
        // The lease lapses.
        w.clock.advance(Duration::from_secs(16));
        let seen = b.get(&dave, &acme, &r.run_id).await.unwrap();
        assert_eq!(seen.status, RunStatus::Abandoned);
        assert!(seen.reason.as_deref().unwrap().contains("lease"));
        assert_eq!(
            b.list(&dave, &acme, 10).await.unwrap()[0].status,
            RunStatus::Abandoned
        );
        // Its slot lapsed with it.
        let again = b
            .start(&dave, &acme, &s.id, run(&slow, json!({})))
            .await
            .unwrap();
        b.shutdown(Duration::from_secs(5)).await;
        let ended = b.get(&dave, &acme, &again.run_id).await.unwrap();
        assert_eq!(ended.status, RunStatus::Abandoned);
        assert!(ended.reason.as_deref().unwrap().contains("shut down"));
    });
}

#[tokio::test]
async fn sessions_are_refused_for_inactive_or_over_quota_tenants_and_past_the_cap() {
    let w = world().await;
    let config = RuntimeConfig {
        max_sessions_per_user: 2,
        ..RuntimeConfig::default()
    };
    let rt = w.runtime(config).await;
    let dave = user("dave", "acme", "analyst");
    let off = tenant(json!({ "id": "acme", "active": false }));
    assert!(matches!(
        rt.open_session(&dave, &off).await,
        Err(RuntimeError::TenantInactive)
    ));

    // Two workflows under a quota of two, then the quota drops to one.
    let two = tenant(json!({ "id": "acme", "max_workflows_per_tenant": 2 }));
    w.workflow(&dave, &two, chain()).await;
    w.workflow(&dave, &two, chain()).await;
    let one = tenant(json!({ "id": "acme", "max_workflows_per_tenant": 1 }));
    let e = rt.open_session(&dave, &one).await.unwrap_err();
    assert!(
        matches!(e, RuntimeError::OverQuota { used: 2, limit: 1 }),
        "{e:?}"
    );
    assert_eq!(e.to_problem().status(), 403);

    let a = rt.open_session(&dave, &two).await.unwrap();
    rt.open_session(&dave, &two).await.unwrap();
    let e = rt.open_session(&dave, &two).await.unwrap_err();
    assert!(matches!(e, RuntimeError::TooManySessions { max: 2 }));
    rt.close_session(&dave, &two, &a.id).await.unwrap();
    assert!(matches!(
        rt.session(&dave, &two, &a.id).await,
        Err(RuntimeError::NotFound)
    ));
    rt.open_session(&dave, &two).await.unwrap();
    let refused = w
        .events(AUDIT_SESSION)
        .into_iter()
        .filter(|e| e.decision == AuditDecision::Deny)
        .count();
    // Inactive, over quota, past the cap, and the closed session's read.
    assert_eq!(refused, 4);

    // A session that expires is gone.
    w.clock.advance(Duration::from_secs(28_801));
    assert!(matches!(
        rt.session(&dave, &two, &a.id).await,
        Err(RuntimeError::NotFound)
    ));
}

#[tokio::test]
async fn closing_a_session_cancels_its_runs() {
    let w = world().await;
    let rt = w.runtime(RuntimeConfig::default()).await;
    let acme = acme();
    let dave = user("dave", "acme", "analyst");
    let slow = w.workflow(&dave, &acme, held(60_000)).await;
    let s = rt.open_session(&dave, &acme).await.unwrap();
    let r = rt
        .start(&dave, &acme, &s.id, run(&slow, json!({})))
        .await
        .unwrap();
    rt.close_session(&dave, &acme, &s.id).await.unwrap();
    assert_eq!(
        rt.wait(&dave, &acme, &r.run_id).await.unwrap().status,
        RunStatus::Cancelled
    );
    // No new run in a closed session.
    let e = rt
        .start(&dave, &acme, &s.id, run(&slow, json!({})))
        .await
        .unwrap_err();
    assert!(matches!(e, RuntimeError::NotFound));
}

#[tokio::test]
async fn the_memory_watermark_refuses_new_runs_and_config_errors_name_the_field() {
    let w = world().await;
    let mut config = RuntimeConfig::default();
    // Any live process is above one MiB.
    config.resource_limits.process_memory_watermark_mb = Some(1);
    let rt = w.runtime(config).await;
    let acme = acme();
    let dave = user("dave", "acme", "analyst");
    let wf = w.workflow(&dave, &acme, chain()).await;
    let s = rt.open_session(&dave, &acme).await.unwrap();
    let e = rt
        .start(&dave, &acme, &s.id, run(&wf, json!({"n": 1})))
        .await
        .unwrap_err();
    assert!(matches!(e, RuntimeError::MemoryPressure));
    let p = e.to_problem();
    assert_eq!(
        (p.status().as_u16(), p.retry_after().is_some()),
        (503, true)
    );

    // Auditing on without a sink, and values out of range, are refused.
    let e = AccessControlledRuntime::builder(
        RuntimeConfig::default(),
        w.access.clone(),
        w.state.clone(),
        w.workflows.clone(),
    )
    .build()
    .await
    .unwrap_err();
    assert_eq!(e.field, "audit_enabled");
    let bad: RuntimeConfig = serde_json::from_value(json!({"lease_secs": 1})).unwrap();
    assert_eq!(bad.validate().unwrap_err().field, "lease_secs");
    let bad: RuntimeConfig = serde_json::from_value(
        json!({"resource_limits": {"max_concurrent_workflows": {"user": 0}}}),
    )
    .unwrap();
    assert!(bad.validate().unwrap_err().field.ends_with(".user"));
    assert!(serde_json::from_value::<RuntimeConfig>(json!({"audit": true})).is_err());
}

#[tokio::test]
async fn a_run_refused_for_concurrency_is_not_charged_to_the_hourly_limit() {
    let w = world().await;
    let mut config = RuntimeConfig::default();
    config.resource_limits.max_concurrent_workflows.user = Some(1);
    let rt = w.runtime(config).await;
    let acme = acme();
    let lim = user("lim", "acme", "limited");
    let slow = w.workflow(&lim, &acme, held(60_000)).await;
    let quick = w.workflow(&lim, &acme, chain()).await;
    let s = rt.open_session(&lim, &acme).await.unwrap();
    let first = rt
        .start(&lim, &acme, &s.id, run(&slow, json!({})))
        .await
        .unwrap();
    for _ in 0..3 {
        let e = rt
            .start(&lim, &acme, &s.id, run(&quick, json!({"n": 1})))
            .await
            .unwrap_err();
        assert!(matches!(e, RuntimeError::Concurrency { .. }), "{e:?}");
    }
    rt.cancel(&lim, &acme, &first.run_id).await.unwrap();
    rt.wait(&lim, &acme, &first.run_id).await.unwrap();
    // One of two hourly executions is left: the refusals took none.
    let r = rt
        .start(&lim, &acme, &s.id, run(&quick, json!({"n": 1})))
        .await
        .unwrap();
    assert_eq!(
        rt.wait(&lim, &acme, &r.run_id).await.unwrap().status,
        RunStatus::Completed
    );
    let e = rt
        .start(&lim, &acme, &s.id, run(&quick, json!({"n": 1})))
        .await
        .unwrap_err();
    assert_eq!(e.to_problem().status(), 429);
    assert!(matches!(e, RuntimeError::Limit(_)), "{e:?}");
}

#[tokio::test]
async fn a_node_that_panics_fails_the_run_and_frees_everything() {
    let w = world().await;
    let mut config = RuntimeConfig::default();
    config.resource_limits.max_concurrent_workflows.user = Some(1);
    let rt = w.runtime(config).await;
    let acme = acme();
    let dave = user("dave", "acme", "analyst");
    let wf = w
        .workflow(
            &dave,
            &acme,
            json!({"name": "buggy", "nodes": [{"id": "b", "type": "boom"}]}),
        )
        .await;
    let s = rt.open_session(&dave, &acme).await.unwrap();
    let r = rt
        .start(&dave, &acme, &s.id, run(&wf, json!({})))
        .await
        .unwrap();
    let done = rt.wait(&dave, &acme, &r.run_id).await.unwrap();
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(done.reason.as_deref(), Some("a node panicked"));
    for _ in 0..100 {
        if rt.running() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(rt.running(), 0);
    // Its slot is free, and its outcome was audited.
    let again = rt
        .start(&dave, &acme, &s.id, run(&wf, json!({})))
        .await
        .unwrap();
    rt.wait(&dave, &acme, &again.run_id).await.unwrap();
    assert!(
        w.events(AUDIT_RUN)
            .iter()
            .any(|e| e.reason.as_deref() == Some("failed: a node panicked"))
    );
}

/// The execution API's published schemas are the ones enforced: the
/// document compiles for the validator, every operation is routed, shape
/// errors are 422 with a pointer, and the answers carry the documented
/// statuses.
#[cfg(feature = "openapi")]
mod http_contract {
    use super::*;
    use axum::Extension;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    struct Api {
        router: axum::Router,
        doc: Value,
        workflow: String,
    }

    async fn api() -> Api {
        let w = world().await;
        let rt = w.runtime(RuntimeConfig::default()).await;
        let acme = acme();
        let dave = user("dave", "acme", "analyst");
        let workflow = w.workflow(&dave, &acme, chain()).await;
        let router = kailash_runtime::http::router(rt)
            .layer(Extension(dave))
            .layer(Extension(acme))
            .layer(Extension(w.access.clone()));
        let doc = serde_json::to_value(kailash_runtime::http::openapi()).unwrap();
        Api {
            router,
            doc,
            workflow,
        }
    }

    impl Api {
        async fn call(&self, method: &str, uri: &str, body: Option<&str>) -> (u16, String, Value) {
            let mut req = http::Request::builder().method(method).uri(uri);
            if body.is_some() {
                req = req.header("content-type", "application/json");
            }
            let req = req
                .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
                .unwrap();
            let res = self.router.clone().oneshot(req).await.unwrap();
            let status = res.status().as_u16();
            let kind = res
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                kind,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        }

        /// Whether `status` is documented for `method` `template`.
        fn documents(&self, method: &str, template: &str, status: u16) -> bool {
            self.doc["paths"][template][method]["responses"][status.to_string()].is_object()
        }
    }

    #[test]
    fn the_document_compiles_for_the_validator() {
        let doc = kailash_runtime::http::openapi();
        kailash_core::schema::check_document(&doc).unwrap();
        let doc = serde_json::to_value(&doc).unwrap();
        let statuses = &doc["components"]["schemas"]["RunStatus"]["enum"];
        assert_eq!(
            statuses,
            &json!([
                "pending",
                "running",
                "completed",
                "failed",
                "cancelled",
                "timed_out",
                "refused",
                "abandoned"
            ])
        );
        let request = &doc["components"]["schemas"]["RunRequest"];
        assert_eq!(request["additionalProperties"], false, "{request}");
    }

    #[tokio::test]
    async fn every_documented_operation_is_routed_and_answers_a_documented_status() {
        let api = api().await;
        let paths = api.doc["paths"].as_object().unwrap().clone();
        let mut operations = 0;
        for (template, item) in &paths {
            for method in item.as_object().unwrap().keys() {
                let uri = template.replace("{id}", "as-nope");
                let body = (method == "post").then_some("{}");
                let (status, kind, problem) = api.call(&method.to_uppercase(), &uri, body).await;
                // The router's own 404/405 has no problem body.
                assert!(
                    kind.starts_with("application/"),
                    "{method} {uri}: {status} {kind}"
                );
                assert!(
                    api.documents(method, template, status),
                    "{method} {uri}: {status} {problem}"
                );
                operations += 1;
            }
        }
        assert_eq!(operations, 7);
    }

    #[tokio::test]
    async fn a_run_through_the_api_answers_its_documented_statuses() {
        let api = api().await;
        let (status, _, session) = api.call("POST", "/api/sessions", None).await;
        assert_eq!(status, 201, "{session}");
        let sid = session["id"].as_str().unwrap().to_owned();
        let path = format!("/api/sessions/{sid}/executions");
        let body = json!({"workflow_id": api.workflow, "inputs": {"n": 20}}).to_string();
        let (status, _, run) = api.call("POST", &path, Some(&body)).await;
        assert_eq!(status, 202, "{run}");
        assert_eq!(run["status"], "pending");
        let run_id = run["run_id"].as_str().unwrap().to_owned();
        let (status, _, list) = api.call("GET", "/api/executions?limit=100", None).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(
            (
                list["tenant"].as_str(),
                list["executions"][0]["run_id"].as_str()
            ),
            (Some("acme"), Some(run_id.as_str()))
        );
        // Inputs that do not match the workflow: a semantic 422, not the
        // schema's.
        let body = json!({"workflow_id": api.workflow, "inputs": {"m": 1}}).to_string();
        let (status, _, problem) = api.call("POST", &path, Some(&body)).await;
        assert_eq!(
            (status, problem["reason"].as_str()),
            (422, Some("invalid_inputs")),
            "{problem}"
        );
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .ends_with("invalid-inputs"),
            "{problem}"
        );
        let (status, _, _) = api.call("GET", &format!("/api/sessions/{sid}"), None).await;
        assert_eq!(status, 200);
        let (status, ..) = api
            .call("DELETE", &format!("/api/sessions/{sid}"), None)
            .await;
        assert_eq!(status, 204);
    }

    #[tokio::test]
    async fn shape_errors_are_422_with_a_pointer() {
        let api = api().await;
        let (_, _, session) = api.call("POST", "/api/sessions", None).await;
        let path = format!(
            "/api/sessions/{}/executions",
            session["id"].as_str().unwrap()
        );
        let long = "w".repeat(65);
        for (body, pointer) in [
            (json!({"workflow": api.workflow}), "/workflow"),
            (json!({"workflow_id": ""}), "/workflow_id"),
            (json!({"workflow_id": long}), "/workflow_id"),
            (json!({"workflow_id": "wf 1"}), "/workflow_id"),
            (
                json!({"workflow_id": api.workflow, "inputs": [1]}),
                "/inputs",
            ),
        ] {
            let (status, kind, problem) = api.call("POST", &path, Some(&body.to_string())).await;
            assert_eq!(
                (status, kind.as_str()),
                (422, "application/problem+json"),
                "{body}: {problem}"
            );
            let pointers: Vec<&str> = problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e["pointer"].as_str())
                .collect();
            assert!(pointers.contains(&pointer), "{body}: {problem}");
        }
        // Not JSON: 400; not application/json: 415.
        assert_eq!(api.call("POST", &path, Some("{")).await.0, 400);
        let req = http::Request::post(&path).body(Body::from("{}")).unwrap();
        let res = api.router.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), 415);
        for (uri, pointer) in [
            ("/api/executions?limit=x", "/limit"),
            ("/api/executions?limit=101", "/limit"),
            ("/api/executions?limit=-1", "/limit"),
        ] {
            let (status, _, problem) = api.call("GET", uri, None).await;
            assert_eq!(status, 422, "{uri}: {problem}");
            assert_eq!(problem["errors"][0]["pointer"], pointer, "{uri}: {problem}");
        }
        assert_eq!(
            api.call("GET", "/api/executions?limit=1&limit=2", None)
                .await
                .0,
            400
        );
        let (status, _, problem) = api
            .call("GET", &format!("/api/executions/{long}"), None)
            .await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["errors"][0]["pointer"], "/id", "{problem}");
        // 64 characters is within the schema: an unknown run, 404.
        let (status, ..) = api
            .call("GET", &format!("/api/executions/{}", "r".repeat(64)), None)
            .await;
        assert_eq!(status, 404);
    }
}
