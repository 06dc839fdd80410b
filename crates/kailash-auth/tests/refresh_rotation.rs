//! Refresh-token rotation and reuse detection, written against any
//! `SharedState` so the same checks can run on Redis: each `check_*` function
//! takes the state and the `ManualClock` it was built with; the
//! `#[tokio::test]` wrappers run them on memory.

use std::sync::Arc;
use std::time::Duration;

use kailash_auth::refresh::{RefreshConfig, RefreshFamilies, RotateOutcome};
use kailash_core::TenantId;
use kailash_core::clock::ManualClock;
use kailash_core::state::SharedState;

fn memory() -> (SharedState, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_now());
    (SharedState::memory(clock.clone()), clock)
}

fn url_safe(s: &str) -> bool {
    s.len() >= 22
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn check_rotation_chain(state: SharedState, _clock: Arc<ManualClock>) {
    let families = RefreshFamilies::new(state, RefreshConfig::default());
    let acme = TenantId::new("acme").unwrap();
    let g0 = families.start(Some(&acme), "sess-1").await.unwrap();
    assert!(url_safe(&g0.family) && url_safe(&g0.jti));
    assert!(!format!("{g0:?}").contains(&g0.jti));
    let RotateOutcome::Rotated(g1) = families
        .rotate(Some(&acme), &g0.family, &g0.jti)
        .await
        .unwrap()
    else {
        panic!("current jti must rotate");
    };
    assert_eq!(g1.family, g0.family);
    assert_ne!(g1.jti, g0.jti);
    assert_eq!(g1.expires_at, g0.expires_at);
    let RotateOutcome::Rotated(g2) = families
        .rotate(Some(&acme), &g1.family, &g1.jti)
        .await
        .unwrap()
    else {
        panic!("current jti must rotate");
    };
    // Another tenant does not see the family.
    let other = TenantId::new("other").unwrap();
    assert_eq!(
        families
            .rotate(Some(&other), &g2.family, &g2.jti)
            .await
            .unwrap(),
        RotateOutcome::Unknown
    );
    assert_eq!(
        families.rotate(None, &g2.family, &g2.jti).await.unwrap(),
        RotateOutcome::Unknown
    );
    // Revoking the family ends it.
    families
        .revoke_family(Some(&acme), &g2.family)
        .await
        .unwrap();
    assert_eq!(
        families
            .rotate(Some(&acme), &g2.family, &g2.jti)
            .await
            .unwrap(),
        RotateOutcome::Unknown
    );
}

async fn check_parallel_rotations(state: SharedState, _clock: Arc<ManualClock>) {
    let families = RefreshFamilies::new(state, RefreshConfig::default());
    let g0 = families.start(None, "sess-2").await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let families = families.clone();
        let (family, jti) = (g0.family.clone(), g0.jti.clone());
        tasks.push(tokio::spawn(async move {
            families.rotate(None, &family, &jti).await
        }));
    }
    let mut rotated = Vec::new();
    let mut retried = Vec::new();
    for t in tasks {
        match t.await.unwrap().unwrap() {
            RotateOutcome::Rotated(g) => rotated.push(g),
            RotateOutcome::Retried(g) => retried.push(g),
            other => panic!("unexpected {other:?}"),
        }
    }
    // Exactly one rotation; the others get its result again.
    assert_eq!(rotated.len(), 1);
    assert_eq!(retried.len(), 9);
    assert!(retried.iter().all(|g| *g == rotated[0]));
    // The family is still valid with the new jti.
    let g1 = rotated.remove(0);
    assert!(matches!(
        families.rotate(None, &g1.family, &g1.jti).await.unwrap(),
        RotateOutcome::Rotated(_)
    ));
}

