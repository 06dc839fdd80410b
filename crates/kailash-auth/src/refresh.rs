//! Refresh-token rotation with reuse detection.
//!
//! A *family* is the chain of refresh tokens issued for one session. Each
//! refresh presents the family id and the current token id (`jti`) and gets a
//! new `jti`; the old one is dead. Presenting a dead `jti` means a token was
//! copied: the whole family is revoked and the caller revokes the session
//! ([`RotateOutcome::Reused`]). The one exception is a client that sent the
//! same refresh twice (two tabs, or a retry after an answer that never
//! arrived — a backend timeout after the rotation had already been stored):
//! the previous `jti` within [`RefreshConfig::reuse_grace`] of its rotation
//! gets the generation that rotation produced, again
//! ([`RotateOutcome::Retried`]). Rotation is idempotent within the grace, so
//! a lost reply never turns the client's retry into "reuse".
//!
//! # Storage
//!
//! One JSON record per family in the key/value store under
//! `t:<tenant>:refresh:<family>` (`g:refresh:<family>` without a tenant),
//! holding the current and previous `jti`, when it was last rotated, the
//! session id and the family's expiry. It expires
//! [`RefreshConfig::lifetime`] after [`RefreshFamilies::start`]; rotation does
//! not extend it. Rotation is a compare-and-swap on the exact stored bytes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use kailash_core::TenantId;
use kailash_core::state::{Namespace, SharedState, StateError, StateKey};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Namespace of the family records.
const NS_REFRESH: Namespace = Namespace::new("refresh");
/// Compare-and-swap attempts before giving up under contention.
const ROTATE_ATTEMPTS: usize = 8;

/// Refresh-token lifetimes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshConfig {
    /// How long a family lives after it was started, however often it is
    /// rotated (default 30 days; at least 1 second).
    pub lifetime: Duration,
    /// How long after a rotation the previous `jti` counts as a retry of
    /// that rotation (answered with its result again) rather than as reuse
    /// (default 2 seconds).
    pub reuse_grace: Duration,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        Self {
            lifetime: Duration::from_secs(30 * 24 * 60 * 60),
            reuse_grace: Duration::from_secs(2),
        }
    }
}

/// A refresh token to hand to the client: the family and its current `jti`.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshGrant {
    /// The family id.
    pub family: String,
    /// The current token id; secret, never log it.
    pub jti: String,
    /// When the family (and so this token) expires.
    pub expires_at: Timestamp,
}

impl fmt::Debug for RefreshGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshGrant")
            .field("family", &self.family)
            .field("jti", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What [`RefreshFamilies::rotate`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The presented `jti` was current: the same family with a new `jti`.
    Rotated(RefreshGrant),
    /// A dead `jti` was presented: the family is revoked. The caller revokes
    /// the session and audits a critical event.
    Reused {
        /// The session the family belonged to.
        session_id: String,
    },
    /// The presented `jti` was rotated less than the reuse grace ago: a
    /// duplicate or retried request. The grant is the one that rotation
    /// produced (the family's current `jti`); nothing is revoked.
    Retried(RefreshGrant),
    /// The family does not exist, expired or was revoked.
    Unknown,
}

/// Why a refresh operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// The state backend failed (or the system random number generator did).
    /// Fail closed.
    #[error("refresh store unavailable: {0}")]
    Unavailable(StateError),
    /// A stored family could not be read.
    #[error("stored refresh family is corrupt")]
    Corrupt,
}

impl From<StateError> for RefreshError {
    fn from(e: StateError) -> Self {
        Self::Unavailable(e)
    }
}

/// The stored state of one family.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Family {
    current: String,
    previous: Option<String>,
    rotated_at: Option<Timestamp>,
    session_id: String,
    expires_at: Timestamp,
}

/// Starts, rotates and revokes refresh-token families; cheap to clone.
///
/// ```
/// use std::sync::Arc;
/// use kailash_auth::refresh::{RefreshConfig, RefreshFamilies, RotateOutcome};
/// use kailash_core::clock::SystemClock;
/// use kailash_core::state::SharedState;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let families = RefreshFamilies::new(SharedState::memory(Arc::new(SystemClock)), RefreshConfig::default());
/// let grant = families.start(None, "session-1").await?;
/// let RotateOutcome::Rotated(next) = families.rotate(None, &grant.family, &grant.jti).await? else {
///     panic!("the current jti rotates");
/// };
/// assert_eq!(next.family, grant.family);
/// assert_ne!(next.jti, grant.jti);
/// # Ok::<(), kailash_auth::refresh::RefreshError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct RefreshFamilies {
    inner: Arc<Inner>,
}

struct Inner {
    state: SharedState,
    config: RefreshConfig,
}

