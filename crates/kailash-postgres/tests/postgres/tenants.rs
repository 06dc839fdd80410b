//! The tenant registry in PostgreSQL: seeded once from the file, changed
//! at run time, seen by another instance through NOTIFY (and after a lost
//! listener connection, through a full reload).

use std::sync::Arc;
use std::time::Duration;

use kailash_core::TenantId;
use kailash_core::clock::SystemClock;
use kailash_core::state::SharedState;
use kailash_postgres::tenants::{PgTenantRegistry, TenantChangeError};
use kailash_tenancy::model::TenantSpec;
use kailash_tenancy::registry::TenantRegistry;

use super::support::{Fresh, admin_url, until};

fn spec(json: serde_json::Value) -> TenantSpec {
    serde_json::from_value(json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_change_at_run_time_and_every_instance_sees_it() {
    let Some(admin) = admin_url("tenants_change_at_run_time") else {
        return;
    };
    let fresh = Fresh::new(&admin).await;
    let acme = TenantId::new("acme").unwrap();
    let globex = TenantId::new("globex").unwrap();
    let seed = vec![
        spec(serde_json::json!({"id": "acme", "plan": "enterprise", "domains": ["api.acme.test"]})),
        spec(serde_json::json!({"id": "globex"})),
    ];
    // Two instances with their own state (as with two memory-state
    // gateways): only the database connects them.
    let state = || SharedState::memory(Arc::new(SystemClock));
    let a = PgTenantRegistry::open(fresh.db().await, seed.clone(), state())
        .await
        .unwrap();
    // The file changed since: the table wins for seeded ids, new ids join.
    let mut seed2 = seed.clone();
    seed2[0].plan = "free".into();
    seed2.push(spec(serde_json::json!({"id": "initech"})));
    let b = PgTenantRegistry::open(fresh.db().await, seed2, state())
        .await
        .unwrap();
    assert_eq!(b.get(&acme).await.unwrap().unwrap().plan, "enterprise");
    until("a sees initech", async || a.ids().len() == 3).await;

    // A change on one instance reaches the other's snapshot.
    let patched = a
        .patch(
            &acme,
            &serde_json::json!({"max_api_calls_per_day": 5, "plan": null}),
        )
        .await
        .unwrap();
    assert_eq!(patched.plan, "standard");
    until("b sees the new limit", async || {
        b.get(&acme)
            .await
            .unwrap()
            .is_some_and(|t| t.quotas.max_api_calls_per_day == Some(5))
    })
    .await;
    // Deactivation, then reactivation.
    a.patch(&globex, &serde_json::json!({"active": false}))
        .await
        .unwrap();
    until("b sees globex inactive", async || {
        !b.get(&globex).await.unwrap().unwrap().active
    })
    .await;
    a.patch(&globex, &serde_json::json!({"active": true}))
        .await
        .unwrap();
    until("b sees globex active", async || {
        b.get(&globex).await.unwrap().unwrap().active
    })
    .await;
    // Create.
    b.create(spec(
        serde_json::json!({"id": "umbrella", "domains": ["umbrella.test"]}),
    ))
    .await
    .unwrap();
    until("a sees umbrella by domain", async || {
        a.by_domain("umbrella.test").await.unwrap() == Some(TenantId::new("umbrella").unwrap())
    })
    .await;

    // Refusals change nothing.
    let before = a.spec(&acme).await.unwrap().unwrap();
    assert!(matches!(
        a.create(spec(serde_json::json!({"id": "acme"}))).await,
        Err(TenantChangeError::Exists(_))
    ));
    assert!(matches!(
        a.patch(&TenantId::new("nope").unwrap(), &serde_json::json!({}))
            .await,
        Err(TenantChangeError::NotFound(_))
    ));
    for bad in [
        serde_json::json!({"id": "other"}),
        serde_json::json!({"unknown_field": 1}),
        serde_json::json!({"max_storage_gb": -1}),
        // Another tenant's domain.
        serde_json::json!({"domains": ["umbrella.test"]}),
        serde_json::json!([1]),
    ] {
        match a.patch(&acme, &bad).await {
            Err(TenantChangeError::Invalid(m)) => assert!(!m.is_empty()),
            other => panic!("{bad} gave {other:?}"),
        }
    }
    assert_eq!(a.spec(&acme).await.unwrap().unwrap(), before);

    // A change made straight in the table (no notification) stays unseen
    // until the listener's connection dies: the full reload after the
    // reconnect picks it up. (Changed first, then the connections ended, so
    // the reload cannot run before the change commits.)
    let db = fresh.db().await;
    let conn = db.get().await.unwrap();
    conn.execute(
        "UPDATE kailash_tenants SET spec = jsonb_set(spec, '{plan}', '\"platinum\"'), version = version + 1 WHERE id = 'initech'",
        &[],
    )
    .await
    .unwrap();
    let initech = TenantId::new("initech").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_ne!(b.get(&initech).await.unwrap().unwrap().plan, "platinum");
    let killed: i64 = conn
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE query = 'LISTEN kailash_tenants' AND datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 2, "both instances' listeners");

    until("b reloads after reconnecting", async || {
        b.get(&initech).await.unwrap().unwrap().plan == "platinum"
    })
    .await;
    drop(conn);
    drop((a, b));
    fresh.drop_db().await;
}
