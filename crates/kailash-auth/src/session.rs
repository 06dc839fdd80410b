//! Server-side sessions: idle and absolute expiry, a cap on concurrent
//! sessions per user, revocation, and a [`SessionCheck`] for the
//! [`JwtAuthLayer`](crate::layer::JwtAuthLayer).
//!
//! # Storage
//!
//! Everything lives in the [`SharedState`], so sessions work embedded or
//! across instances:
//!
//! * the session itself, as JSON, in the key/value store under
//!   `t:<tenant>:session:<id>` (`g:session:<id>` without a tenant), with a time
//!   to live of the idle timeout (never beyond the absolute expiry), renewed
//!   by [`SessionStore::touch`];
//! * the user's index, a bounded set under `t:<tenant>:session.user:<subject>`
//!   (`g:session.user:<subject>`) whose members are the session ids, each
//!   expiring at its session's absolute expiry, capped at
//!   [`SessionConfig::concurrent_limit`];
//! * the live index, one bounded set under `g:session.live:all` holding
//!   every session of every tenant (member: the record's key), each
//!   expiring when its record does — at the idle deadline, moved on every
//!   renewal, never past the absolute expiry — capped at
//!   [`LIVE_INDEX_CAP`]. It only feeds [`SessionStore::active_count`]: a
//!   count of live sessions across every instance sharing the state, read
//!   without listing anything (one `ZCOUNT` on Redis).
//!
//! The index is the authority on whether a session was revoked or evicted: a
//! session counts as live only while its key/value entry exists *and* its id is
//! in its subject's index. Revocation removes the index member first (one
//! atomic step), so a revoked or evicted session fails at once even if the
//! key/value entry could not be deleted.
//!
//! # Idle timeout and the touch interval
//!
//! [`SessionCheck`] renews the idle timeout at most once per
//! [`SessionConfig::touch_interval`], so a session may idle out up to one
//! touch interval before `idle_timeout` has passed since its last request.
//!
//! # How exact the active count is
//!
//! Idle and expired sessions drop out of [`SessionStore::active_count`] by
//! themselves, at the deadline their record has, without any request.
//! Logins, renewals, logouts, revocations and evictions update it as they
//! happen (a renewal only once per touch interval, never per request). It
//! is a metric, so updating it never fails a login or a request: a failed
//! update is logged (`warn`) and can leave the count off by those sessions
//! until their deadline passes — as can a renewal racing a revocation of
//! the same session. Sessions created before the live index existed are
//! counted from their first renewal. Above [`LIVE_INDEX_CAP`] sessions the
//! count stops at the cap.
//!
//! # The client address at rest
//!
//! With [`SessionStore::with_field_keys`] a new session's client address is
//! stored sealed ([`ClientIp::Sealed`], AES-256-GCM under the shared
//! [`FieldKeys`], bound to the session id); [`SessionStore::client_ip`]
//! opens it. Renewals write the sealed text back unchanged, and the
//! re-encryption target ([`SessionStore::reencryption`]) re-seals the
//! addresses an older data key sealed — and seals those stored in clear
//! before encryption was on.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use jiff::Timestamp;
use kailash_core::field_encryption::{Encrypted, FieldError, FieldKeys};
use kailash_core::state::{Check, Namespace, SharedState, StateError, StateKey, WhenFull};
use kailash_core::{Principal, TenantId};
use serde::{Deserialize, Serialize};

use crate::layer::{SessionCheck, SessionCheckError, SessionTouch};

/// Namespace of the session records.
const NS_SESSION: Namespace = Namespace::new("session");
/// Namespace of the per-user session index.
const NS_SESSION_USER: Namespace = Namespace::new("session.user");
/// Namespace of the live index (every session, for the active count).
const NS_SESSION_LIVE: Namespace = Namespace::new("session.live");

/// The most sessions the live index behind [`SessionStore::active_count`]
/// holds (10 million). Beyond it the soonest-expiring sessions leave the
/// index — they stay valid, they are just no longer counted.
pub const LIVE_INDEX_CAP: usize = 10_000_000;

/// How often a touch is retried when concurrent touches race.
const TOUCH_ATTEMPTS: usize = 4;

