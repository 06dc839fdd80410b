//! Quotas. Each scenario is a generic async fn over a state and the manual
//! clock that state decides time with, so other backends can run them too;
//! the `#[tokio::test]` wrappers below run them on the memory backend.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kailash_core::clock::ManualClock;
use kailash_core::state::SharedState;
use kailash_tenancy::model::{Tenant, TenantSpec};
use kailash_tenancy::quota::{QuotaDecision, Quotas};

fn tenant(json: &str) -> Tenant {
    Tenant::try_from(serde_json::from_str::<TenantSpec>(json).unwrap()).unwrap()
}

fn limited(id: &str, calls: u64, workflows: u64, storage_gb: f64) -> Tenant {
    tenant(
        &serde_json::json!({
            "id": id,
            "max_api_calls_per_day": calls,
            "max_workflows_per_tenant": workflows,
            "max_storage_gb": storage_gb,
        })
        .to_string(),
    )
}

fn refused_quota(d: QuotaDecision) -> &'static str {
    match d {
        QuotaDecision::Refused { quota, .. } => quota,
        QuotaDecision::Allowed { .. } => panic!("expected a refusal, got {d:?}"),
    }
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// 40 concurrent charges against a limit of 25: exactly 25 are allowed.
async fn exact_under_concurrency(state: SharedState, clock: Arc<ManualClock>) {
    clock.set(at("2026-11-26T12:00:00Z"));
    let quotas = Quotas::new(state);
    let t = Arc::new(limited("acme", 25, 1, 1.0));
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (quotas, t) = (quotas.clone(), Arc::clone(&t));
        tasks.push(tokio::spawn(
            async move { quotas.charge_api_call(&t).await },
        ));
    }
    let mut allowed = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            QuotaDecision::Allowed { used, limit } => {
                assert!(used <= 25);
                assert_eq!(limit, Some(25));
                allowed += 1;
            }
            QuotaDecision::Refused {
                quota, used, limit, ..
            } => {
                assert_eq!((quota, used, limit), ("api_calls_per_day", 25, 25));
                refused += 1;
            }
        }
    }
    assert_eq!((allowed, refused), (25, 15));
    assert_eq!(quotas.usage(&t).await.unwrap().api_calls_today, 25);
}

/// The daily count resets at the next UTC midnight, which `retry_after` names.
async fn day_rolls_over_at_utc_midnight(state: SharedState, clock: Arc<ManualClock>) {
    clock.set(at("2026-11-26T23:59:30Z"));
    let quotas = Quotas::new(state);
    let t = limited("globex", 3, 1, 1.0);
    for n in 1..=3 {
        assert_eq!(
            quotas.charge_api_call(&t).await.unwrap(),
            QuotaDecision::Allowed {
                used: n,
                limit: Some(3)
            }
        );
    }
    let refused = quotas.charge_api_call(&t).await.unwrap();
    assert_eq!(
        refused,
        QuotaDecision::Refused {
            quota: "api_calls_per_day",
            used: 3,
            limit: 3,
            retry_after: Some(Duration::from_secs(30)),
        }
    );
    let usage = quotas.usage(&t).await.unwrap();
    assert_eq!(usage.api_calls_today, 3);
    assert_eq!(usage.api_calls_reset_at, at("2026-11-27T00:00:00Z"));

    clock.advance(Duration::from_secs(29));
    assert!(!quotas.charge_api_call(&t).await.unwrap().is_allowed());
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        quotas.charge_api_call(&t).await.unwrap(),
        QuotaDecision::Allowed {
            used: 1,
            limit: Some(3)
        }
    );
    let usage = quotas.usage(&t).await.unwrap();
    assert_eq!(usage.api_calls_today, 1);
    assert_eq!(usage.api_calls_reset_at, at("2026-11-28T00:00:00Z"));
}

/// Without a limit every call is allowed and still counted.
async fn unlimited_calls_are_counted(state: SharedState, clock: Arc<ManualClock>) {
    clock.set(at("2026-11-26T08:00:00Z"));
    let quotas = Quotas::new(state);
    let t = tenant(r#"{"id": "free"}"#);
    for n in 1..=5 {
        assert_eq!(
            quotas.charge_api_call(&t).await.unwrap(),
            QuotaDecision::Allowed {
                used: n,
                limit: None
            }
        );
    }
    let u = quotas.usage(&t).await.unwrap();
    assert_eq!((u.api_calls_today, u.max_api_calls_per_day), (5, None));
}

/// The workflow cap holds until a release; releases never go below zero.
async fn workflows_cap_and_release(state: SharedState, clock: Arc<ManualClock>) {
    clock.set(at("2026-11-26T08:00:00Z"));
    let quotas = Quotas::new(state);
    let t = limited("acme", 100, 2, 1.0);
    // Releasing with nothing reserved stays at zero.
    quotas.release_workflow(&t).await.unwrap();
    assert_eq!(quotas.usage(&t).await.unwrap().workflows, 0);
    for n in 1..=2 {
        assert_eq!(
            quotas.reserve_workflow(&t).await.unwrap(),
            QuotaDecision::Allowed {
                used: n,
                limit: Some(2)
            }
        );
    }
    assert_eq!(
        quotas.reserve_workflow(&t).await.unwrap(),
        QuotaDecision::Refused {
            quota: "workflows",
            used: 2,
            limit: 2,
            retry_after: None
        }
    );
    // The cap does not reset with time, only with a release.
    clock.advance(Duration::from_secs(3 * 86_400));
    assert!(!quotas.reserve_workflow(&t).await.unwrap().is_allowed());
    quotas.release_workflow(&t).await.unwrap();
    assert_eq!(quotas.usage(&t).await.unwrap().workflows, 1);
    assert!(quotas.reserve_workflow(&t).await.unwrap().is_allowed());
    for _ in 0..5 {
        quotas.release_workflow(&t).await.unwrap();
    }
    assert_eq!(quotas.usage(&t).await.unwrap().workflows, 0);
}

/// 30 concurrent reservations against a cap of 7: exactly 7 succeed.
async fn workflows_exact_under_concurrency(state: SharedState, clock: Arc<ManualClock>) {
    clock.set(at("2026-11-26T08:00:00Z"));
    let quotas = Quotas::new(state);
    let t = Arc::new(limited("acme", 100, 7, 1.0));
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let (quotas, t) = (quotas.clone(), Arc::clone(&t));
        tasks.push(tokio::spawn(async move {
            quotas.reserve_workflow(&t).await.unwrap().is_allowed()
        }));
    }
    let mut allowed = 0;
    for task in tasks {
        allowed += usize::from(task.await.unwrap());
    }
    assert_eq!(allowed, 7);
    assert_eq!(quotas.usage(&t).await.unwrap().workflows, 7);
}

