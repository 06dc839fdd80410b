//! Reservations and their undo, on the memory backend.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kailash_access::limits::LimitError;
use kailash_access::spec::AccessSpec;
use kailash_access::{AccessControl, AccessPolicy};
use kailash_core::clock::SystemClock;
use kailash_core::state::{KeyValueStore, MemoryState, SharedState, StateError, StateKey};
use kailash_core::{Principal, TenantId};
use kailash_tenancy::model::{Tenant, TenantSpec};
use kailash_tenancy::quota::Quotas;
use kailash_tenancy::workflow::WorkflowViolation;

use super::WorkflowStore;
use crate::definition::NodeDef;
use crate::{DefinitionError, NewWorkflow, NodeRegistry, WorkflowError};

struct Fixture {
    store: WorkflowStore,
    limits: kailash_access::limits::Limits,
    quotas: Quotas,
}

async fn fixture(state: SharedState) -> Fixture {
    let spec: AccessSpec = serde_json::from_str(
        r#"{ "roles": [{ "name": "analyst", "permissions": ["workflow:create"], "max_workflows": 2 }] }"#,
    )
    .unwrap();
    let access = AccessControl::new(AccessPolicy::load(&spec).await.unwrap());
    Fixture {
        store: WorkflowStore::new(access.clone(), state.clone(), NodeRegistry::builtin()),
        limits: kailash_access::limits::Limits::new(access, state.clone()),
        quotas: Quotas::new(state),
    }
}

fn memory() -> SharedState {
    SharedState::memory(Arc::new(SystemClock))
}

fn tenant(id: &str, max_workflows: u64) -> Tenant {
    let spec: TenantSpec = serde_json::from_value(serde_json::json!({
        "id": id,
        "max_workflows_per_tenant": max_workflows,
        "max_workflow_nodes": 3,
        "allowed_node_types": ["transform", "llm"],
    }))
    .unwrap();
    Tenant::try_from(spec).unwrap()
}

fn user(name: &str, tenant: &str) -> Principal {
    Principal::builder(name)
        .tenant(TenantId::new(tenant).unwrap())
        .role("analyst")
        .build()
}

fn new(name: &str, types: &[&str]) -> NewWorkflow {
    NewWorkflow {
        name: name.to_owned(),
        nodes: types
            .iter()
            .enumerate()
            .map(|(i, t)| NodeDef {
                id: format!("n{i}"),
                node_type: (*t).to_owned(),
                config: serde_json::Value::Null,
            })
            .collect(),
        connections: Vec::new(),
        inputs: Vec::new(),
        outputs: Default::default(),
    }
}

impl Fixture {
    async fn counts(&self, who: &Principal, tenant: &Tenant) -> (usize, u64) {
        (
            self.limits.workflows_owned(who).await.unwrap(),
            self.quotas.usage(tenant).await.unwrap().workflows,
        )
    }
}