/// Session lifetimes and limits.
///
/// Serialises with whole seconds (`idle_timeout_secs`, …); unknown fields are
/// refused.
///
/// ```
/// use kailash_auth::session::SessionConfig;
/// let config: SessionConfig = serde_json::from_str(
///     r#"{ "idle_timeout_secs": 1800, "concurrent_limit": 5 }"#,
/// ).unwrap();
/// assert_eq!(config.idle_timeout.as_secs(), 1800);
/// assert_eq!(config.absolute_lifetime.as_secs(), 30 * 24 * 3600);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// A session unused for this long ends (default 60 minutes).
    #[serde(rename = "idle_timeout_secs", with = "secs")]
    pub idle_timeout: Duration,
    /// A session ends this long after it was created, however active
    /// (default 30 days).
    #[serde(rename = "absolute_lifetime_secs", with = "secs")]
    pub absolute_lifetime: Duration,
    /// Live sessions one user may hold at once (default 3; at least 1).
    pub concurrent_limit: usize,
    /// What a new session does when the user is at the limit: evict the
    /// session expiring soonest (default) or be refused.
    pub when_full: WhenFull,
    /// `last_seen` (and the idle expiry) is written at most this often per
    /// session by the [`SessionCheck`] (default 60 seconds; at most half the
    /// idle timeout).
    #[serde(rename = "touch_interval_secs", with = "secs")]
    pub touch_interval: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(60 * 60),
            absolute_lifetime: Duration::from_secs(30 * 24 * 60 * 60),
            concurrent_limit: 3,
            when_full: WhenFull::EvictOldest,
            touch_interval: Duration::from_secs(60),
        }
    }
}

impl SessionConfig {
    /// The configuration with nonsense values raised to the smallest usable
    /// ones (a limit of 1, lifetimes of 1 second).
    fn sanitized(mut self) -> Self {
        let one = Duration::from_secs(1);
        self.idle_timeout = self.idle_timeout.max(one);
        self.absolute_lifetime = self.absolute_lifetime.max(one);
        self.concurrent_limit = self.concurrent_limit.max(1);
        // Renewing less often than the idle timeout would end active sessions.
        self.touch_interval = self.touch_interval.min(self.idle_timeout / 2);
        self
    }
}

/// Durations as whole seconds.
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// One server-side session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The session id (random, URL-safe). Do not log it in full.
    pub id: String,
    /// The user the session belongs to.
    pub subject: String,
    /// The tenant the session belongs to, if any.
    pub tenant: Option<TenantId>,
    /// When the session was created.
    pub created_at: Timestamp,
    /// When the session was last used (written at most once per touch interval).
    pub last_seen: Timestamp,
    /// The absolute expiry, whatever the activity.
    pub expires_at: Timestamp,
    /// The client address the session was created from, as stored (see
    /// [`SessionStore::client_ip`] to read it).
    pub client_ip: Option<ClientIp>,
    /// Whether a second factor was presented when the session was created
    /// (a refresh refuses a session without one once the user's roles
    /// require it). Records written before this field existed read `false`.
    #[serde(default)]
    pub mfa: bool,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &Redacted(&self.id))
            .field("subject", &self.subject)
            .field("tenant", &self.tenant)
            .field("created_at", &self.created_at)
            .field("last_seen", &self.last_seen)
            .field("expires_at", &self.expires_at)
            .field("client_ip", &self.client_ip)
            .field("mfa", &self.mfa)
            .finish()
    }
}

/// A session's client address as stored: in clear, or sealed with the
/// store's [`FieldKeys`]. Stored as text either way (an address, or
/// `kf1.…`), so records written before encryption was on still read.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientIp {
    /// In clear (encryption off, or written before it was on).
    Clear(IpAddr),
    /// Sealed, bound to the session id.
    Sealed(Encrypted<IpAddr>),
}

impl fmt::Debug for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientIp::Clear(ip) => write!(f, "Clear({ip})"),
            ClientIp::Sealed(e) => write!(f, "Sealed({:?})", e.key_id()),
        }
    }
}

impl Serialize for ClientIp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ClientIp::Clear(ip) => ip.serialize(s),
            ClientIp::Sealed(e) => e.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ClientIp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Reads the text in place: a clear address (every session check
        /// reads one) allocates nothing.
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = ClientIp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an IP address or a sealed value")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ClientIp, E> {
                if kailash_core::field_encryption::is_sealed(text) {
                    return Encrypted::from_sealed(text.to_owned())
                        .map(ClientIp::Sealed)
                        .map_err(E::custom);
                }
                text.parse()
                    .map(ClientIp::Clear)
                    .map_err(|_| E::custom("neither an address nor a sealed value"))
            }
        }
        d.deserialize_str(Text)
    }
}

