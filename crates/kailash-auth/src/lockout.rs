//! Login throttling and account lockout.
//!
//! [`Lockout::begin`] is called before a password is verified and either
//! refuses the attempt or hands out an [`AttemptPermit`], which is then
//! consumed by [`Lockout::succeeded`] or [`Lockout::failed`]:
//!
//! 1. the client address is throttled (GCRA, [`LockoutConfig::per_ip`]);
//! 2. a locked account is refused with the remaining lock time;
//! 3. one of [`LockoutConfig::max_attempts`] attempt slots of the account is
//!    reserved atomically, so however many attempts run in parallel, at most
//!    `max_attempts` passwords are verified per lockout window.
//!
//! The `max_attempts`-th failure locks the account for
//! [`LockoutConfig::lockout_duration`]; a success clears the failure count;
//! a lock ends by itself.
//!
//! # Storage
//!
//! All keys are global: usernames are unique across tenants. The username
//! part of a key is the base64url SHA-256 of the normalised username, so the
//! backend holds no usernames and keys stay short.
//!
//! * `g:login.ip:<address>` — GCRA state per client address (IPv6 clients by
//!   their /64 network, IPv4-mapped IPv6 addresses as IPv4);
//! * `g:lockout.slots:<user>` — counter of reserved attempts, expiring
//!   `lockout_duration` after the first one;
//! * `g:lockout.fails:<user>` — counter of failed attempts, same window;
//! * `g:lockout.lock:<user>` — the lock, a key/value entry holding its end (µs
//!   since the epoch) and expiring then.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use bytes::Bytes;
use data_encoding::BASE64URL_NOPAD;
use kailash_core::state::{BoundedAdd, Namespace, RateQuota, SharedState, StateError, StateKey};

const NS_IP: Namespace = Namespace::new("login.ip");
const NS_SLOTS: Namespace = Namespace::new("lockout.slots");
const NS_FAILS: Namespace = Namespace::new("lockout.fails");
const NS_LOCK: Namespace = Namespace::new("lockout.lock");

/// Throttling and lockout limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutConfig {
    /// Failed attempts that lock the account, and attempts permitted per
    /// window (default 5; at least 1).
    pub max_attempts: u32,
    /// How long a lock lasts, and the counting window (default 15 minutes;
    /// at least 1 second).
    pub lockout_duration: Duration,
    /// Login attempts per client address; `None` disables the throttle
    /// (default 20 per minute, burst 20).
    pub per_ip: Option<RateQuota>,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            lockout_duration: Duration::from_secs(15 * 60),
            per_ip: RateQuota::per_minute(20).ok(),
        }
    }
}

/// The form usernames are counted under: trimmed and lowercased (Unicode), so
/// `"  Alice "` and `"alice"` share a counter.
///
/// ```
/// use kailash_auth::lockout::normalize_username;
/// assert_eq!(normalize_username("  Alice "), "alice");
/// assert_eq!(normalize_username("ÉLODIE"), "élodie");
/// ```
pub fn normalize_username(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// Why an attempt was refused or could not be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    /// The account is locked (or its attempts for this window are used up).
    /// `retry_after` is rounded up to whole seconds.
    #[error("account locked; retry after {}s", retry_after.as_secs())]
    Locked {
        /// Time until an attempt is possible again.
        retry_after: Duration,
    },
    /// The client address made too many attempts. `retry_after` is rounded
    /// up to whole seconds.
    #[error("too many login attempts; retry after {}s", retry_after.as_secs())]
    Throttled {
        /// Time until the address may try again.
        retry_after: Duration,
    },
    /// The state backend failed; fail closed.
    #[error("lockout store unavailable: {0}")]
    Unavailable(StateError),
}

impl From<StateError> for AttemptError {
    fn from(e: StateError) -> Self {
        Self::Unavailable(e)
    }
}

