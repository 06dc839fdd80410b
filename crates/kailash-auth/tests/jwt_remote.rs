//! Remote JWKS: caching and refetch-on-unknown-kid with a cooldown.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kailash_auth::jwt::{
    Algorithm, Claims, FileJwksSource, JwksSource, KeySet, KeySetError, RemoteKeySet, SigningKey,
    TokenType, Verifier, VerifyError,
};
use kailash_core::clock::ManualClock;
use serde_json::Value;

const NOW: i64 = 1_700_000_000;

struct Counting {
    doc: Mutex<Value>,
    fetches: AtomicUsize,
}

#[async_trait]
impl JwksSource for Counting {
    async fn fetch(&self) -> Result<Value, KeySetError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        // Give concurrent callers a chance to pile up behind this fetch.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        Ok(self.doc.lock().unwrap().clone())
    }
}

fn claims() -> Claims {
    Claims::new("iss", "alice", "aud", NOW, NOW + 3600)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_kid_refetches_once_per_cooldown() {
    let c = Arc::new(ManualClock::new(jiff::Timestamp::from_second(NOW).unwrap()));
    let issuer = KeySet::new(
        SigningKey::generate(Algorithm::ES256, "k1").unwrap(),
        c.clone(),
    );
    let source = Arc::new(Counting {
        doc: Mutex::new(issuer.jwks()),
        fetches: AtomicUsize::new(0),
    });
    let remote = Arc::new(RemoteKeySet::load(source.clone(), c.clone()).await.unwrap());
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    let v = Verifier::builder(remote.clone(), "iss", "aud")
        .clock(c.clone())
        .build();
    let t1 = issuer.issue(&claims(), TokenType::Access).unwrap();
    assert!(v.verify(&t1).await.is_ok());

    // The issuer rotates; the new key is published.
    issuer
        .rotate(
            SigningKey::generate(Algorithm::EdDSA, "k2").unwrap(),
            Duration::from_secs(3600),
        )
        .unwrap();
    *source.doc.lock().unwrap() = issuer.jwks();
    let t2 = issuer.issue(&claims(), TokenType::Access).unwrap();

    // Within the cooldown of the initial load: no refetch, refused.
    assert_eq!(v.verify(&t2).await, Err(VerifyError::UnknownKey));
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);

    c.advance(Duration::from_secs(301));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let v = v.clone();
        let t2 = t2.clone();
        tasks.push(tokio::spawn(async move { v.verify(&t2).await }));
    }
    for t in tasks {
        assert!(t.await.unwrap().is_ok());
    }
    assert_eq!(
        source.fetches.load(Ordering::SeqCst),
        2,
        "one shared refetch"
    );
    assert!(
        v.verify(&t1).await.is_ok(),
        "the old key is still published"
    );

    // Garbage kids within the cooldown never trigger fetches.
    let stranger = KeySet::new(
        SigningKey::generate(Algorithm::ES256, "k9").unwrap(),
        c.clone(),
    );
    let t9 = stranger.issue(&claims(), TokenType::Access).unwrap();
    for _ in 0..20 {
        assert_eq!(v.verify(&t9).await, Err(VerifyError::UnknownKey));
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    c.advance(Duration::from_secs(301));
    assert_eq!(v.verify(&t9).await, Err(VerifyError::UnknownKey));
    assert_eq!(source.fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn file_source_loads_a_jwks() {
    let c = Arc::new(ManualClock::new(jiff::Timestamp::from_second(NOW).unwrap()));
    let issuer = KeySet::new(
        SigningKey::generate(Algorithm::EdDSA, "f1").unwrap(),
        c.clone(),
    );
    let path = std::env::temp_dir().join(format!("kailash-jwks-{}.json", std::process::id()));
    std::fs::write(&path, issuer.jwks().to_string()).unwrap();
    let remote = RemoteKeySet::load(Arc::new(FileJwksSource::new(&path)), c.clone())
        .await
        .unwrap();
    let v = Verifier::builder(Arc::new(remote), "iss", "aud")
        .clock(c)
        .build();
    let t = issuer.issue(&claims(), TokenType::Access).unwrap();
    assert!(v.verify(&t).await.is_ok());
    std::fs::remove_file(&path).unwrap();
    assert!(
        RemoteKeySet::load(
            Arc::new(FileJwksSource::new(&path)),
            Arc::new(ManualClock::starting_now())
        )
        .await
        .is_err()
    );
}

struct Flaky {
    doc: Value,
    fail: std::sync::atomic::AtomicBool,
    fetches: AtomicUsize,
}

#[async_trait]
impl JwksSource for Flaky {
    async fn fetch(&self) -> Result<Value, KeySetError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            Err(KeySetError::Source("connection refused".into()))
        } else {
            Ok(self.doc.clone())
        }
    }
}

#[tokio::test]
async fn a_failing_source_keeps_the_old_keys_and_is_not_hammered() {
    let c = Arc::new(ManualClock::new(jiff::Timestamp::from_second(NOW).unwrap()));
    let issuer = KeySet::new(
        SigningKey::generate(Algorithm::ES256, "k1").unwrap(),
        c.clone(),
    );
    let source = Arc::new(Flaky {
        doc: issuer.jwks(),
        fail: std::sync::atomic::AtomicBool::new(false),
        fetches: AtomicUsize::new(0),
    });
    let remote = RemoteKeySet::load(source.clone(), c.clone())
        .await
        .unwrap()
        .with_cooldown(Duration::from_secs(60));
    let v = Verifier::builder(Arc::new(remote), "iss", "aud")
        .clock(c.clone())
        .build();
    source.fail.store(true, Ordering::SeqCst);
    let stranger = KeySet::new(
        SigningKey::generate(Algorithm::ES256, "k9").unwrap(),
        c.clone(),
    );
    let t9 = stranger.issue(&claims(), TokenType::Access).unwrap();
    c.advance(Duration::from_secs(61));
    assert_eq!(v.verify(&t9).await, Err(VerifyError::KeysUnavailable));
    assert_eq!(v.verify(&t9).await, Err(VerifyError::UnknownKey));
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    let t1 = issuer.issue(&claims(), TokenType::Access).unwrap();
    assert!(v.verify(&t1).await.is_ok());
}
