//! A key set fetched from a JWKS source and refreshed on unknown `kid`s.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use kailash_core::clock::Clock;

use super::error::KeySetError;
use super::keyset::KeySet;

/// Default minimum interval between refetches triggered by unknown `kid`s.
pub const DEFAULT_REFETCH_COOLDOWN: Duration = Duration::from_secs(300);

/// Somewhere a JWKS document comes from.
#[async_trait]
pub trait JwksSource: Send + Sync + 'static {
    /// Fetches the current JWKS document.
    async fn fetch(&self) -> Result<serde_json::Value, KeySetError>;
}

/// A JWKS read from a local file on every fetch.
#[derive(Debug, Clone)]
pub struct FileJwksSource {
    path: PathBuf,
}

impl FileJwksSource {
    /// A source reading `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

#[async_trait]
impl JwksSource for FileJwksSource {
    async fn fetch(&self) -> Result<serde_json::Value, KeySetError> {
        let path = self.path.clone();
        let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .map_err(|_| KeySetError::Source("reader task failed".into()))?
            .map_err(|e| KeySetError::Source(format!("cannot read JWKS file: {}", e.kind())))?;
        serde_json::from_slice(&bytes)
            .map_err(|_| KeySetError::Source("JWKS file is not valid JSON".into()))
    }
}

/// The outcome of a refetch attempt after an unknown `kid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refetch {
    /// The set was (or may have been) replaced: look again.
    Changed,
    /// The cooldown has not passed: no fetch.
    CoolingDown,
    /// The source failed.
    Failed,
}

/// A verify-only [`KeySet`] loaded from a [`JwksSource`]. An unknown `kid`
/// triggers a refetch at most once per cooldown (default 5 minutes), never
/// per request; concurrent unknown-`kid` requests share one fetch.
pub struct RemoteKeySet {
    source: Arc<dyn JwksSource>,
    keys: KeySet,
    clock: Arc<dyn Clock>,
    cooldown: Duration,
    last_fetch: Mutex<Timestamp>,
    generation: AtomicU64,
    fetch_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RemoteKeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeySet")
            .field("keys", &self.keys)
            .field("cooldown", &self.cooldown)
            .finish_non_exhaustive()
    }
}

impl RemoteKeySet {
    /// Fetches the initial set; fails if the source fails or the set is
    /// invalid or empty.
    pub async fn load(
        source: Arc<dyn JwksSource>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, KeySetError> {
        let doc = source.fetch().await?;
        let keys = KeySet::from_jwks(&doc, clock.clone())?;
        if keys.is_empty() {
            return Err(KeySetError::Empty);
        }
        Ok(Self {
            source,
            keys,
            last_fetch: Mutex::new(clock.now()),
            clock,
            cooldown: DEFAULT_REFETCH_COOLDOWN,
            generation: AtomicU64::new(0),
            fetch_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Sets the minimum interval between refetches.
    #[must_use]
    pub fn with_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The keys currently held.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// Called after an unknown `kid`: refetches unless the cooldown has not
    /// passed, and says whether a retry is worthwhile.
    pub(crate) async fn refresh_for_unknown_kid(&self) -> Refetch {
        let seen = self.generation.load(Ordering::Acquire);
        let _guard = self.fetch_lock.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            // Someone else refreshed while we waited.
            return Refetch::Changed;
        }
        let now = self.clock.now();
        {
            let mut last = self
                .last_fetch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let next_allowed = last.checked_add(self.cooldown).unwrap_or(Timestamp::MAX);
            if now < next_allowed {
                return Refetch::CoolingDown;
            }
            // Count failed attempts too, so a failing source is not hammered.
            *last = now;
        }
        match self.refresh().await {
            Ok(()) => Refetch::Changed,
            Err(error) => {
                tracing::warn!(%error, "JWKS refetch failed; keeping the current keys");
                Refetch::Failed
            }
        }
    }

    /// Fetches now, regardless of the cooldown (for a periodic refresher).
    pub async fn refresh(&self) -> Result<(), KeySetError> {
        let doc = self.source.fetch().await?;
        let fresh = KeySet::from_jwks(&doc, self.clock.clone())?;
        if fresh.is_empty() {
            return Err(KeySetError::Empty);
        }
        self.keys.replace_with(&fresh);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}