/// Storage adds within the limit, frees never below zero, refuses overruns.
async fn storage_adds_frees_and_refuses(state: SharedState, clock: Arc<ManualClock>) {
    clock.set(at("2026-11-26T08:00:00Z"));
    let quotas = Quotas::new(state);
    let t = limited("globex", 100, 1, 1.0);
    let gb: u64 = 1 << 30;
    let limit = Some(gb);
    assert_eq!(
        quotas.add_storage(&t, 1000).await.unwrap(),
        QuotaDecision::Allowed { used: 1000, limit }
    );
    let too_much = i64::try_from(gb).unwrap() - 999;
    let d = quotas.add_storage(&t, too_much).await.unwrap();
    assert_eq!(
        d,
        QuotaDecision::Refused {
            quota: "storage",
            used: 1000,
            limit: gb,
            retry_after: None
        }
    );
    assert_eq!(refused_quota(d), "storage");
    // Exactly up to the limit is fine.
    assert_eq!(
        quotas.add_storage(&t, too_much - 1).await.unwrap(),
        QuotaDecision::Allowed { used: gb, limit }
    );
    assert!(!quotas.add_storage(&t, 1).await.unwrap().is_allowed());
    assert_eq!(
        quotas.add_storage(&t, -100).await.unwrap(),
        QuotaDecision::Allowed {
            used: gb - 100,
            limit
        }
    );
    // Freeing more than is stored stops at zero.
    assert_eq!(
        quotas.add_storage(&t, i64::MIN).await.unwrap(),
        QuotaDecision::Allowed { used: 0, limit }
    );
    assert_eq!(quotas.usage(&t).await.unwrap().storage_bytes, 0);
    assert!(!quotas.add_storage(&t, i64::MAX).await.unwrap().is_allowed());
    assert_eq!(quotas.usage(&t).await.unwrap().storage_bytes, 0);
}

/// Two tenants charging the same quotas never see each other's usage.
async fn tenants_never_share_counters(state: SharedState, clock: Arc<ManualClock>) {
    clock.set(at("2026-11-26T08:00:00Z"));
    let quotas = Quotas::new(state);
    let acme = limited("acme", 2, 1, 1.0);
    let globex = limited("globex", 2, 1, 1.0);
    // A prefix of another id must not collide either.
    let acme2 = limited("acme-2", 2, 1, 1.0);
    for _ in 0..2 {
        assert!(quotas.charge_api_call(&acme).await.unwrap().is_allowed());
    }
    assert!(quotas.reserve_workflow(&acme).await.unwrap().is_allowed());
    assert!(
        quotas
            .add_storage(&acme, 1 << 30)
            .await
            .unwrap()
            .is_allowed()
    );
    assert!(!quotas.charge_api_call(&acme).await.unwrap().is_allowed());

    for other in [&globex, &acme2] {
        let u = quotas.usage(other).await.unwrap();
        assert_eq!((u.api_calls_today, u.workflows, u.storage_bytes), (0, 0, 0));
        assert!(quotas.charge_api_call(other).await.unwrap().is_allowed());
        assert!(quotas.reserve_workflow(other).await.unwrap().is_allowed());
        assert!(
            quotas
                .add_storage(other, 1 << 30)
                .await
                .unwrap()
                .is_allowed()
        );
    }
    let u = quotas.usage(&acme).await.unwrap();
    assert_eq!(
        (u.api_calls_today, u.workflows, u.storage_bytes),
        (2, 1, 1 << 30)
    );
}

fn memory() -> (SharedState, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_now());
    (SharedState::memory(clock.clone()), clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_exact_under_concurrency() {
    let (s, c) = memory();
    exact_under_concurrency(s, c).await;
}

#[tokio::test]
async fn memory_day_rolls_over_at_utc_midnight() {
    let (s, c) = memory();
    day_rolls_over_at_utc_midnight(s, c).await;
}

#[tokio::test]
async fn memory_unlimited_calls_are_counted() {
    let (s, c) = memory();
    unlimited_calls_are_counted(s, c).await;
}

#[tokio::test]
async fn memory_workflows_cap_and_release() {
    let (s, c) = memory();
    workflows_cap_and_release(s, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_workflows_exact_under_concurrency() {
    let (s, c) = memory();
    workflows_exact_under_concurrency(s, c).await;
}

#[tokio::test]
async fn memory_storage_adds_frees_and_refuses() {
    let (s, c) = memory();
    storage_adds_frees_and_refuses(s, c).await;
}

#[tokio::test]
async fn memory_tenants_never_share_counters() {
    let (s, c) = memory();
    tenants_never_share_counters(s, c).await;
}
