//! The static registry: lookups, refused configurations, and deactivation
//! seen by every instance sharing the state.

use std::sync::Arc;

use kailash_core::TenantId;
use kailash_core::clock::ManualClock;
use kailash_core::state::SharedState;
use kailash_tenancy::model::TenantSpec;
use kailash_tenancy::registry::{RegistryError, StaticTenantRegistry, TenantRegistry};

fn specs() -> Vec<TenantSpec> {
    serde_json::from_str(
        r#"[{"id": "acme", "domains": ["api.acme.example", "acme.test"]},
            {"id": "globex"},
            {"id": "initech", "active": false}]"#,
    )
    .unwrap()
}

fn state() -> SharedState {
    SharedState::memory(Arc::new(ManualClock::starting_now()))
}

fn id(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}

#[tokio::test]
async fn looks_up_tenants_and_domains() {
    let r = StaticTenantRegistry::new(specs(), state()).unwrap();
    assert_eq!(r.ids(), [id("acme"), id("globex"), id("initech")]);
    let acme = r.get(&id("acme")).await.unwrap().unwrap();
    assert!(acme.active);
    assert!(!r.get(&id("initech")).await.unwrap().unwrap().active);
    assert!(r.get(&id("nobody")).await.unwrap().is_none());
    assert_eq!(r.by_domain("acme.test").await.unwrap(), Some(id("acme")));
    assert_eq!(
        r.by_domain("API.acme.example").await.unwrap(),
        Some(id("acme"))
    );
    assert_eq!(r.by_domain("globex.test").await.unwrap(), None);
}

#[tokio::test]
async fn deactivation_is_seen_by_another_instance() {
    let shared = state();
    let one = StaticTenantRegistry::new(specs(), shared.clone()).unwrap();
    let two = StaticTenantRegistry::new(specs(), shared).unwrap();
    let acme = id("acme");
    assert!(two.get(&acme).await.unwrap().unwrap().active);
    one.set_active(&acme, false).await.unwrap();
    assert!(!two.get(&acme).await.unwrap().unwrap().active);
    assert!(!one.get(&acme).await.unwrap().unwrap().active);
    // Other tenants are untouched.
    assert!(two.get(&id("globex")).await.unwrap().unwrap().active);
    // Reactivating, and activating a tenant configured inactive.
    two.set_active(&acme, true).await.unwrap();
    assert!(one.get(&acme).await.unwrap().unwrap().active);
    one.set_active(&id("initech"), true).await.unwrap();
    assert!(two.get(&id("initech")).await.unwrap().unwrap().active);
}

#[tokio::test]
async fn a_separate_state_is_not_affected() {
    let one = StaticTenantRegistry::new(specs(), state()).unwrap();
    let other = StaticTenantRegistry::new(specs(), state()).unwrap();
    one.set_active(&id("acme"), false).await.unwrap();
    assert!(other.get(&id("acme")).await.unwrap().unwrap().active);
}

#[tokio::test]
async fn unknown_tenant_cannot_be_toggled() {
    let r = StaticTenantRegistry::new(specs(), state()).unwrap();
    assert!(matches!(
        r.set_active(&id("nobody"), false).await,
        Err(RegistryError::Invalid(_))
    ));
}

#[test]
fn duplicate_ids_and_domains_are_refused() {
    let dup_id: Vec<TenantSpec> =
        serde_json::from_str(r#"[{"id": "acme"}, {"id": "acme"}]"#).unwrap();
    let e = StaticTenantRegistry::new(dup_id, state()).unwrap_err();
    assert!(
        matches!(&e, RegistryError::Invalid(m) if m.contains("acme")),
        "{e}"
    );

    let dup_domain: Vec<TenantSpec> = serde_json::from_str(
        r#"[{"id": "acme", "domains": ["x.example"]}, {"id": "globex", "domains": ["x.example"]}]"#,
    )
    .unwrap();
    let e = StaticTenantRegistry::new(dup_domain, state()).unwrap_err();
    assert!(
        matches!(&e, RegistryError::Invalid(m) if m.contains("x.example")),
        "{e}"
    );

    let bad: Vec<TenantSpec> =
        serde_json::from_str(r#"[{"id": "acme", "max_storage_gb": -2}]"#).unwrap();
    let e = StaticTenantRegistry::new(bad, state()).unwrap_err();
    assert!(e.to_string().contains("max_storage_gb"), "{e}");
}