/// The context a session's address is sealed in: its own record.
fn ip_context(session_id: &str) -> Vec<u8> {
    let mut out = b"kailash-session-ip\0".to_vec();
    out.extend_from_slice(session_id.as_bytes());
    out
}

/// Shows the first characters of an id only.
struct Redacted<'a>(&'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix: String = self.0.chars().take(6).collect();
        write!(f, "\"{prefix}…\"")
    }
}

impl Session {
    /// Whether the session is live at `now` given the idle timeout.
    fn live_at(&self, now: Timestamp, idle_timeout: Duration) -> bool {
        now < self.expires_at && now < crate::deadline::add(self.last_seen, idle_timeout)
    }

    /// The key/value time to live at `now`: the idle timeout, never past the
    /// absolute expiry. `None` when the session is already over.
    fn ttl_at(&self, now: Timestamp, idle_timeout: Duration) -> Option<Duration> {
        let to_expiry = crate::deadline::until(now, self.expires_at)?;
        Some(idle_timeout.min(to_expiry))
    }
}

/// A new session and the sessions evicted to make room for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSession {
    /// The new session.
    pub session: Session,
    /// Ids of the user's sessions that were evicted (already unusable).
    pub evicted: Vec<String>,
}

/// Why a session operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The user holds the maximum number of sessions and the configuration
    /// says [`WhenFull::Reject`]. Nothing was stored.
    #[error("concurrent session limit reached")]
    LimitReached,
    /// The state backend failed (or the system random number generator did).
    /// Fail closed.
    #[error("session store unavailable: {0}")]
    Unavailable(StateError),
    /// A stored session could not be read.
    #[error("stored session is corrupt")]
    Corrupt,
    /// A sealed field of the session does not open (altered, or its data
    /// key is unknown), or could not be sealed.
    #[error("session field: {0}")]
    Field(FieldError),
}

impl From<StateError> for SessionError {
    fn from(e: StateError) -> Self {
        Self::Unavailable(e)
    }
}

/// Creates, checks, renews and revokes sessions; cheap to clone.
///
/// ```
/// use std::sync::Arc;
/// use kailash_auth::session::{SessionConfig, SessionStore};
/// use kailash_core::clock::SystemClock;
/// use kailash_core::state::SharedState;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = SessionStore::new(SharedState::memory(Arc::new(SystemClock)), SessionConfig::default());
/// let created = store.create("alice", None, None).await?;
/// let id = created.session.id.clone();
/// assert!(store.get(None, &id).await?.is_some());
/// assert!(store.revoke(None, "alice", &id).await?);
/// assert!(store.get(None, &id).await?.is_none());
/// # Ok::<(), kailash_auth::session::SessionError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SessionStore {
    inner: Arc<Inner>,
}

struct Inner {
    state: SharedState,
    config: SessionConfig,
    listener: OnceLock<Arc<dyn SessionListener>>,
    field_keys: OnceLock<Arc<FieldKeys>>,
}

