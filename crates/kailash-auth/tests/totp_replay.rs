//! TOTP replay protection through the shared state.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use jiff::Timestamp;
use kailash_auth::totp::{TotpCheck, TotpConfig, TotpError, TotpGuard, TotpSecret};
use kailash_core::TenantId;
use kailash_core::clock::{Clock, ManualClock};
use kailash_core::state::{KeyValueStore, SharedState, StateError, StateKey};

const START: i64 = 1_700_000_010;

fn setup() -> (Arc<ManualClock>, SharedState, TotpGuard, TotpSecret) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_second(START).unwrap()));
    let state = SharedState::memory(clock.clone());
    let guard = TotpGuard::from_state(TotpConfig::default(), &state);
    let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
    (clock, state, guard, secret)
}

fn code_now(clock: &ManualClock, secret: &TotpSecret) -> String {
    let now = u64::try_from(clock.now().as_second()).unwrap();
    TotpConfig::default().code_at(secret, now)
}

#[tokio::test]
async fn a_code_is_accepted_once() {
    let (clock, _state, guard, secret) = setup();
    let code = code_now(&clock, &secret);
    let step = u64::try_from(START).unwrap() / 30;
    assert_eq!(
        guard.verify(None, "user-1", &secret, &code).await.unwrap(),
        TotpCheck::Accepted { step }
    );
    assert_eq!(
        guard.verify(None, "user-1", &secret, &code).await.unwrap(),
        TotpCheck::Replayed
    );
    // Still refused later in the skew window.
    clock.advance(Duration::from_secs(40));
    assert_eq!(
        guard.verify(None, "user-1", &secret, &code).await.unwrap(),
        TotpCheck::Replayed
    );
    // Out of the window the code is simply invalid.
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        guard.verify(None, "user-1", &secret, &code).await.unwrap(),
        TotpCheck::Invalid
    );
    // The next code works.
    let next = code_now(&clock, &secret);
    assert!(
        guard
            .verify(None, "user-1", &secret, &next)
            .await
            .unwrap()
            .is_accepted()
    );
}

#[tokio::test]
async fn wrong_code_is_invalid_and_records_nothing() {
    let (clock, _state, guard, secret) = setup();
    let code = code_now(&clock, &secret);
    let wrong = if code == "000000" { "000001" } else { "000000" };
    assert_eq!(
        guard.verify(None, "u", &secret, wrong).await.unwrap(),
        TotpCheck::Invalid
    );
    assert_eq!(
        guard.verify(None, "u", &secret, "12ab56").await.unwrap(),
        TotpCheck::Invalid
    );
    assert!(
        guard
            .verify(None, "u", &secret, &code)
            .await
            .unwrap()
            .is_accepted()
    );
}

#[tokio::test]
async fn subjects_and_tenants_are_separate() {
    let (clock, state, guard, secret) = setup();
    let code = code_now(&clock, &secret);
    let acme = TenantId::new("acme").unwrap();
    let globex = TenantId::new("globex").unwrap();
    assert!(
        guard
            .verify(Some(&acme), "u", &secret, &code)
            .await
            .unwrap()
            .is_accepted()
    );
    assert!(
        guard
            .verify(Some(&globex), "u", &secret, &code)
            .await
            .unwrap()
            .is_accepted()
    );
    assert!(
        guard
            .verify(Some(&acme), "v", &secret, &code)
            .await
            .unwrap()
            .is_accepted()
    );
    assert!(
        guard
            .verify(None, "u", &secret, &code)
            .await
            .unwrap()
            .is_accepted()
    );
    assert_eq!(
        guard
            .verify(Some(&acme), "u", &secret, &code)
            .await
            .unwrap(),
        TotpCheck::Replayed
    );
    // The used step is recorded under the tenant's key.
    let step = u64::try_from(START).unwrap() / 30;
    let key = StateKey::tenant(
        &acme,
        kailash_auth::totp::USED_STEP_NAMESPACE,
        &format!("u:{step}"),
    );
    assert!(state.kv.get(&key).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_attempts_succeed_exactly_once() {
    let (clock, _state, guard, secret) = setup();
    let code = code_now(&clock, &secret);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (guard, secret, code) = (guard.clone(), secret.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            guard.verify(None, "racer", &secret, &code).await.unwrap()
        }));
    }
    let mut accepted = 0;
    let mut replayed = 0;
    for t in tasks {
        match t.await.unwrap() {
            TotpCheck::Accepted { .. } => accepted += 1,
            TotpCheck::Replayed => replayed += 1,
            TotpCheck::Invalid => panic!("valid code reported invalid"),
        }
    }
    assert_eq!((accepted, replayed), (1, 9));
}