async fn check_reuse_after_grace(state: SharedState, clock: Arc<ManualClock>) {
    let families = RefreshFamilies::new(state, RefreshConfig::default());
    let g0 = families.start(None, "sess-3").await.unwrap();
    let RotateOutcome::Rotated(g1) = families.rotate(None, &g0.family, &g0.jti).await.unwrap()
    else {
        panic!("current jti must rotate");
    };
    // Within the grace: a retry of that rotation gets its result again,
    // nothing revoked.
    clock.advance(Duration::from_millis(1500));
    assert_eq!(
        families.rotate(None, &g0.family, &g0.jti).await.unwrap(),
        RotateOutcome::Retried(g1.clone())
    );
    // After the grace: reuse, the family is revoked.
    clock.advance(Duration::from_millis(500));
    assert_eq!(
        families.rotate(None, &g0.family, &g0.jti).await.unwrap(),
        RotateOutcome::Reused {
            session_id: "sess-3".into()
        }
    );
    assert_eq!(
        families.rotate(None, &g1.family, &g1.jti).await.unwrap(),
        RotateOutcome::Unknown
    );
}

async fn check_unrelated_jti_is_reuse(state: SharedState, _clock: Arc<ManualClock>) {
    let families = RefreshFamilies::new(state, RefreshConfig::default());
    let g0 = families.start(None, "sess-4").await.unwrap();
    // A jti the family never had (a forged or much older token).
    assert_eq!(
        families
            .rotate(None, &g0.family, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .await
            .unwrap(),
        RotateOutcome::Reused {
            session_id: "sess-4".into()
        }
    );
    assert_eq!(
        families.rotate(None, &g0.family, &g0.jti).await.unwrap(),
        RotateOutcome::Unknown
    );
}

async fn check_unknown_and_garbage(state: SharedState, _clock: Arc<ManualClock>) {
    let families = RefreshFamilies::new(state, RefreshConfig::default());
    let g = families.start(None, "sess-5").await.unwrap();
    assert_eq!(
        families
            .rotate(None, "no-such-family-xxxxxxxxxxxxxxxx", &g.jti)
            .await
            .unwrap(),
        RotateOutcome::Unknown
    );
    assert_eq!(
        families.rotate(None, "", "").await.unwrap(),
        RotateOutcome::Unknown
    );
    assert_eq!(
        families
            .rotate(None, "a:b", &"x".repeat(100_000))
            .await
            .unwrap(),
        RotateOutcome::Unknown
    );
    // Garbage never revokes a real family.
    assert!(matches!(
        families.rotate(None, &g.family, &g.jti).await.unwrap(),
        RotateOutcome::Rotated(_)
    ));
    families.revoke_family(None, "never-existed").await.unwrap();
}

async fn check_expiry(state: SharedState, clock: Arc<ManualClock>) {
    let config = RefreshConfig {
        lifetime: Duration::from_secs(3600),
        ..RefreshConfig::default()
    };
    let families = RefreshFamilies::new(state, config);
    let g0 = families.start(None, "sess-6").await.unwrap();
    clock.advance(Duration::from_secs(1800));
    let RotateOutcome::Rotated(g1) = families.rotate(None, &g0.family, &g0.jti).await.unwrap()
    else {
        panic!("current jti must rotate");
    };
    // Rotation does not extend the family.
    clock.advance(Duration::from_secs(1800));
    assert_eq!(
        families.rotate(None, &g1.family, &g1.jti).await.unwrap(),
        RotateOutcome::Unknown
    );
}

#[tokio::test]
async fn rotation_chain() {
    let (s, c) = memory();
    check_rotation_chain(s, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_rotations() {
    let (s, c) = memory();
    check_parallel_rotations(s, c).await;
}

#[tokio::test]
async fn reuse_after_grace() {
    let (s, c) = memory();
    check_reuse_after_grace(s, c).await;
}

#[tokio::test]
async fn unrelated_jti_is_reuse() {
    let (s, c) = memory();
    check_unrelated_jti_is_reuse(s, c).await;
}

#[tokio::test]
async fn unknown_and_garbage() {
    let (s, c) = memory();
    check_unknown_and_garbage(s, c).await;
}

#[tokio::test]
async fn expiry() {
    let (s, c) = memory();
    check_expiry(s, c).await;
}