/// Told when sessions end before their time — a logout, a revocation by
/// their owner, every session of a user at once (password change, account
/// disabled), or an eviction by a newer login — so that what depends on
/// them ends at once too (open realtime sockets: the gateway's hub closes
/// them on every instance).
///
/// Called after the sessions are dead in the state (a failed call changes
/// nothing about that); a listener must not block. It is a courtesy on top
/// of the per-request liveness check, never a replacement for it.
#[async_trait]
pub trait SessionListener: Send + Sync + 'static {
    /// `sessions` of `subject` in `tenant` have ended.
    async fn ended(&self, tenant: Option<&TenantId>, subject: &str, sessions: &[String]);
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("state", &self.inner.state)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl SessionStore {
    /// A store on `state`. A zero `concurrent_limit` is raised to 1, zero
    /// lifetimes to 1 second, and a `touch_interval` above half the idle
    /// timeout is lowered to that.
    pub fn new(state: SharedState, config: SessionConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                state,
                config: config.sanitized(),
                listener: OnceLock::new(),
                field_keys: OnceLock::new(),
            }),
        }
    }

    /// Stores new sessions' client addresses sealed with `keys` (see the
    /// module docs), for this store and all its clones. One set of keys per
    /// store: `false` (and nothing changes) when keys are set already.
    pub fn set_field_keys(&self, keys: Arc<FieldKeys>) -> bool {
        self.inner.field_keys.set(keys).is_ok()
    }

    /// [`set_field_keys`](Self::set_field_keys), as a builder step.
    #[must_use]
    pub fn with_field_keys(self, keys: Arc<FieldKeys>) -> Self {
        self.set_field_keys(keys);
        self
    }

    /// `session`'s client address, opened when it is sealed.
    ///
    /// A sealed address that does not open is
    /// [`SessionError::Field`]; one found while this store has no keys
    /// (encryption switched off with sealed records still live) reads as
    /// `None`, with a warning.
    pub async fn client_ip(&self, session: &Session) -> Result<Option<IpAddr>, SessionError> {
        match &session.client_ip {
            None => Ok(None),
            Some(ClientIp::Clear(ip)) => Ok(Some(*ip)),
            Some(ClientIp::Sealed(sealed)) => match self.inner.field_keys.get() {
                Some(keys) => sealed
                    .open(keys, &ip_context(&session.id))
                    .await
                    .map(Some)
                    .map_err(SessionError::Field),
                None => {
                    tracing::warn!(
                        "a session's address is sealed but no field keys are configured"
                    );
                    Ok(None)
                }
            },
        }
    }

    /// The re-encryption target over every stored session, for
    /// [`FieldKeys::maintain`]: re-seals addresses an older key sealed and
    /// seals those stored in clear. `None` without field keys.
    pub fn reencryption(&self) -> Option<Arc<dyn kailash_core::field_encryption::Reencrypt>> {
        self.inner.field_keys.get()?;
        Some(Arc::new(SessionReencryption(self.clone())))
    }

    /// The configuration in use.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// Tells `listener` about every session that ends early, from now on,
    /// for this store and all its clones. One listener per store: `false`
    /// (and nothing changes) when one is set already.
    pub fn set_listener(&self, listener: Arc<dyn SessionListener>) -> bool {
        self.inner.listener.set(listener).is_ok()
    }

    async fn tell_ended(&self, tenant: Option<&TenantId>, subject: &str, sessions: &[String]) {
        if let (Some(listener), false) = (self.inner.listener.get(), sessions.is_empty()) {
            listener.ended(tenant, subject, sessions).await;
        }
    }

    fn now(&self) -> Timestamp {
        self.inner.state.clock.now()
    }

    /// Starts a session for `subject`.
    ///
    /// When the user is at [`SessionConfig::concurrent_limit`], either the
    /// session expiring soonest is evicted (its id is returned in
    /// [`CreatedSession::evicted`] and it fails every check from now on), or,
    /// with [`WhenFull::Reject`], this fails with
    /// [`SessionError::LimitReached`] and stores nothing.
    pub async fn create(
        &self,
        subject: &str,
        tenant: Option<&TenantId>,
        client_ip: Option<IpAddr>,
    ) -> Result<CreatedSession, SessionError> {
        self.create_with_mfa(subject, tenant, client_ip, false)
            .await
    }

    /// Like [`create`](Self::create), recording whether the login presented
    /// a second factor ([`Session::mfa`]).
    pub async fn create_with_mfa(
        &self,
        subject: &str,
        tenant: Option<&TenantId>,
        client_ip: Option<IpAddr>,
        mfa: bool,
    ) -> Result<CreatedSession, SessionError> {
        let config = &self.inner.config;
        let state = &self.inner.state;
        let now = self.now();
        let id = crate::ids::random().ok_or_else(rng_failed)?;
        let expires_at = crate::deadline::add(now, config.absolute_lifetime);
        let client_ip = match (self.inner.field_keys.get(), client_ip) {
            (Some(keys), Some(ip)) => Some(ClientIp::Sealed(
                Encrypted::seal(keys, &ip, &ip_context(&id))
                    .await
                    .map_err(SessionError::Field)?,
            )),
            (None, Some(ip)) => Some(ClientIp::Clear(ip)),
            (_, None) => None,
        };
        let session = Session {
            id: id.clone(),
            subject: subject.to_owned(),
            tenant: tenant.cloned(),
            created_at: now,
            last_seen: now,
            expires_at,
            client_ip,
            mfa,
        };
        let bytes = encode(&session)?;
        let ttl = config.idle_timeout.min(config.absolute_lifetime);
        let key = session_key(tenant, &id);

        // The record first: an index member without a record would be pruned
        // by a concurrent `list`. A record without an index member is never
        // live, so a failure below leaves nothing usable behind.
        if !state.kv.set_if_absent(&key, bytes, Some(ttl)).await? {
            // 192 random bits collided: refuse rather than overwrite.
            return Err(SessionError::Unavailable(StateError::Backend(
                "session id collision".into(),
            )));
        }
        let index = index_key(tenant, subject);
        let inserted = match state
            .sets
            .insert(
                &index,
                &id,
                expires_at,
                config.concurrent_limit,
                config.when_full,
            )
            .await
        {
            Ok(inserted) => inserted,
            Err(e) => {
                let _ = state.kv.delete(&key).await;
                return Err(e.into());
            }
        };
        if !inserted.inserted {
            state.kv.delete(&key).await?;
            return Err(SessionError::LimitReached);
        }
        // Evicted sessions are already dead (not in the index); deleting their
        // records frees the memory. A failure here is not the caller's problem.
        for evicted in &inserted.evicted {
            if let Err(e) = state.kv.delete(&session_key(tenant, evicted)).await {
                tracing::warn!(error = %e, "could not delete an evicted session record");
            }
        }
        self.count_in(tenant, &id, crate::deadline::add(now, ttl))
            .await;
        self.count_out(tenant, &inserted.evicted).await;
        self.tell_ended(tenant, subject, &inserted.evicted).await;
        Ok(CreatedSession {
            session,
            evicted: inserted.evicted,
        })
    }

    /// Reads the record without the index check; `None` when absent, for
    /// another tenant, idle or past its absolute expiry.
    async fn record(
        &self,
        tenant: Option<&TenantId>,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<(Session, Bytes)>, SessionError> {
        if !crate::ids::is_valid(id) {
            return Ok(None);
        }
        let Some(bytes) = self.inner.state.kv.get(&session_key(tenant, id)).await? else {
            return Ok(None);
        };
        let session: Session = decode(&bytes)?;
        if session.id != id || session.tenant.as_ref() != tenant {
            return Err(SessionError::Corrupt);
        }
        if !session.live_at(now, self.inner.config.idle_timeout) {
            return Ok(None);
        }
        Ok(Some((session, bytes)))
    }

    /// Reads a live session with its stored bytes.
    async fn live(
        &self,
        tenant: Option<&TenantId>,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<(Session, Bytes)>, SessionError> {
        let Some((session, bytes)) = self.record(tenant, id, now).await? else {
            return Ok(None);
        };
        let index = index_key(tenant, &session.subject);
        if !self.inner.state.sets.contains(&index, id).await? {
            return Ok(None);
        }
        Ok(Some((session, bytes)))
    }

    /// The session `id` of `tenant`; `None` when it does not exist, was
    /// revoked or evicted, idled out or passed its absolute expiry.
    pub async fn get(
        &self,
        tenant: Option<&TenantId>,
        id: &str,
    ) -> Result<Option<Session>, SessionError> {
        let now = self.now();
        Ok(self.live(tenant, id, now).await?.map(|(s, _)| s))
    }

    /// Marks the session as used now, restarting its idle timeout (never
    /// beyond its absolute expiry). `false` when the session is gone.
    pub async fn touch(&self, tenant: Option<&TenantId>, id: &str) -> Result<bool, SessionError> {
        let now = self.now();
        let Some((session, bytes)) = self.live(tenant, id, now).await? else {
            return Ok(false);
        };
        self.write_touch(tenant, session, bytes, now, Duration::ZERO)
            .await
    }

    /// Writes `last_seen = now` with compare-and-swap on the bytes read, so a
    /// concurrent revocation (which deletes the record) is never undone.
    /// When another writer got there first and left `last_seen` less than
    /// `min_gap` before `now`, that write counts.
    async fn write_touch(
        &self,
        tenant: Option<&TenantId>,
        mut session: Session,
        mut bytes: Bytes,
        now: Timestamp,
        min_gap: Duration,
    ) -> Result<bool, SessionError> {
        let idle = self.inner.config.idle_timeout;
        let key = session_key(tenant, &session.id);
        for _ in 0..TOUCH_ATTEMPTS {
            let Some(ttl) = session.ttl_at(now, idle) else {
                return Ok(false);
            };
            let mut touched = session.clone();
            touched.last_seen = touched.last_seen.max(now);
            let new = encode(&touched)?;
            if self
                .inner
                .state
                .kv
                .compare_and_swap(&key, Some(&bytes), Some(new), Some(ttl))
                .await?
            {
                self.count_in(tenant, &session.id, crate::deadline::add(now, ttl))
                    .await;
                return Ok(true);
            }
            // Someone else wrote the record (another touch) or deleted it.
            match self.record(tenant, &session.id, now).await? {
                Some((current, current_bytes)) => {
                    let fresh = crate::deadline::until(current.last_seen, now)
                        .is_none_or(|since| since < min_gap);
                    if fresh {
                        return Ok(true);
                    }
                    session = current;
                    bytes = current_bytes;
                }
                None => return Ok(false),
            }
        }
        // Constant contention: other touches keep the session alive.
        Ok(true)
    }

    /// The live sessions of `subject`, soonest-expiring first.
    ///
    /// Index members whose record is gone (idled out) are removed from the
    /// index on the way.
    pub async fn list(
        &self,
        tenant: Option<&TenantId>,
        subject: &str,
    ) -> Result<Vec<Session>, SessionError> {
        let state = &self.inner.state;
        let now = self.now();
        let index = index_key(tenant, subject);
        let members = state.sets.members(&index).await?;
        let mut sessions = Vec::with_capacity(members.len());
        for member in members {
            match self.record(tenant, &member.member, now).await? {
                Some((session, _)) if session.subject == subject => sessions.push(session),
                _ => {
                    state.sets.remove(&index, &member.member).await?;
                    self.count_out(tenant, std::slice::from_ref(&member.member))
                        .await;
                }
            }
        }
        Ok(sessions)
    }

    /// Revokes the session `id` if it belongs to `subject`; `false` when it
    /// does not (or no longer) exist or belongs to someone else.
    pub async fn revoke(
        &self,
        tenant: Option<&TenantId>,
        subject: &str,
        id: &str,
    ) -> Result<bool, SessionError> {
        if !crate::ids::is_valid(id) {
            return Ok(false);
        }
        let state = &self.inner.state;
        // Removing the index member is what ends the session, atomically.
        let removed = state.sets.remove(&index_key(tenant, subject), id).await?;
        if removed {
            let ended = [id.to_owned()];
            self.count_out(tenant, &ended).await;
            self.tell_ended(tenant, subject, &ended).await;
            state.kv.delete(&session_key(tenant, id)).await?;
        }
        Ok(removed)
    }

    /// Revokes every session of `subject` (password change, account
    /// disabled); returns the revoked ids.
    pub async fn revoke_all(
        &self,
        tenant: Option<&TenantId>,
        subject: &str,
    ) -> Result<Vec<String>, SessionError> {
        let state = &self.inner.state;
        let ids = state.sets.clear(&index_key(tenant, subject)).await?;
        self.count_out(tenant, &ids).await;
        self.tell_ended(tenant, subject, &ids).await;
        let mut first_error = None;
        for id in &ids {
            if let Err(e) = state.kv.delete(&session_key(tenant, id)).await {
                first_error.get_or_insert(e);
            }
        }
        // The sessions are dead either way; report a failed clean-up so the
        // caller knows the backend is struggling.
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(ids),
        }
    }
}

