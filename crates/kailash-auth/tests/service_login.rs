//! AuthService behaviours not visible over HTTP.

use std::net::IpAddr;
use std::sync::Arc;

use kailash_auth::jwt::{Algorithm, KeySet, SigningKey};
use kailash_auth::password::{HashParams, Password, PasswordHash, PasswordHasher};
use kailash_auth::service::{AuthConfig, AuthService, LoginRequest};
use kailash_auth::users::{StaticUserStore, UserConfig};
use kailash_core::TenantId;
use kailash_core::audit::MemoryAuditSink;
use kailash_core::clock::ManualClock;
use kailash_core::context::{RequestContext, RequestIdGenerator};
use kailash_core::state::{Namespace, SharedState, StateKey};

fn ctx() -> RequestContext {
    RequestContext::new(
        RequestIdGenerator::new().next_id(),
        IpAddr::from([192, 0, 2, 1]),
        jiff::Timestamp::now(),
    )
}

#[tokio::test]
async fn a_weak_stored_hash_is_upgraded_at_login() {
    let weak = PasswordHasher::new(HashParams {
        memory_kib: 8192,
        iterations: 1,
        parallelism: 1,
    })
    .unwrap();
    let password = "Upgrade-Me-Please-7";
    let weak_hash = weak.hash(&Password::new(password.to_owned())).unwrap();
    let user: UserConfig = serde_json::from_value(serde_json::json!({
        "username": "olivia", "tenant": "acme", "roles": ["business_user"],
        "password_hash": weak_hash.as_str(),
    }))
    .unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let state = SharedState::memory(clock.clone());
    let keys = Arc::new(KeySet::new(
        SigningKey::generate(Algorithm::EdDSA, "k1").unwrap(),
        clock,
    ));
    let service = AuthService::new(
        AuthConfig::default(),
        Arc::new(StaticUserStore::new(vec![user]).unwrap()),
        keys,
        state.clone(),
        Arc::new(MemoryAuditSink::new()),
    );
    let login = || LoginRequest {
        username: "olivia".into(),
        password: password.into(),
        totp: None,
        recovery_code: None,
    };
    service.login(login(), &ctx()).await.unwrap();

    let key = StateKey::tenant(
        &TenantId::new("acme").unwrap(),
        Namespace::new("user.password"),
        "olivia",
    );
    let stored = state.kv.get(&key).await.unwrap().expect("hash upgraded");
    let upgraded = PasswordHash::parse(std::str::from_utf8(&stored).unwrap()).unwrap();
    assert!(!PasswordHasher::default().needs_rehash(&upgraded));
    assert_ne!(upgraded.as_str(), weak_hash.as_str());
    // The upgraded hash is the one used from now on.
    service.login(login(), &ctx()).await.unwrap();
}
