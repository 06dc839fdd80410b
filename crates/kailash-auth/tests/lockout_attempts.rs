//! Login throttling and lockout, written against any `SharedState` so the
//! same checks can run on Redis: each `check_*` function takes the state and
//! the `ManualClock` it was built with; the `#[tokio::test]` wrappers run them
//! on memory.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use kailash_auth::lockout::{AttemptError, Lockout, LockoutConfig, normalize_username};
use kailash_core::clock::ManualClock;
use kailash_core::state::{RateQuota, SharedState};

fn memory() -> (SharedState, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_now());
    (SharedState::memory(clock.clone()), clock)
}

/// A unique username and client address per run, so tests can share a Redis.
fn user(name: &str) -> (String, IpAddr) {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    let ip = IpAddr::from([10, bytes[0], bytes[1], bytes[2]]);
    (
        normalize_username(&format!(
            " {name}-{} ",
            data_encoding::HEXLOWER.encode(&bytes)
        )),
        ip,
    )
}

const FIFTEEN_MIN: Duration = Duration::from_secs(15 * 60);

async fn check_parallel_attempts_then_lock(state: SharedState, clock: Arc<ManualClock>) {
    let config = LockoutConfig {
        per_ip: None,
        ..LockoutConfig::default()
    };
    let lockout = Lockout::new(state, config);
    let (name, ip) = user("alice");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let lockout = lockout.clone();
        let name = name.clone();
        tasks.push(tokio::spawn(async move { lockout.begin(&name, ip).await }));
    }
    let mut permits = Vec::new();
    let mut locked = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(p) => permits.push(p),
            Err(AttemptError::Locked { retry_after }) => {
                assert!(retry_after <= FIFTEEN_MIN && retry_after > Duration::ZERO);
                locked += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((permits.len(), locked), (5, 15));
    for p in permits {
        lockout.failed(p).await.unwrap();
    }
    assert_eq!(lockout.status(&name).await.unwrap(), Some(FIFTEEN_MIN));
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        lockout.begin(&name, ip).await.unwrap_err(),
        AttemptError::Locked {
            retry_after: Duration::from_secs(14 * 60)
        }
    );
    clock.advance(Duration::from_secs(14 * 60));
    assert_eq!(lockout.status(&name).await.unwrap(), None);
    let p = lockout.begin(&name, ip).await.unwrap();
    lockout.succeeded(p).await.unwrap();
}

async fn check_lock_starts_at_the_last_failure(state: SharedState, clock: Arc<ManualClock>) {
    let config = LockoutConfig {
        max_attempts: 3,
        per_ip: None,
        ..LockoutConfig::default()
    };
    let lockout = Lockout::new(state, config);
    let (name, ip) = user("bob");
    for _ in 0..2 {
        let p = lockout.begin(&name, ip).await.unwrap();
        lockout.failed(p).await.unwrap();
        assert_eq!(lockout.status(&name).await.unwrap(), None);
        clock.advance(Duration::from_secs(100));
    }
    let p = lockout.begin(&name, ip).await.unwrap();
    clock.advance(Duration::from_millis(400));
    lockout.failed(p).await.unwrap();
    // Locked for 15 minutes from the third failure; whole seconds, rounded up.
    assert_eq!(lockout.status(&name).await.unwrap(), Some(FIFTEEN_MIN));
    clock.advance(Duration::from_millis(300));
    assert_eq!(
        lockout.begin(&name, ip).await.unwrap_err(),
        AttemptError::Locked {
            retry_after: FIFTEEN_MIN
        }
    );
    clock.advance(FIFTEEN_MIN - Duration::from_millis(300));
    assert_eq!(lockout.status(&name).await.unwrap(), None);
    assert!(lockout.begin(&name, ip).await.is_ok());
}

async fn check_success_clears_the_count(state: SharedState, _clock: Arc<ManualClock>) {
    let config = LockoutConfig {
        max_attempts: 3,
        per_ip: None,
        ..LockoutConfig::default()
    };
    let lockout = Lockout::new(state, config);
    let (name, ip) = user("carol");
    for _ in 0..5 {
        for _ in 0..2 {
            let p = lockout.begin(&name, ip).await.unwrap();
            lockout.failed(p).await.unwrap();
        }
        let p = lockout.begin(&name, ip).await.unwrap();
        lockout.succeeded(p).await.unwrap();
    }
    assert_eq!(lockout.status(&name).await.unwrap(), None);
}

