//! The `workflow_definition` fuzz harness, shared word for word by the fuzz
//! target (`fuzz/fuzz_targets/workflow_definition.rs`) and the stable corpus
//! replay (`tests/fuzz_corpus.rs`).
//!
//! The input is read as a create-workflow request body the way a caller's
//! JSON is ([`NewWorkflow`]: nodes with configs, connections, inputs and
//! outputs), then handed to [`WorkflowStore::create`] on the memory
//! backend, which checks the name and the definition against a tenant with
//! node limits ([`validate_workflow`]) and the built-in node registry
//! (types, `transform` expressions, connections, cycles, size bounds)
//! before charging any count.
//!
//! First the published schema (what `POST /api/workflows` enforces before
//! serde, `kailash_core::schema`) judges the JSON: a body it admits must
//! deserialise, and must never be refused by the store for its shape (a
//! name the schema admits is a name the store takes); the store may still
//! refuse it for what it means (a duplicate id, a dangling connection, a
//! tenant rule).
//!
//! Invariants: nothing panics; a refused create leaves no workflow and no
//! charged count; an accepted one obeys the tenant's rules, validates
//! again as stored, reads back as stored, and deleting it releases
//! everything.
//!
//! [`validate_workflow`]: kailash_tenancy::workflow::validate_workflow

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use kailash_access::limits::Limits;
use kailash_access::spec::AccessSpec;
use kailash_access::{AccessControl, AccessPolicy};
use kailash_core::clock::SystemClock;
use kailash_core::state::SharedState;
use kailash_core::{Principal, TenantId};
use kailash_runtime::{MAX_NAME_CHARS, NewWorkflow, NodeRegistry, WorkflowStore, compile};
use kailash_tenancy::model::{Tenant, TenantSpec};
use kailash_tenancy::quota::Quotas;

/// The tenant's `max_workflow_nodes`.
pub(crate) const MAX_NODES: usize = 4;
/// The node types the tenant may use (only `transform` is registered).
pub(crate) const ALLOWED: [&str; 2] = ["transform", "llm"];

struct Fixture {
    store: WorkflowStore,
    limits: Limits,
    quotas: Quotas,
    tenant: Tenant,
    owner: Principal,
    runtime: tokio::runtime::Runtime,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let spec: AccessSpec = serde_json::from_str(
            r#"{ "roles": [{ "name": "analyst", "permissions": ["workflow:create"], "max_workflows": 1 }] }"#,
        )
        .expect("access spec");
        let policy = runtime
            .block_on(AccessPolicy::load(&spec))
            .expect("access policy");
        let access = AccessControl::new(policy);
        let state = SharedState::memory(Arc::new(SystemClock));
        let tenant: TenantSpec = serde_json::from_value(serde_json::json!({
            "id": "acme",
            "max_workflows_per_tenant": 1,
            "max_workflow_nodes": MAX_NODES,
            "allowed_node_types": ALLOWED,
        }))
        .expect("tenant spec");
        Fixture {
            store: WorkflowStore::new(access.clone(), state.clone(), NodeRegistry::builtin()),
            limits: Limits::new(access, state.clone()),
            quotas: Quotas::new(state),
            tenant: Tenant::try_from(tenant).expect("tenant"),
            owner: Principal::builder("dave")
                .tenant(TenantId::new("acme").expect("tenant id"))
                .role("analyst")
                .build(),
            runtime,
        }
    })
}

/// Whether the published schema admits `bytes` (`None`: not JSON); a
/// body it admits deserialises.
#[cfg(feature = "axum")]
fn schema_admits(bytes: &[u8]) -> Option<bool> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let validator =
        kailash_core::schema::body_validator::<NewWorkflow>().expect("the schema compiles");
    let admitted = validator.validate(&mut value).is_ok();
    if admitted {
        let parsed = serde_json::from_value::<NewWorkflow>(value);
        assert!(
            parsed.is_ok(),
            "the schema admitted what serde refuses: {parsed:?}"
        );
    }
    Some(admitted)
}

#[cfg(not(feature = "axum"))]
fn schema_admits(_: &[u8]) -> Option<bool> {
    None
}

/// Whether the input was parsed and accepted as a workflow.
pub(crate) fn run(bytes: &[u8]) -> bool {
    let admitted = schema_admits(bytes) == Some(true);
    let Ok(new) = serde_json::from_slice::<NewWorkflow>(bytes) else {
        return false;
    };
    let f = fixture();
    f.runtime.block_on(async {
        let sent = new.clone();
        let created = f.store.create(&f.owner, &f.tenant, new).await;
        let accepted = match created {
            Ok(w) => {
                // The tenant's rules held.
                let nodes = &w.definition.nodes;
                assert!(!nodes.is_empty() && nodes.len() <= MAX_NODES);
                assert!(
                    nodes
                        .iter()
                        .all(|n| ALLOWED.contains(&n.node_type.as_str()))
                );
                let ids: HashSet<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
                assert_eq!(ids.len(), nodes.len(), "duplicate node ids accepted");
                assert_eq!(w.definition, sent.clone().into_definition());
                // What was stored validates again, the same way.
                let again = compile(&w.definition, &f.tenant, f.store.registry());
                assert!(
                    again.is_ok(),
                    "stored definition no longer valid: {again:?}"
                );
                assert_eq!(w.name, sent.name.trim());
                assert!(!w.name.is_empty() && w.name.chars().count() <= MAX_NAME_CHARS);
                assert!(!w.name.chars().any(char::is_control));
                // It reads back as stored, then deleting releases it all.
                let got = f.store.get(&f.tenant, &w.id).await.expect("get");
                assert_eq!(got.as_ref(), Some(&w), "stored workflow reads back changed");
                assert!(f.store.delete(&f.tenant, &w.id).await.expect("delete"));
                true
            }
            Err(e) => {
                // A body the schema admitted is never refused for its shape.
                assert!(
                    !(admitted && matches!(e, kailash_runtime::WorkflowError::InvalidName { .. })),
                    "the schema admitted a name the store refuses: {e}"
                );
                let _ = e.to_string();
                false
            }
        };
        // Accepted or not, nothing is left behind.
        assert!(f.store.list(&f.tenant).await.expect("list").is_empty());
        assert_eq!(f.limits.workflows_owned(&f.owner).await.expect("owned"), 0);
        assert_eq!(f.quotas.usage(&f.tenant).await.expect("usage").workflows, 0);
        accepted
    })
}