/// Permission to verify one password.
///
/// Consume it with exactly one of [`Lockout::succeeded`],
/// [`Lockout::failed`] or (when the password could not be checked)
/// [`Lockout::release`]. A permit that is dropped instead keeps its attempt
/// slot reserved until the window ends (it counts against the user, never
/// for them) but is not counted as a failure.
#[must_use = "report the outcome with Lockout::succeeded, Lockout::failed or Lockout::release"]
pub struct AttemptPermit {
    /// The hashed username the slot was reserved under.
    user: String,
}

impl fmt::Debug for AttemptPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptPermit").finish_non_exhaustive()
    }
}

/// Login throttling and lockout; cheap to clone.
///
/// ```
/// use std::sync::Arc;
/// use kailash_auth::lockout::{Lockout, LockoutConfig, normalize_username};
/// use kailash_core::clock::SystemClock;
/// use kailash_core::state::SharedState;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let lockout = Lockout::new(SharedState::memory(Arc::new(SystemClock)), LockoutConfig::default());
/// let user = normalize_username(" Alice ");
/// let permit = lockout.begin(&user, "192.0.2.1".parse().unwrap()).await?;
/// // ... the password was wrong:
/// lockout.failed(permit).await?;
/// assert_eq!(lockout.status(&user).await?, None);
/// # Ok::<(), kailash_auth::lockout::AttemptError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Lockout {
    inner: Arc<Inner>,
}

struct Inner {
    state: SharedState,
    config: LockoutConfig,
}