async fn check_normalised_usernames_share_a_counter(state: SharedState, _clock: Arc<ManualClock>) {
    assert_eq!(normalize_username("  Alice "), normalize_username("alice"));
    let config = LockoutConfig {
        max_attempts: 2,
        per_ip: None,
        ..LockoutConfig::default()
    };
    let lockout = Lockout::new(state, config);
    let (name, ip) = user("DAVE");
    let upper = name.to_uppercase();
    let p = lockout
        .begin(&normalize_username(&upper), ip)
        .await
        .unwrap();
    lockout.failed(p).await.unwrap();
    let p = lockout
        .begin(&normalize_username(&format!("\t{upper}\n")), ip)
        .await
        .unwrap();
    lockout.failed(p).await.unwrap();
    assert!(lockout.status(&name).await.unwrap().is_some());
}

async fn check_ip_throttle(state: SharedState, clock: Arc<ManualClock>) {
    let config = LockoutConfig {
        max_attempts: 100,
        per_ip: Some(RateQuota::per_minute(3).unwrap()),
        ..LockoutConfig::default()
    };
    let lockout = Lockout::new(state, config);
    let (name, ip) = user("erin");
    for i in 0..3 {
        let p = lockout.begin(&format!("{name}-{i}"), ip).await.unwrap();
        lockout.failed(p).await.unwrap();
    }
    // The throttle is per address, whatever the username.
    assert_eq!(
        lockout.begin(&format!("{name}-x"), ip).await.unwrap_err(),
        AttemptError::Throttled {
            retry_after: Duration::from_secs(20)
        }
    );
    // Another address is not affected.
    let (other_name, other) = user("erin2");
    assert!(lockout.begin(&other_name, other).await.is_ok());
    clock.advance(Duration::from_secs(20));
    assert!(lockout.begin(&format!("{name}-y"), ip).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_attempts_then_lock() {
    let (s, c) = memory();
    check_parallel_attempts_then_lock(s, c).await;
}

#[tokio::test]
async fn lock_starts_at_the_last_failure() {
    let (s, c) = memory();
    check_lock_starts_at_the_last_failure(s, c).await;
}

#[tokio::test]
async fn success_clears_the_count() {
    let (s, c) = memory();
    check_success_clears_the_count(s, c).await;
}

#[tokio::test]
async fn normalised_usernames_share_a_counter() {
    let (s, c) = memory();
    check_normalised_usernames_share_a_counter(s, c).await;
}

#[tokio::test]
async fn ip_throttle() {
    let (s, c) = memory();
    check_ip_throttle(s, c).await;
}

#[test]
fn defaults() {
    let c = LockoutConfig::default();
    assert_eq!(c.max_attempts, 5);
    assert_eq!(c.lockout_duration, FIFTEEN_MIN);
    assert_eq!(c.per_ip, Some(RateQuota::per_minute(20).unwrap()));
}

async fn check_a_released_attempt_is_not_counted(state: SharedState, _clock: Arc<ManualClock>) {
    let config = LockoutConfig {
        per_ip: None,
        max_attempts: 2,
        ..LockoutConfig::default()
    };
    let lockout = Lockout::new(state, config);
    let (name, ip) = user("busy");
    // Passwords that could not be checked (every hashing slot busy) give
    // their slot back: many of them use up nothing.
    for _ in 0..5 {
        let permit = lockout.begin(&name, ip).await.unwrap();
        lockout.release(permit).await.unwrap();
    }
    assert_eq!(lockout.status(&name).await.unwrap(), None);
    // The two real attempts are still there; the second failure locks.
    let first = lockout.begin(&name, ip).await.unwrap();
    assert!(!lockout.failed(first).await.unwrap());
    let second = lockout.begin(&name, ip).await.unwrap();
    assert!(
        lockout.failed(second).await.unwrap(),
        "the locking failure says so"
    );
    assert!(matches!(
        lockout.begin(&name, ip).await,
        Err(AttemptError::Locked { .. })
    ));
}

#[tokio::test]
async fn a_released_attempt_is_not_counted() {
    let (s, c) = memory();
    check_a_released_attempt_is_not_counted(s, c).await;
}