struct FailingStore;

#[async_trait]
impl KeyValueStore for FailingStore {
    async fn get(&self, _: &StateKey) -> Result<Option<Bytes>, StateError> {
        Err(StateError::Unavailable("down".into()))
    }
    async fn set(&self, _: &StateKey, _: Bytes, _: Option<Duration>) -> Result<(), StateError> {
        Err(StateError::Unavailable("down".into()))
    }
    async fn compare_and_swap(
        &self,
        _: &StateKey,
        _: Option<&[u8]>,
        _: Option<Bytes>,
        _: Option<Duration>,
    ) -> Result<bool, StateError> {
        Err(StateError::Unavailable("down".into()))
    }
    async fn take(&self, _: &StateKey) -> Result<Option<Bytes>, StateError> {
        Err(StateError::Unavailable("down".into()))
    }
    async fn delete(&self, _: &StateKey) -> Result<bool, StateError> {
        Err(StateError::Unavailable("down".into()))
    }
    async fn expire(&self, _: &StateKey, _: Duration) -> Result<bool, StateError> {
        Err(StateError::Unavailable("down".into()))
    }
    async fn ping(&self) -> Result<(), StateError> {
        Err(StateError::Unavailable("down".into()))
    }
    async fn scan(
        &self,
        _namespace: kailash_core::state::Namespace,
        _cursor: kailash_core::state::ScanCursor,
    ) -> Result<kailash_core::state::ScanPage, StateError> {
        Err(StateError::Unavailable("down".into()))
    }
}

#[tokio::test]
async fn backend_error_is_an_error_not_a_success() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_second(START).unwrap()));
    let guard = TotpGuard::new(TotpConfig::default(), Arc::new(FailingStore), clock.clone());
    let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
    let code = code_now(&clock, &secret);
    let err = guard.verify(None, "u", &secret, &code).await.unwrap_err();
    assert!(matches!(err, TotpError::State(StateError::Unavailable(_))));
    assert!(!err.to_string().contains(&code));
    // An invalid code does not need the backend.
    let wrong = if code == "000000" { "000001" } else { "000000" };
    assert_eq!(
        guard.verify(None, "u", &secret, wrong).await.unwrap(),
        TotpCheck::Invalid
    );
}

/// Delegates to a real store but yields to the scheduler before every
/// operation, so a non-atomic check-then-set in the guard would interleave
/// and accept the same code more than once.
struct YieldingStore(Arc<dyn KeyValueStore>);

#[async_trait]
impl KeyValueStore for YieldingStore {
    async fn get(&self, k: &StateKey) -> Result<Option<Bytes>, StateError> {
        tokio::task::yield_now().await;
        self.0.get(k).await
    }
    async fn set(&self, k: &StateKey, v: Bytes, ttl: Option<Duration>) -> Result<(), StateError> {
        tokio::task::yield_now().await;
        self.0.set(k, v, ttl).await
    }
    async fn compare_and_swap(
        &self,
        k: &StateKey,
        expected: Option<&[u8]>,
        new: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool, StateError> {
        tokio::task::yield_now().await;
        self.0.compare_and_swap(k, expected, new, ttl).await
    }
    async fn take(&self, k: &StateKey) -> Result<Option<Bytes>, StateError> {
        tokio::task::yield_now().await;
        self.0.take(k).await
    }
    async fn delete(&self, k: &StateKey) -> Result<bool, StateError> {
        tokio::task::yield_now().await;
        self.0.delete(k).await
    }
    async fn expire(&self, k: &StateKey, ttl: Duration) -> Result<bool, StateError> {
        tokio::task::yield_now().await;
        self.0.expire(k, ttl).await
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

#[tokio::test(flavor = "current_thread")]
async fn interleaved_attempts_succeed_exactly_once() {
    let (clock, state, _guard, secret) = setup();
    let guard = TotpGuard::new(
        TotpConfig::default(),
        Arc::new(YieldingStore(state.kv.clone())),
        clock.clone(),
    );
    let code = code_now(&clock, &secret);
    let attempts = (0..10).map(|_| guard.verify(None, "racer", &secret, &code));
    let results = futures_join_all(attempts).await;
    let accepted = results
        .iter()
        .filter(|r| r.as_ref().unwrap().is_accepted())
        .count();
    assert_eq!(accepted, 1);
}

/// Polls all futures concurrently on the current task (no extra dependency).
async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let futs: Vec<_> = futs.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    let mut futs: Vec<_> = futs.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, out) in futs.iter_mut().zip(outputs.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.unwrap()).collect()
}