impl SessionStore {
    /// How many sessions are live now, over every tenant and every instance
    /// sharing this store's state: one cheap read of the live index (see
    /// the [module documentation](crate::session) for how exact it is).
    pub async fn active_count(&self) -> Result<usize, SessionError> {
        Ok(self.inner.state.sets.len(&live_key()).await?)
    }

    /// Counts session `id` as live until `until` (or moves its deadline
    /// there). A failure is logged, never returned: the count is a metric.
    async fn count_in(&self, tenant: Option<&TenantId>, id: &str, until: Timestamp) {
        let member = session_key(tenant, id);
        if let Err(e) = self
            .inner
            .state
            .sets
            .insert(
                &live_key(),
                member.as_str(),
                until,
                LIVE_INDEX_CAP,
                WhenFull::EvictOldest,
            )
            .await
        {
            tracing::warn!(error = %e, "could not count a session as active");
        }
    }

    /// Stops counting the sessions `ids`; failures are logged.
    async fn count_out(&self, tenant: Option<&TenantId>, ids: &[String]) {
        for id in ids {
            let member = session_key(tenant, id);
            if let Err(e) = self
                .inner
                .state
                .sets
                .remove(&live_key(), member.as_str())
                .await
            {
                tracing::warn!(error = %e, "could not stop counting an ended session");
            }
        }
    }
}