#[tokio::test]
async fn create_list_get_delete_charge_and_release_both_counts() {
    let f = fixture(memory()).await;
    let acme = tenant("acme", 10);
    let dave = user("dave", "acme");

    let w = f
        .store
        .create(&dave, &acme, new("  etl  ", &["transform"]))
        .await
        .unwrap();
    assert!(w.id.starts_with("wf-") && w.id.len() == 27, "{}", w.id);
    assert_eq!((w.name.as_str(), w.owner.as_str()), ("etl", "dave"));
    assert_eq!(f.counts(&dave, &acme).await, (1, 1));
    assert_eq!(f.store.get(&acme, &w.id).await.unwrap(), Some(w.clone()));
    assert_eq!(f.store.list(&acme).await.unwrap(), vec![w.clone()]);

    // Another tenant neither sees nor deletes it.
    let globex = tenant("globex", 10);
    assert!(f.store.list(&globex).await.unwrap().is_empty());
    assert_eq!(f.store.get(&globex, &w.id).await.unwrap(), None);
    assert!(!f.store.delete(&globex, &w.id).await.unwrap());

    assert!(f.store.delete(&acme, &w.id).await.unwrap());
    assert!(!f.store.delete(&acme, &w.id).await.unwrap());
    assert_eq!(f.counts(&dave, &acme).await, (0, 0));
    assert!(f.store.list(&acme).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_role_limit_refuses_without_charging_the_tenant() {
    let f = fixture(memory()).await;
    let acme = tenant("acme", 10);
    let dave = user("dave", "acme");
    for i in 0..2 {
        f.store
            .create(&dave, &acme, new(&format!("w{i}"), &["transform"]))
            .await
            .unwrap();
    }
    let err = f
        .store
        .create(&dave, &acme, new("w3", &["transform"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            WorkflowError::Limit(LimitError::Exceeded {
                limit: "max_workflows",
                max: 2,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(f.counts(&dave, &acme).await, (2, 2));
}

#[tokio::test]
async fn a_refused_tenant_quota_releases_the_role_count() {
    let f = fixture(memory()).await;
    let acme = tenant("acme", 1);
    let (dave, erin) = (user("dave", "acme"), user("erin", "acme"));
    f.store
        .create(&dave, &acme, new("first", &["transform"]))
        .await
        .unwrap();
    // erin's role slot is reserved first, then the tenant quota refuses.
    let err = f
        .store
        .create(&erin, &acme, new("second", &["transform"]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, WorkflowError::QuotaExhausted { limit: 1 }),
        "{err:?}"
    );
    assert_eq!(
        f.counts(&erin, &acme).await,
        (0, 1),
        "erin's slot is released"
    );
    assert_eq!(f.store.list(&acme).await.unwrap().len(), 1);
}

/// Which key/value write the backend refuses.
#[derive(Clone, Copy, PartialEq)]
enum Refuse {
    /// Plain writes: the workflow itself.
    Set,
    /// Compare-and-set: the tenant's running totals (the quota).
    CompareAndSwap,
}

/// Memory, except that one kind of write fails.
struct RefusingWrites(Arc<MemoryState>, Refuse);

#[async_trait::async_trait]
impl KeyValueStore for RefusingWrites {
    async fn get(&self, key: &StateKey) -> Result<Option<Bytes>, StateError> {
        self.0.get(key).await
    }
    async fn set(
        &self,
        key: &StateKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), StateError> {
        if self.1 == Refuse::Set {
            return Err(StateError::Unavailable("refused by the test".into()));
        }
        self.0.set(key, value, ttl).await
    }
    async fn compare_and_swap(
        &self,
        key: &StateKey,
        expected: Option<&[u8]>,
        new: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool, StateError> {
        if self.1 == Refuse::CompareAndSwap {
            return Err(StateError::Unavailable("refused by the test".into()));
        }
        self.0.compare_and_swap(key, expected, new, ttl).await
    }
    async fn take(&self, key: &StateKey) -> Result<Option<Bytes>, StateError> {
        self.0.take(key).await
    }
    async fn delete(&self, key: &StateKey) -> Result<bool, StateError> {
        self.0.delete(key).await
    }
    async fn expire(&self, key: &StateKey, ttl: Duration) -> Result<bool, StateError> {
        self.0.expire(key, ttl).await
    }
    async fn ping(&self) -> Result<(), StateError> {
        self.0.ping().await
    }
    async fn scan(
        &self,
        namespace: kailash_core::state::Namespace,
        cursor: kailash_core::state::ScanCursor,
    ) -> Result<kailash_core::state::ScanPage, StateError> {
        self.0.scan(namespace, cursor).await
    }
}

fn refusing(what: Refuse) -> SharedState {
    let clock = Arc::new(SystemClock);
    let memory = Arc::new(MemoryState::new(clock.clone()));
    let mut state = SharedState::from_backend(memory.clone(), clock, "memory");
    state.kv = Arc::new(RefusingWrites(memory, what));
    state
}

#[tokio::test]
async fn failed_quota_accounting_releases_the_role_count() {
    let f = fixture(refusing(Refuse::CompareAndSwap)).await;
    let acme = tenant("acme", 10);
    let dave = user("dave", "acme");
    let err = f
        .store
        .create(&dave, &acme, new("etl", &["transform"]))
        .await
        .unwrap_err();
    assert!(matches!(err, WorkflowError::Quota(_)), "{err:?}");
    assert_eq!(f.limits.workflows_owned(&dave).await.unwrap(), 0);
    assert!(f.store.list(&acme).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_store_releases_the_role_count_and_the_tenant_quota() {
    let f = fixture(refusing(Refuse::Set)).await;
    let acme = tenant("acme", 10);
    let dave = user("dave", "acme");
    let err = f
        .store
        .create(&dave, &acme, new("etl", &["transform"]))
        .await
        .unwrap_err();
    assert!(matches!(err, WorkflowError::Store(_)), "{err:?}");
    assert_eq!(f.counts(&dave, &acme).await, (0, 0));
    assert!(f.store.list(&acme).await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_requests_charge_nothing() {
    let f = fixture(memory()).await;
    let acme = tenant("acme", 10);
    let dave = user("dave", "acme");
    let cases = [
        (user("dave", "globex"), new("x", &["transform"])),
        (dave.clone(), new("   ", &["transform"])),
        (dave.clone(), new(&"x".repeat(129), &["transform"])),
        (dave.clone(), new("a\tb", &["transform"])),
        (dave.clone(), new("x", &["transform"; 4])),
        (dave.clone(), new("x", &["database_query"])),
        (dave.clone(), new("x", &[])),
        // Allowed by the tenant, but no such node type is registered.
        (dave.clone(), new("x", &["transform", "llm"])),
        (dave.clone(), {
            let mut w = new("x", &["transform"]);
            w.nodes[0].config = serde_json::json!({ "expression": "a.[" });
            w
        }),
        (dave.clone(), {
            let mut w = new("x", &["transform", "transform"]);
            w.connections = serde_json::from_value(serde_json::json!([
                { "from": { "node": "n0", "output": "result" }, "to": { "node": "n1", "input": "a" } },
                { "from": { "node": "n1", "output": "result" }, "to": { "node": "n0", "input": "a" } },
            ]))
            .unwrap();
            w
        }),
    ];
    let mut errors = Vec::new();
    for (who, n) in cases {
        errors.push(f.store.create(&who, &acme, n).await.unwrap_err());
    }
    assert!(matches!(errors[0], WorkflowError::TenantMismatch));
    for e in &errors[1..4] {
        assert!(
            matches!(e, WorkflowError::InvalidName { max_chars: 128 }),
            "{e:?}"
        );
    }
    assert!(matches!(
        errors[4],
        WorkflowError::Violation(WorkflowViolation::TooManyNodes { limit: 3, count: 4 })
    ));
    assert!(matches!(
        errors[5],
        WorkflowError::Violation(WorkflowViolation::DisallowedNodeType { .. })
    ));
    assert!(matches!(
        errors[6],
        WorkflowError::Violation(WorkflowViolation::Empty)
    ));
    assert!(
        matches!(&errors[7], WorkflowError::Definition(DefinitionError::UnknownNodeType { node, node_type }) if node == "n1" && node_type == "llm"),
        "{:?}",
        errors[7]
    );
    assert!(
        matches!(&errors[8], WorkflowError::Definition(DefinitionError::InvalidConfig { node, .. }) if node == "n0"),
        "{:?}",
        errors[8]
    );
    assert!(
        matches!(
            &errors[9],
            WorkflowError::Definition(DefinitionError::Cycle { .. })
        ),
        "{:?}",
        errors[9]
    );
    assert_eq!(f.counts(&dave, &acme).await, (0, 0));
    assert!(f.store.list(&acme).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_principal_without_a_tenant_is_refused() {
    let f = fixture(memory()).await;
    let acme = tenant("acme", 10);
    let nobody = Principal::builder("root").role("analyst").build();
    let err = f
        .store
        .create(&nobody, &acme, new("x", &["transform"]))
        .await
        .unwrap_err();
    assert!(matches!(err, WorkflowError::TenantMismatch));
}