impl fmt::Debug for RefreshFamilies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshFamilies")
            .field("state", &self.inner.state)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl RefreshFamilies {
    /// Families on `state`. A zero lifetime is raised to 1 second.
    pub fn new(state: SharedState, mut config: RefreshConfig) -> Self {
        config.lifetime = config.lifetime.max(Duration::from_secs(1));
        Self {
            inner: Arc::new(Inner { state, config }),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &RefreshConfig {
        &self.inner.config
    }

    /// Starts a new family bound to `session_id`.
    pub async fn start(
        &self,
        tenant: Option<&TenantId>,
        session_id: &str,
    ) -> Result<RefreshGrant, RefreshError> {
        let now = self.inner.state.clock.now();
        let lifetime = self.inner.config.lifetime;
        let family_id = crate::ids::random().ok_or_else(rng_failed)?;
        let jti = crate::ids::random().ok_or_else(rng_failed)?;
        let family = Family {
            current: jti.clone(),
            previous: None,
            rotated_at: None,
            session_id: session_id.to_owned(),
            expires_at: crate::deadline::add(now, lifetime),
        };
        let stored = self
            .inner
            .state
            .kv
            .set_if_absent(&key(tenant, &family_id), encode(&family)?, Some(lifetime))
            .await?;
        if !stored {
            // 192 random bits collided: refuse rather than overwrite.
            return Err(RefreshError::Unavailable(StateError::Backend(
                "refresh family id collision".into(),
            )));
        }
        Ok(RefreshGrant {
            family: family_id,
            jti,
            expires_at: family.expires_at,
        })
    }

    /// Rotates `family` if `presented_jti` is its current token.
    ///
    /// Of many concurrent rotations with the same current `jti` exactly one
    /// is [`Rotated`](RotateOutcome::Rotated); the others, and any retry of
    /// it within the reuse grace, are [`Retried`](RotateOutcome::Retried)
    /// with the same new `jti`.
    pub async fn rotate(
        &self,
        tenant: Option<&TenantId>,
        family: &str,
        presented_jti: &str,
    ) -> Result<RotateOutcome, RefreshError> {
        if !crate::ids::is_valid(family) || !crate::ids::is_valid(presented_jti) {
            return Ok(RotateOutcome::Unknown);
        }
        let state = &self.inner.state;
        let key = key(tenant, family);
        for _ in 0..ROTATE_ATTEMPTS {
            let Some(bytes) = state.kv.get(&key).await? else {
                return Ok(RotateOutcome::Unknown);
            };
            let stored = decode(&bytes)?;
            let now = state.clock.now();
            let Some(ttl) = crate::deadline::until(now, stored.expires_at) else {
                return Ok(RotateOutcome::Unknown);
            };
            if same(&stored.current, presented_jti) {
                let jti = crate::ids::random().ok_or_else(rng_failed)?;
                let next = Family {
                    current: jti.clone(),
                    previous: Some(stored.current),
                    rotated_at: Some(now),
                    session_id: stored.session_id,
                    expires_at: stored.expires_at,
                };
                if state
                    .kv
                    .compare_and_swap(&key, Some(&bytes), Some(encode(&next)?), Some(ttl))
                    .await?
                {
                    return Ok(RotateOutcome::Rotated(RefreshGrant {
                        family: family.to_owned(),
                        jti,
                        expires_at: next.expires_at,
                    }));
                }
                // Another rotation (or a revocation) won; decide again.
                continue;
            }
            let within_grace = stored
                .previous
                .as_deref()
                .is_some_and(|p| same(p, presented_jti))
                && stored.rotated_at.is_some_and(|at| {
                    crate::deadline::until(at, now).unwrap_or(Duration::ZERO)
                        < self.inner.config.reuse_grace
                });
            if within_grace {
                // The rotation this request repeats already happened (its
                // answer may have been lost): the same outcome again.
                return Ok(RotateOutcome::Retried(RefreshGrant {
                    family: family.to_owned(),
                    jti: stored.current,
                    expires_at: stored.expires_at,
                }));
            }
            // A dead jti. It can never become current or previous again, so
            // revoking the family whatever its state now is right.
            let session_id = match state.kv.take(&key).await? {
                Some(taken) => decode(&taken)
                    .map(|f| f.session_id)
                    .unwrap_or(stored.session_id),
                None => stored.session_id,
            };
            metrics::counter!("kailash_auth_refresh_reuse_total").increment(1);
            tracing::warn!("refresh token reuse detected; family revoked");
            return Ok(RotateOutcome::Reused { session_id });
        }
        Err(RefreshError::Unavailable(StateError::Backend(
            "refresh rotation contention".into(),
        )))
    }

    /// Revokes `family` (logout); revoking an unknown family is not an error.
    pub async fn revoke_family(
        &self,
        tenant: Option<&TenantId>,
        family: &str,
    ) -> Result<(), RefreshError> {
        if !crate::ids::is_valid(family) {
            return Ok(());
        }
        self.inner.state.kv.delete(&key(tenant, family)).await?;
        Ok(())
    }
}

fn key(tenant: Option<&TenantId>, family: &str) -> StateKey {
    match tenant {
        Some(t) => StateKey::tenant(t, NS_REFRESH, family),
        None => StateKey::global(NS_REFRESH, family),
    }
}

/// Constant-time string equality.
fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn encode(family: &Family) -> Result<Bytes, RefreshError> {
    serde_json::to_vec(family)
        .map(Bytes::from)
        .map_err(|_| RefreshError::Corrupt)
}

fn decode(bytes: &[u8]) -> Result<Family, RefreshError> {
    serde_json::from_slice(bytes).map_err(|_| RefreshError::Corrupt)
}

/// The OS random number generator failed: fail closed.
fn rng_failed() -> RefreshError {
    RefreshError::Unavailable(StateError::Unavailable(
        "system random number generator failed".into(),
    ))
}