impl SessionStore {
    /// The checks of a live record's content for `principal` at `now`:
    /// the decoded session and whether its renewal is due.
    fn verify_record(
        &self,
        principal: &Principal,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<(Session, bool), SessionCheckError> {
        let session: Session = decode(bytes).map_err(unavailable)?;
        let id = principal.session_id().unwrap_or_default();
        if session.id != id
            || session.tenant.as_ref() != principal.token_tenant()
            || session.subject != principal.subject()
        {
            return Err(SessionCheckError::Revoked);
        }
        if !session.live_at(now, self.inner.config.idle_timeout) {
            return Err(SessionCheckError::Expired);
        }
        let due = crate::deadline::until(session.last_seen, now)
            .is_some_and(|since| since >= self.inner.config.touch_interval);
        Ok((session, due))
    }

    /// Renews the idle timeout of a live session whose renewal is due. Not
    /// renewing must not refuse a live session (the next request tries
    /// again); finding it gone does.
    async fn renew(
        &self,
        tenant: Option<&TenantId>,
        session: Session,
        bytes: Bytes,
        now: Timestamp,
    ) -> Result<(), SessionCheckError> {
        let interval = self.inner.config.touch_interval;
        match self
            .write_touch(tenant, session, bytes, now, interval)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(SessionCheckError::Revoked),
            Err(e) => {
                tracing::warn!(error = %e, "could not renew a session");
                Ok(())
            }
        }
    }
}

