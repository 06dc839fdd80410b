//! Session store behaviour, written against any `SharedState` so the same
//! checks run on Redis: each `check_*` function takes the state and the
//! `ManualClock` it was built with; the `#[tokio::test]` wrappers run them on
//! memory, and `every_check_on_redis` runs them all on Redis when
//! `KAILASH_TEST_REDIS_URL` is set (each on a key prefix of its own).

use std::sync::Arc;
use std::time::Duration;

use kailash_auth::layer::{SessionCheck, SessionCheckError};
use kailash_auth::session::{SessionConfig, SessionError, SessionStore};
use kailash_core::clock::ManualClock;
use kailash_core::state::{SharedState, WhenFull};
use kailash_core::{Principal, TenantId};

fn memory() -> (SharedState, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_now());
    (SharedState::memory(clock.clone()), clock)
}

fn principal(subject: &str, tenant: Option<&TenantId>, sid: Option<&str>) -> Principal {
    let mut b = Principal::builder(subject);
    if let Some(t) = tenant {
        b = b.tenant(t.clone());
    }
    if let Some(s) = sid {
        b = b.session_id(s);
    }
    b.build()
}

/// A unique subject per run, so tests can share a Redis.
fn subject(name: &str) -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    format!("{name}-{}", data_encoding::HEXLOWER.encode(&bytes))
}

async fn check_create_get_and_ids(state: SharedState, _clock: Arc<ManualClock>) {
    let store = SessionStore::new(state, SessionConfig::default());
    let acme = TenantId::new("acme").unwrap();
    let alice = subject("alice");
    let ip = "192.0.2.7".parse().unwrap();
    let a = store.create(&alice, Some(&acme), Some(ip)).await.unwrap();
    assert!(a.evicted.is_empty());
    let s = &a.session;
    assert!(s.id.len() >= 22, "128+ bits");
    assert!(
        s.id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(s.subject, alice);
    assert_eq!(s.tenant.as_ref(), Some(&acme));
    assert_eq!(store.client_ip(s).await.unwrap(), Some(ip));
    assert_eq!(
        s.expires_at.duration_since(s.created_at).as_secs(),
        30 * 24 * 3600
    );
    let got = store.get(Some(&acme), &s.id).await.unwrap().unwrap();
    assert_eq!(&got, s);
    // Another tenant, no tenant, garbage ids: absent.
    let other = TenantId::new("other").unwrap();
    assert!(store.get(Some(&other), &s.id).await.unwrap().is_none());
    assert!(store.get(None, &s.id).await.unwrap().is_none());
    assert!(store.get(Some(&acme), "").await.unwrap().is_none());
    assert!(store.get(Some(&acme), "a:b/c").await.unwrap().is_none());
    assert!(
        store
            .get(Some(&acme), &"x".repeat(10_000))
            .await
            .unwrap()
            .is_none()
    );
    // Ids are distinct.
    let b = store.create(&alice, Some(&acme), None).await.unwrap();
    assert_ne!(a.session.id, b.session.id);
    // Debug never shows the full id.
    let debug = format!("{:?}", a.session);
    assert!(!debug.contains(&a.session.id));
}

async fn check_idle_timeout_and_touch(state: SharedState, clock: Arc<ManualClock>) {
    let config = SessionConfig {
        idle_timeout: Duration::from_secs(600),
        ..SessionConfig::default()
    };
    let store = SessionStore::new(state, config);
    let bob = subject("bob");
    let s = store.create(&bob, None, None).await.unwrap().session;
    clock.advance(Duration::from_secs(500));
    assert!(store.touch(None, &s.id).await.unwrap());
    let touched = store.get(None, &s.id).await.unwrap().unwrap();
    assert_eq!(touched.last_seen, clock_now(&clock));
    // 500 s after the touch: still alive (sliding).
    clock.advance(Duration::from_secs(500));
    assert!(store.get(None, &s.id).await.unwrap().is_some());
    // 601 s after the touch: idled out.
    clock.advance(Duration::from_secs(101));
    assert!(store.get(None, &s.id).await.unwrap().is_none());
    assert!(!store.touch(None, &s.id).await.unwrap());
    // An idled-out session is pruned from the index by `list`.
    assert!(store.list(None, &bob).await.unwrap().is_empty());
}

fn clock_now(clock: &ManualClock) -> jiff::Timestamp {
    use kailash_core::clock::Clock;
    clock.now()
}

async fn check_absolute_lifetime(state: SharedState, clock: Arc<ManualClock>) {
    let config = SessionConfig {
        idle_timeout: Duration::from_secs(600),
        absolute_lifetime: Duration::from_secs(1000),
        ..SessionConfig::default()
    };
    let store = SessionStore::new(state, config);
    let carol = subject("carol");
    let s = store.create(&carol, None, None).await.unwrap().session;
    for _ in 0..3 {
        clock.advance(Duration::from_secs(300));
        assert!(store.touch(None, &s.id).await.unwrap());
    }
    // 900 s: alive; 1000 s: past the absolute expiry however active.
    assert!(store.get(None, &s.id).await.unwrap().is_some());
    clock.advance(Duration::from_secs(100));
    assert!(store.get(None, &s.id).await.unwrap().is_none());
    assert!(!store.touch(None, &s.id).await.unwrap());
    let check = store
        .check(&principal(&carol, None, Some(&s.id)))
        .await
        .unwrap_err();
    assert!(matches!(
        check,
        SessionCheckError::Revoked | SessionCheckError::Expired
    ));
}

async fn check_evict_oldest(state: SharedState, clock: Arc<ManualClock>) {
    let store = SessionStore::new(state, SessionConfig::default());
    let dave = subject("dave");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(store.create(&dave, None, None).await.unwrap().session.id);
        clock.advance(Duration::from_secs(1));
    }
    let fourth = store.create(&dave, None, None).await.unwrap();
    assert_eq!(fourth.evicted, vec![ids[0].clone()]);
    // The evicted session fails at once, everywhere.
    assert!(store.get(None, &ids[0]).await.unwrap().is_none());
    assert_eq!(
        store
            .check(&principal(&dave, None, Some(&ids[0])))
            .await
            .unwrap_err(),
        SessionCheckError::Revoked
    );
    let listed: Vec<String> = store
        .list(None, &dave)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        listed,
        vec![ids[1].clone(), ids[2].clone(), fourth.session.id.clone()]
    );
}