impl fmt::Debug for Lockout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lockout")
            .field("state", &self.inner.state)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Lockout {
    /// Lockout on `state`. A zero `max_attempts` is raised to 1 and a zero
    /// `lockout_duration` to 1 second.
    pub fn new(state: SharedState, mut config: LockoutConfig) -> Self {
        config.max_attempts = config.max_attempts.max(1);
        config.lockout_duration = config.lockout_duration.max(Duration::from_secs(1));
        Self {
            inner: Arc::new(Inner { state, config }),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &LockoutConfig {
        &self.inner.config
    }

    /// Asks to verify a password for `username` (already
    /// [normalised](normalize_username)) from `client_ip`.
    ///
    /// Checks the address throttle, then the lock, then reserves one attempt
    /// slot atomically.
    pub async fn begin(
        &self,
        username: &str,
        client_ip: IpAddr,
    ) -> Result<AttemptPermit, AttemptError> {
        let state = &self.inner.state;
        let config = &self.inner.config;
        if let Some(quota) = &config.per_ip {
            let decision = state.rate.check(&ip_key(client_ip), quota, 1).await?;
            if !decision.allowed {
                return Err(AttemptError::Throttled {
                    retry_after: ceil_secs(decision.retry_after),
                });
            }
        }
        let user = user_id(username);
        if let Some(remaining) = self.lock_remaining(&user).await? {
            return Err(AttemptError::Locked {
                retry_after: ceil_secs(remaining),
            });
        }
        let reserved = state
            .counters
            .add_within(
                &StateKey::global(NS_SLOTS, &user),
                1,
                i64::from(config.max_attempts),
                Some(config.lockout_duration),
            )
            .await?;
        match reserved {
            BoundedAdd::Applied(_) => Ok(AttemptPermit { user }),
            BoundedAdd::Refused(current) => {
                let remaining = current.expires_in.unwrap_or(config.lockout_duration);
                // A lock may have landed meanwhile and last longer.
                let lock = self.lock_remaining(&user).await?.unwrap_or(Duration::ZERO);
                Err(AttemptError::Locked {
                    retry_after: ceil_secs(remaining.max(lock)),
                })
            }
        }
    }

    /// The password was right: clears the user's failure count.
    pub async fn succeeded(&self, permit: AttemptPermit) -> Result<(), AttemptError> {
        let counters = &self.inner.state.counters;
        counters
            .reset(&StateKey::global(NS_FAILS, &permit.user))
            .await?;
        counters
            .reset(&StateKey::global(NS_SLOTS, &permit.user))
            .await?;
        Ok(())
    }

    /// The password could not be checked at all (every hashing slot was
    /// busy): gives the attempt slot back, so a refusal that was not the
    /// user's doing does not use up their attempts. Nothing is counted.
    pub async fn release(&self, permit: AttemptPermit) -> Result<(), AttemptError> {
        let counters = &self.inner.state.counters;
        let key = StateKey::global(NS_SLOTS, &permit.user);
        let left = counters
            .add(&key, -1, Some(self.inner.config.lockout_duration))
            .await?;
        if left.value < 0 {
            // The window ended meanwhile; do not start the next one in credit.
            counters.reset(&key).await?;
        }
        Ok(())
    }

    /// The password was wrong: the failure stays counted, and the
    /// `max_attempts`-th failure locks the account for `lockout_duration`
    /// from now. `true` when the account is locked after this failure (by
    /// it, or by a concurrent one).
    pub async fn failed(&self, permit: AttemptPermit) -> Result<bool, AttemptError> {
        let state = &self.inner.state;
        let config = &self.inner.config;
        let failures = state
            .counters
            .add(
                &StateKey::global(NS_FAILS, &permit.user),
                1,
                Some(config.lockout_duration),
            )
            .await?;
        if failures.value >= i64::from(config.max_attempts) {
            let until = state.clock.now().as_microsecond().saturating_add(
                i64::try_from(config.lockout_duration.as_micros()).unwrap_or(i64::MAX),
            );
            // An existing lock is not extended by further failures.
            let locked = state
                .kv
                .set_if_absent(
                    &StateKey::global(NS_LOCK, &permit.user),
                    Bytes::from(until.to_string()),
                    Some(config.lockout_duration),
                )
                .await?;
            if locked {
                metrics::counter!("kailash_auth_lockouts_total").increment(1);
                tracing::warn!("account locked after repeated failed logins");
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// How long until `username` (already normalised) may try again:
    /// `Some` while the account is locked or its attempts for the window are
    /// used up, rounded up to whole seconds. Ignores the address throttle.
    pub async fn status(&self, username: &str) -> Result<Option<Duration>, AttemptError> {
        let user = user_id(username);
        let lock = self.lock_remaining(&user).await?;
        let slots = self
            .inner
            .state
            .counters
            .get(&StateKey::global(NS_SLOTS, &user))
            .await?;
        let exhausted = (slots.value >= i64::from(self.inner.config.max_attempts)).then(|| {
            slots
                .expires_in
                .unwrap_or(self.inner.config.lockout_duration)
        });
        Ok(match (lock, exhausted) {
            (None, None) => None,
            (a, b) => Some(ceil_secs(a.unwrap_or_default().max(b.unwrap_or_default()))),
        })
    }

    /// The remaining lock time of the hashed user, if locked.
    async fn lock_remaining(&self, user: &str) -> Result<Option<Duration>, AttemptError> {
        let state = &self.inner.state;
        let Some(value) = state.kv.get(&StateKey::global(NS_LOCK, user)).await? else {
            return Ok(None);
        };
        let until: i64 = std::str::from_utf8(&value)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                AttemptError::Unavailable(StateError::Corrupt("unreadable account lock".into()))
            })?;
        let remaining = until.saturating_sub(state.clock.now().as_microsecond());
        Ok(u64::try_from(remaining)
            .ok()
            .filter(|us| *us > 0)
            .map(Duration::from_micros))
    }
}

/// The key part for a normalised username: base64url SHA-256.
fn user_id(username: &str) -> String {
    BASE64URL_NOPAD.encode(digest::digest(&digest::SHA256, username.as_bytes()).as_ref())
}

/// The throttle key of a client: IPv4 (also when IPv4-mapped) by address,
/// IPv6 by its /64 network.
fn ip_key(ip: IpAddr) -> StateKey {
    StateKey::global_display(NS_IP, kailash_core::context::IpPrefixes::DEFAULT.group(ip))
}

/// Rounds up to whole seconds (a `Retry-After` never invites an early retry).
fn ceil_secs(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs)
}