fn unavailable(e: SessionError) -> SessionCheckError {
    tracing::warn!(error = %e, "session check failed");
    SessionCheckError::Unavailable
}

#[async_trait]
impl SessionCheck for SessionStore {
    async fn check(&self, principal: &Principal) -> Result<(), SessionCheckError> {
        self.check_with(principal, true).await
    }

    /// Like [`check`](SessionCheck::check), never renewing: an open
    /// socket is not activity.
    async fn check_live(&self, principal: &Principal) -> Result<(), SessionCheckError> {
        self.check_with(principal, false).await
    }

    /// The session is live while its record is live and its id is in its
    /// user's index — exactly what [`check`](SessionCheck::check) reads,
    /// asked in the same round trip as the request's other checks.
    fn admission_check(&self, principal: &Principal) -> Option<Result<Check, SessionCheckError>> {
        let Some(id) = principal.session_id() else {
            return Some(Err(SessionCheckError::Revoked));
        };
        if !crate::ids::is_valid(id) {
            return Some(Err(SessionCheckError::Revoked));
        }
        let tenant = principal.token_tenant();
        Some(Ok(Check::Live {
            record: session_key(tenant, id),
            index: index_key(tenant, principal.subject()),
            member: id.into(),
        }))
    }

    /// The record's content as [`check`](SessionCheck::check) verifies it.
    /// A record the admission found live is live here too: its deadline
    /// (whole milliseconds, rounded down) never passes the idle or
    /// absolute expiry it was written for, and both read the same clock.
    fn after_admission(
        &self,
        principal: &Principal,
        record: &Bytes,
    ) -> Result<Option<SessionTouch>, SessionCheckError> {
        let now = self.now();
        let (session, due) = self.verify_record(principal, record, now)?;
        if !due {
            return Ok(None);
        }
        let store = self.clone();
        let tenant = principal.token_tenant().cloned();
        let bytes = record.clone();
        Ok(Some(Box::pin(async move {
            store.renew(tenant.as_ref(), session, bytes, now).await
        })))
    }
}