async fn check_reject_when_full(state: SharedState, _clock: Arc<ManualClock>) {
    let config = SessionConfig {
        concurrent_limit: 2,
        when_full: WhenFull::Reject,
        ..SessionConfig::default()
    };
    let store = SessionStore::new(state.clone(), config);
    let erin = subject("erin");
    store.create(&erin, None, None).await.unwrap();
    store.create(&erin, None, None).await.unwrap();
    assert_eq!(
        store.create(&erin, None, None).await.unwrap_err(),
        SessionError::LimitReached
    );
    assert_eq!(store.list(None, &erin).await.unwrap().len(), 2);

    // Concurrent creates at an empty account: exactly `limit` succeed.
    let frank = subject("frank");
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        let frank = frank.clone();
        tasks.push(tokio::spawn(async move {
            store.create(&frank, None, None).await
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(SessionError::LimitReached) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((ok, refused), (2, 8));
    assert_eq!(store.list(None, &frank).await.unwrap().len(), 2);
}

async fn check_revoke(state: SharedState, _clock: Arc<ManualClock>) {
    let store = SessionStore::new(state, SessionConfig::default());
    let acme = TenantId::new("acme").unwrap();
    let gina = subject("gina");
    let mallory = subject("mallory");
    let s1 = store
        .create(&gina, Some(&acme), None)
        .await
        .unwrap()
        .session;
    let s2 = store
        .create(&gina, Some(&acme), None)
        .await
        .unwrap()
        .session;
    // Only the subject's own session.
    assert!(!store.revoke(Some(&acme), &mallory, &s1.id).await.unwrap());
    assert!(store.get(Some(&acme), &s1.id).await.unwrap().is_some());
    assert!(store.revoke(Some(&acme), &gina, &s1.id).await.unwrap());
    assert!(!store.revoke(Some(&acme), &gina, &s1.id).await.unwrap());
    // A touch after the revocation does not bring it back.
    assert!(!store.touch(Some(&acme), &s1.id).await.unwrap());
    assert!(store.get(Some(&acme), &s1.id).await.unwrap().is_none());
    assert_eq!(
        store
            .check(&principal(&gina, Some(&acme), Some(&s1.id)))
            .await
            .unwrap_err(),
        SessionCheckError::Revoked
    );
    let s3 = store
        .create(&gina, Some(&acme), None)
        .await
        .unwrap()
        .session;
    let mut all = store.revoke_all(Some(&acme), &gina).await.unwrap();
    all.sort();
    let mut expected = vec![s2.id.clone(), s3.id.clone()];
    expected.sort();
    assert_eq!(all, expected);
    assert!(store.get(Some(&acme), &s2.id).await.unwrap().is_none());
    assert!(store.get(Some(&acme), &s3.id).await.unwrap().is_none());
    assert!(store.list(Some(&acme), &gina).await.unwrap().is_empty());
}

async fn check_session_check(state: SharedState, clock: Arc<ManualClock>) {
    let config = SessionConfig {
        idle_timeout: Duration::from_secs(300),
        touch_interval: Duration::from_secs(60),
        ..SessionConfig::default()
    };
    let store = SessionStore::new(state, config);
    let acme = TenantId::new("acme").unwrap();
    let hank = subject("hank");
    let s = store
        .create(&hank, Some(&acme), None)
        .await
        .unwrap()
        .session;
    let p = principal(&hank, Some(&acme), Some(&s.id));
    store.check(&p).await.unwrap();
    // Within the touch interval: no write.
    clock.advance(Duration::from_secs(30));
    store.check(&p).await.unwrap();
    assert_eq!(
        store
            .get(Some(&acme), &s.id)
            .await
            .unwrap()
            .unwrap()
            .last_seen,
        s.last_seen
    );
    // Past it: last_seen moves, idle timer restarts.
    clock.advance(Duration::from_secs(40));
    store.check(&p).await.unwrap();
    let seen = store
        .get(Some(&acme), &s.id)
        .await
        .unwrap()
        .unwrap()
        .last_seen;
    assert_eq!(seen, clock_now(&clock));
    clock.advance(Duration::from_secs(290));
    store.check(&p).await.unwrap();
    // No session id, wrong subject, wrong tenant: revoked.
    assert_eq!(
        store
            .check(&principal(&hank, Some(&acme), None))
            .await
            .unwrap_err(),
        SessionCheckError::Revoked
    );
    assert_eq!(
        store
            .check(&principal("someone-else", Some(&acme), Some(&s.id)))
            .await
            .unwrap_err(),
        SessionCheckError::Revoked
    );
    assert_eq!(
        store
            .check(&principal(&hank, None, Some(&s.id)))
            .await
            .unwrap_err(),
        SessionCheckError::Revoked
    );
    // Idle too long.
    clock.advance(Duration::from_secs(301));
    assert!(store.check(&p).await.is_err());
}

async fn check_concurrent_checks_touch_once(state: SharedState, clock: Arc<ManualClock>) {
    let store = SessionStore::new(state, SessionConfig::default());
    let ivy = subject("ivy");
    let s = store.create(&ivy, None, None).await.unwrap().session;
    clock.advance(Duration::from_secs(120));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        let p = principal(&ivy, None, Some(&s.id));
        tasks.push(tokio::spawn(async move { store.check(&p).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let seen = store.get(None, &s.id).await.unwrap().unwrap().last_seen;
    assert_eq!(seen, clock_now(&clock));
}

/// The active count over two stores on one state (two instances of a
/// deployment, or two configurations): logins count in, evictions replace,
/// logouts and revocations count out, and idle or expired sessions drop out
/// at their deadline without any request — a renewal moves that deadline.
/// The state must be this check's alone (the count spans all of it).
async fn check_active_count(state: SharedState, other: SharedState, clock: Arc<ManualClock>) {
    let config = SessionConfig {
        idle_timeout: Duration::from_secs(600),
        absolute_lifetime: Duration::from_secs(3600),
        touch_interval: Duration::from_secs(60),
        concurrent_limit: 2,
        when_full: WhenFull::EvictOldest,
    };
    let store = SessionStore::new(state, config.clone());
    // Another instance, whose sessions end 100 s after they start.
    let short = SessionStore::new(
        other,
        SessionConfig {
            absolute_lifetime: Duration::from_secs(100),
            ..config
        },
    );
    let count = || async { store.active_count().await.unwrap() };
    assert_eq!(count().await, 0);
    let acme = TenantId::new("acme").unwrap();
    let globex = TenantId::new("globex").unwrap();
    let (ann, bob, cid, dee) = (
        subject("ann"),
        subject("bob"),
        subject("cid"),
        subject("dee"),
    );
    let a1 = store.create(&ann, Some(&acme), None).await.unwrap().session;
    clock.advance(Duration::from_secs(1)); // a1 is the oldest (t = 0, the rest t = 1)
    let a2 = store.create(&ann, Some(&acme), None).await.unwrap().session;
    let b1 = store.create(&bob, None, None).await.unwrap().session;
    let c1 = store
        .create(&cid, Some(&globex), None)
        .await
        .unwrap()
        .session;
    assert_eq!(count().await, 4, "one per login, every tenant");
    // The other instance counts the same sessions, and its own.
    short.create(&dee, None, None).await.unwrap();
    assert_eq!(short.active_count().await.unwrap(), 5);
    assert_eq!(count().await, 5);
    // A login past the per-user limit evicts one: the count stays.
    let a3 = store.create(&ann, Some(&acme), None).await.unwrap();
    assert_eq!(a3.evicted, std::slice::from_ref(&a1.id));
    assert_eq!(count().await, 5, "an eviction replaces a session");
    // A logout, and revoking it again.
    assert!(store.revoke(Some(&acme), &ann, &a2.id).await.unwrap());
    assert!(!store.revoke(Some(&acme), &ann, &a2.id).await.unwrap());
    assert_eq!(count().await, 4);
    // Every session of a user.
    assert_eq!(store.revoke_all(Some(&acme), &ann).await.unwrap().len(), 1);
    assert_eq!(count().await, 3);
    // t = 101: dee's session reaches its absolute expiry untouched.
    clock.advance(Duration::from_secs(100));
    assert_eq!(count().await, 2, "absolute expiry counts out");
    // t = 301: a request of bob's renews his session (idle deadline
    // 901); t = 331: another, within the touch interval, writes nothing.
    // cid makes none (idle deadline 601).
    clock.advance(Duration::from_secs(200));
    store
        .check(&principal(&bob, None, Some(&b1.id)))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(30));
    store
        .check(&principal(&bob, None, Some(&b1.id)))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(271));
    assert!(store.get(Some(&globex), &c1.id).await.unwrap().is_none());
    assert_eq!(count().await, 1, "cid idled out with no request at all");
    clock.advance(Duration::from_secs(298));
    assert_eq!(count().await, 1, "t = 900");
    clock.advance(Duration::from_secs(1));
    assert_eq!(count().await, 0, "bob idled out 600 s after his renewal");
    assert!(store.get(None, &b1.id).await.unwrap().is_none());
}

#[tokio::test]
async fn active_count() {
    let (s, c) = memory();
    check_active_count(s.clone(), s, c).await;
}

/// The live index is only a metric: when it cannot be written or read,
/// logins, renewals and logouts still work, and only the count fails.
#[tokio::test]
async fn a_failing_live_index_never_fails_a_login_or_a_request() {
    use kailash_core::state::{BoundedSetStore, SetInsert, SetMember, StateError, StateKey};

    struct FailingLive(Arc<dyn BoundedSetStore>);
    fn refuse(owner: &StateKey) -> Result<(), StateError> {
        if owner.as_str().starts_with("g:session.live:") {
            return Err(StateError::Unavailable("test: live index down".into()));
        }
        Ok(())
    }
    #[async_trait::async_trait]
    impl BoundedSetStore for FailingLive {
        async fn insert(
            &self,
            owner: &StateKey,
            member: &str,
            expires_at: jiff::Timestamp,
            cap: usize,
            when_full: WhenFull,
        ) -> Result<SetInsert, StateError> {
            refuse(owner)?;
            self.0
                .insert(owner, member, expires_at, cap, when_full)
                .await
        }
        async fn remove(&self, owner: &StateKey, member: &str) -> Result<bool, StateError> {
            refuse(owner)?;
            self.0.remove(owner, member).await
        }
        async fn members(&self, owner: &StateKey) -> Result<Vec<SetMember>, StateError> {
            refuse(owner)?;
            self.0.members(owner).await
        }
        async fn contains(&self, owner: &StateKey, member: &str) -> Result<bool, StateError> {
            refuse(owner)?;
            self.0.contains(owner, member).await
        }
        async fn len(&self, owner: &StateKey) -> Result<usize, StateError> {
            refuse(owner)?;
            self.0.len(owner).await
        }
        async fn clear(&self, owner: &StateKey) -> Result<Vec<String>, StateError> {
            refuse(owner)?;
            self.0.clear(owner).await
        }
    }

    let (mut state, clock) = memory();
    state.sets = Arc::new(FailingLive(state.sets.clone()));
    let store = SessionStore::new(state, SessionConfig::default());
    let eve = subject("eve");
    let s = store.create(&eve, None, None).await.unwrap().session;
    clock.advance(Duration::from_secs(120));
    store
        .check(&principal(&eve, None, Some(&s.id)))
        .await
        .unwrap();
    assert_eq!(
        store.get(None, &s.id).await.unwrap().unwrap().last_seen,
        clock_now(&clock),
        "renewed"
    );
    assert!(store.revoke(None, &eve, &s.id).await.unwrap());
    assert!(matches!(
        store.active_count().await,
        Err(SessionError::Unavailable(_))
    ));
}

/// Every check above on Redis, each on a fresh key prefix (the active
/// count on two connections, as two instances would be).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_check_on_redis() {
    let Ok(url) = std::env::var("KAILASH_TEST_REDIS_URL") else {
        eprintln!("skipped: KAILASH_TEST_REDIS_URL is not set");
        return;
    };
    async fn redis(url: &str, prefix: &str, clock: Arc<ManualClock>) -> SharedState {
        let options = kailash_redis::RedisOptions::default()
            .with_key_prefix(prefix)
            .with_require_connection(true);
        kailash_redis::RedisState::connect(url, clock, options)
            .await
            .expect("Redis at KAILASH_TEST_REDIS_URL is usable")
            .into_shared()
    }
    let fresh = |name: &str| format!("kailash-test:{}:{}:", subject("sessions"), name);
    macro_rules! on_redis {
        ($($check:ident),*) => {$({
            let clock = Arc::new(ManualClock::starting_now());
            let state = redis(&url, &fresh(stringify!($check)), clock.clone()).await;
            $check(state, clock).await;
        })*};
    }
    on_redis!(
        check_create_get_and_ids,
        check_idle_timeout_and_touch,
        check_absolute_lifetime,
        check_evict_oldest,
        check_reject_when_full,
        check_revoke,
        check_session_check,
        check_concurrent_checks_touch_once
    );
    let clock = Arc::new(ManualClock::starting_now());
    let prefix = fresh("active_count");
    let a = redis(&url, &prefix, clock.clone()).await;
    let b = redis(&url, &prefix, clock.clone()).await;
    check_active_count(a, b, clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checks_touch_once() {
    let (s, c) = memory();
    check_concurrent_checks_touch_once(s, c).await;
}

#[tokio::test]
async fn create_get_and_ids() {
    let (s, c) = memory();
    check_create_get_and_ids(s, c).await;
}

#[tokio::test]
async fn idle_timeout_and_touch() {
    let (s, c) = memory();
    check_idle_timeout_and_touch(s, c).await;
}

#[tokio::test]
async fn absolute_lifetime() {
    let (s, c) = memory();
    check_absolute_lifetime(s, c).await;
}

#[tokio::test]
async fn evict_oldest() {
    let (s, c) = memory();
    check_evict_oldest(s, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reject_when_full() {
    let (s, c) = memory();
    check_reject_when_full(s, c).await;
}

#[tokio::test]
async fn revoke() {
    let (s, c) = memory();
    check_revoke(s, c).await;
}

#[tokio::test]
async fn session_check() {
    let (s, c) = memory();
    check_session_check(s, c).await;
}

#[test]
fn config_serde() {
    let c: SessionConfig = serde_json::from_str(
        r#"{"idle_timeout_secs":120,"absolute_lifetime_secs":3600,"concurrent_limit":1,"when_full":"reject","touch_interval_secs":5}"#,
    )
    .unwrap();
    assert_eq!(c.idle_timeout, Duration::from_secs(120));
    assert_eq!(c.when_full, WhenFull::Reject);
    assert!(serde_json::from_str::<SessionConfig>(r#"{"idle":1}"#).is_err());
    let back: SessionConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}

/// Everything that ends a session early tells the store's listener (the
/// gateway closes realtime sockets with it): a revocation, a revoke-all,
/// and an eviction by a newer login; a listener is set once.
#[tokio::test]
async fn ended_sessions_are_told_to_the_listener() {
    use kailash_auth::session::SessionListener;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Record(Mutex<Vec<(String, Vec<String>)>>);
    #[async_trait::async_trait]
    impl SessionListener for Record {
        async fn ended(&self, _tenant: Option<&TenantId>, subject: &str, sessions: &[String]) {
            self.0
                .lock()
                .unwrap()
                .push((subject.to_owned(), sessions.to_vec()));
        }
    }

    let (state, _clock) = memory();
    let config = SessionConfig {
        concurrent_limit: 2,
        when_full: WhenFull::EvictOldest,
        ..SessionConfig::default()
    };
    let store = SessionStore::new(state, config);
    let record = Arc::new(Record::default());
    assert!(store.set_listener(record.clone()));
    assert!(
        !store.set_listener(Arc::new(Record::default())),
        "one listener"
    );
    let acme = TenantId::new("acme").unwrap();
    let taken = |r: &Record| std::mem::take(&mut *r.0.lock().unwrap());

    let a = store
        .create("ann", Some(&acme), None)
        .await
        .unwrap()
        .session
        .id;
    let b = store
        .create("ann", Some(&acme), None)
        .await
        .unwrap()
        .session
        .id;
    assert!(taken(&record).is_empty(), "nothing ended yet");
    // A third login evicts the oldest.
    let c = store.create("ann", Some(&acme), None).await.unwrap();
    assert_eq!(c.evicted.len(), 1);
    assert_eq!(taken(&record), vec![("ann".to_owned(), c.evicted.clone())]);
    let live = if c.evicted[0] == a { b } else { a };
    // A logout.
    assert!(store.revoke(Some(&acme), "ann", &live).await.unwrap());
    assert_eq!(taken(&record), vec![("ann".to_owned(), vec![live.clone()])]);
    // Revoking what is gone already tells nobody.
    assert!(!store.revoke(Some(&acme), "ann", &live).await.unwrap());
    assert!(taken(&record).is_empty());
    // Every session at once.
    let ids = store.revoke_all(Some(&acme), "ann").await.unwrap();
    assert_eq!(taken(&record), vec![("ann".to_owned(), ids)]);
}

/// Field keys over `state` with one KEK.
async fn field_keys(state: &SharedState) -> Arc<kailash_core::field_encryption::FieldKeys> {
    use kailash_core::envelope::Keyring;
    use kailash_core::field_encryption::{FieldKeys, FieldKeysOptions};
    let kek = Keyring::parse(&format!("kek-1 {}", Keyring::generate_key().unwrap())).unwrap();
    let options = FieldKeysOptions::default()
        .rotation(Some(Duration::from_secs(90 * 86_400)))
        .retire_after(Duration::from_secs(3_600));
    Arc::new(
        FieldKeys::load(state.clone(), Arc::new(kek), options)
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn client_addresses_are_sealed_at_rest_renewed_unchanged_and_reencrypted() {
    use bytes::Bytes;
    use kailash_auth::session::ClientIp;
    use kailash_core::state::{Namespace, StateKey};

    let clock = Arc::new(ManualClock::starting_now());
    let state = SharedState::memory(clock.clone());
    let acme = TenantId::new("acme").unwrap();
    let ip: std::net::IpAddr = "198.51.100.23".parse().unwrap();

    // A record written before encryption was on: in clear.
    let plain_store = SessionStore::new(state.clone(), SessionConfig::default());
    let legacy = plain_store
        .create("bob", Some(&acme), Some(ip))
        .await
        .unwrap()
        .session;

    let keys = field_keys(&state).await;
    let store =
        SessionStore::new(state.clone(), SessionConfig::default()).with_field_keys(keys.clone());
    let s = store
        .create("alice", Some(&acme), Some(ip))
        .await
        .unwrap()
        .session;
    assert!(matches!(s.client_ip, Some(ClientIp::Sealed(_))));
    let record = StateKey::tenant(&acme, Namespace::new("session"), &s.id);
    let stored = state.kv.get(&record).await.unwrap().unwrap();
    let text = std::str::from_utf8(&stored).unwrap();
    assert!(!text.contains("198.51.100.23"), "{text}");
    assert_eq!(store.client_ip(&s).await.unwrap(), Some(ip));
    // The legacy record still reads.
    assert_eq!(store.client_ip(&legacy).await.unwrap(), Some(ip));
    // A store without keys shows no address rather than failing.
    assert_eq!(plain_store.client_ip(&s).await.unwrap(), None);

    // A renewal writes the sealed text back unchanged.
    clock.advance(Duration::from_secs(600));
    assert!(store.touch(Some(&acme), &s.id).await.unwrap());
    let renewed = store.get(Some(&acme), &s.id).await.unwrap().unwrap();
    assert_eq!(renewed.client_ip, s.client_ip);

    // A sealed address moved to another session does not open: a typed
    // error, never another address.
    let mut moved = legacy.clone();
    moved.client_ip = s.client_ip.clone();
    assert!(matches!(
        store.client_ip(&moved).await,
        Err(SessionError::Field(_))
    ));

    // Rotation, then the maintenance pass: every address under the new
    // key (the legacy one sealed too), the records' deadlines unchanged,
    // and after the grace the old key retired.
    clock.advance(Duration::from_secs(91 * 86_400 - 600));
    let long = SessionConfig {
        idle_timeout: Duration::from_secs(200 * 86_400),
        absolute_lifetime: Duration::from_secs(365 * 86_400),
        ..SessionConfig::default()
    };
    let live = SessionStore::new(state.clone(), long.clone()).with_field_keys(keys.clone());
    let old = live.create("carol", None, Some(ip)).await.unwrap().session;
    let clear = SessionStore::new(state.clone(), long)
        .create("dave", None, Some(ip))
        .await
        .unwrap()
        .session;
    assert!(matches!(clear.client_ip, Some(ClientIp::Clear(_))));
    let targets = vec![live.reencryption().unwrap()];
    let report = keys.maintain(&targets).await.unwrap();
    assert!(report.rotated);
    assert_eq!(report.targets[0].1.failed, 0);
    let carol = live.get(None, &old.id).await.unwrap().unwrap();
    let Some(ClientIp::Sealed(sealed)) = &carol.client_ip else {
        panic!("not sealed");
    };
    assert!(keys.is_current(sealed.as_str()));
    assert_eq!(live.client_ip(&carol).await.unwrap(), Some(ip));
    assert_eq!(carol.last_seen, old.last_seen, "the pass is not a use");
    let dave = live.get(None, &clear.id).await.unwrap().unwrap();
    assert!(
        matches!(dave.client_ip, Some(ClientIp::Sealed(_))),
        "clear records get sealed"
    );
    assert_eq!(live.client_ip(&dave).await.unwrap(), Some(ip));
    clock.advance(Duration::from_secs(3_601));
    let report = keys.maintain(&targets).await.unwrap();
    assert_eq!(report.retired, 1);
    assert_eq!(live.client_ip(&carol).await.unwrap(), Some(ip));

    // A corrupted sealed value in the state is refused, not misread.
    let record = StateKey::global(Namespace::new("session"), &old.id);
    let bytes = state.kv.get(&record).await.unwrap().unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let at = text.find("kf1.").unwrap() + 30;
    let mut tampered = text.clone().into_bytes();
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    state
        .kv
        .set(&record, Bytes::from(tampered), None)
        .await
        .unwrap();
    let got = live.get(None, &old.id).await.unwrap().unwrap();
    assert!(matches!(
        live.client_ip(&got).await,
        Err(SessionError::Field(_))
    ));
}