impl SessionStore {
    /// The liveness check of [`SessionCheck`], renewing a due session when
    /// `renew`.
    async fn check_with(
        &self,
        principal: &Principal,
        renew: bool,
    ) -> Result<(), SessionCheckError> {
        let Some(id) = principal.session_id() else {
            return Err(SessionCheckError::Revoked);
        };
        let tenant = principal.token_tenant();
        let now = self.now();
        if !crate::ids::is_valid(id) {
            return Err(SessionCheckError::Revoked);
        }
        let bytes = self
            .inner
            .state
            .kv
            .get(&session_key(tenant, id))
            .await
            .map_err(|e| unavailable(e.into()))?;
        let Some(bytes) = bytes else {
            return Err(SessionCheckError::Revoked);
        };
        let (session, due) = self.verify_record(principal, &bytes, now)?;
        let in_index = self
            .inner
            .state
            .sets
            .contains(&index_key(tenant, &session.subject), id)
            .await
            .map_err(|e| unavailable(e.into()))?;
        if !in_index {
            return Err(SessionCheckError::Revoked);
        }
        if due && renew {
            self.renew(tenant, session, bytes, now).await?;
        }
        Ok(())
    }
}

fn session_key(tenant: Option<&TenantId>, id: &str) -> StateKey {
    match tenant {
        Some(t) => StateKey::tenant(t, NS_SESSION, id),
        None => StateKey::global(NS_SESSION, id),
    }
}

/// The live index: one set for every tenant, so one read counts them all.
fn live_key() -> StateKey {
    StateKey::global(NS_SESSION_LIVE, "all")
}

fn index_key(tenant: Option<&TenantId>, subject: &str) -> StateKey {
    match tenant {
        Some(t) => StateKey::tenant(t, NS_SESSION_USER, subject),
        None => StateKey::global(NS_SESSION_USER, subject),
    }
}

/// [`SessionStore::reencryption`]'s target.
struct SessionReencryption(SessionStore);

#[async_trait]
impl kailash_core::field_encryption::Reencrypt for SessionReencryption {
    fn name(&self) -> &'static str {
        "sessions"
    }

    async fn reencrypt(
        &self,
        keys: &FieldKeys,
    ) -> Result<kailash_core::field_encryption::ReencryptStats, FieldError> {
        kailash_core::field_encryption::reencrypt_namespace(
            &self.0.inner.state,
            NS_SESSION,
            "a session's address",
            |key| self.reseal_one(keys, key),
        )
        .await
    }
}

impl SessionReencryption {
    /// Re-seals one record's address when needed; whether it wrote. A
    /// record changed meanwhile (a renewal) is read again and re-sealed
    /// again; one still not current after a few tries is an error, so the
    /// pass is incomplete and no key is retired under it. A record gone
    /// or past its deadline needs nothing.
    async fn reseal_one(&self, keys: &FieldKeys, key: StateKey) -> Result<bool, FieldError> {
        let (kv, key) = (&self.0.inner.state.kv, &key);
        for _ in 0..kailash_core::field_encryption::RESEAL_ATTEMPTS {
            let Some(bytes) = kv.get(key).await? else {
                return Ok(false);
            };
            let mut session = decode(&bytes).map_err(|_| FieldError::Malformed)?;
            let context = ip_context(&session.id);
            let resealed = match &session.client_ip {
                None => return Ok(false),
                Some(ClientIp::Clear(ip)) => Encrypted::seal(keys, ip, &context).await?,
                Some(ClientIp::Sealed(sealed)) => match sealed.reseal(keys, &context).await? {
                    Some(new) => new,
                    None => return Ok(false),
                },
            };
            session.client_ip = Some(ClientIp::Sealed(resealed));
            // Keep the record's own deadline: idle from its last use, never
            // past its absolute expiry.
            let now = self.0.now();
            let idle_end =
                crate::deadline::add(session.last_seen, self.0.inner.config.idle_timeout);
            let Some(ttl) = crate::deadline::until(now, idle_end.min(session.expires_at)) else {
                return Ok(false);
            };
            let new = encode(&session).map_err(|_| FieldError::Malformed)?;
            if kv
                .compare_and_swap(key, Some(&bytes), Some(new), Some(ttl))
                .await?
            {
                return Ok(true);
            }
        }
        Err(FieldError::KeySet(
            "a session kept changing under its re-encryption".into(),
        ))
    }
}

fn encode(session: &Session) -> Result<Bytes, SessionError> {
    serde_json::to_vec(session)
        .map(Bytes::from)
        .map_err(|_| SessionError::Corrupt)
}

fn decode(bytes: &[u8]) -> Result<Session, SessionError> {
    serde_json::from_slice(bytes).map_err(|_| SessionError::Corrupt)
}

/// The OS random number generator failed: fail closed.
fn rng_failed() -> SessionError {
    SessionError::Unavailable(StateError::Unavailable(
        "system random number generator failed".into(),
    ))
}
