//! Field-level encryption: single values (a session's client address, a
//! TOTP secret, a user's attribute, your own struct's field) sealed with
//! AES-256-GCM under a rotating set of *data keys* shared by every
//! instance, each data key stored only wrapped by a key-encryption key
//! from a [`KeyProvider`] ([`envelope`](crate::envelope)).
//!
//! * **Sealed values** are text, `kf1.<key id>.<base64url>`, so they sit in
//!   JSON records unchanged; each names the data key that sealed it and is
//!   bound to a caller-chosen *context* (a record id, a field name): a
//!   value moved to another record or field does not open.
//! * **The key set** lives in the [shared state](crate::state) (one
//!   record, changed only by compare-and-set), so every instance seals
//!   and opens with the same keys; it holds the data keys wrapped by the
//!   provider's KEK, never in clear.
//! * **Rotation** (`key_rotation_days`): once the active data key is older
//!   than the rotation period, [`FieldKeys::rotate_if_due`] adds a new
//!   active key. Values sealed under older keys keep opening.
//! * **Re-encryption**: [`FieldKeys::maintain`] (run by
//!   [`FieldKeys::spawn_maintenance`]) walks every [`Reencrypt`] target
//!   (records holding sealed values) and re-seals what an older key
//!   sealed; after a complete pass that began a grace period after a key
//!   was superseded, the key is retired from the set. Rotating the KEK in
//!   the provider (a new active key id) re-wraps the data keys; values are
//!   not touched.
//! * **Errors** are typed ([`FieldError`]): a wrong key, an altered value
//!   or an unknown key id never yields garbage.
//!
//! [`Encrypted<T>`] offers the same to your own types: a serde-friendly
//! field that holds the sealed text of a `T`.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use kailash_core::clock::ManualClock;
//! use kailash_core::envelope::Keyring;
//! use kailash_core::field_encryption::{Encrypted, FieldError, FieldKeys, FieldKeysOptions};
//! use kailash_core::state::SharedState;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), FieldError> {
//! let clock = Arc::new(ManualClock::starting_now());
//! let state = SharedState::memory(clock.clone());
//! let kek = Keyring::parse(&format!("kek-1 {}", Keyring::generate_key()?))?;
//! let options = FieldKeysOptions::default().rotation(Some(Duration::from_secs(90 * 86_400)));
//! let keys = FieldKeys::load(state, Arc::new(kek), options).await?;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Customer {
//!     id: u64,
//!     email: Encrypted<String>,
//! }
//! let alice = Customer {
//!     id: 7,
//!     email: Encrypted::seal(&keys, &"alice@example.com".to_owned(), b"customer:7:email").await?,
//! };
//! let stored = serde_json::to_string(&alice).unwrap();
//! assert!(!stored.contains("alice@"));
//!
//! let back: Customer = serde_json::from_str(&stored).unwrap();
//! assert_eq!(back.email.open(&keys, b"customer:7:email").await?, "alice@example.com");
//! // Bound to its context: the same value does not open as another field.
//! assert!(back.email.open(&keys, b"customer:8:email").await.is_err());
//!
//! // 90 days later the active key rotates; the old value still opens.
//! clock.advance(Duration::from_secs(91 * 86_400));
//! assert!(keys.rotate_if_due().await?);
//! assert!(!keys.is_current(back.email.as_str()));
//! assert_eq!(back.email.open(&keys, b"customer:7:email").await?, "alice@example.com");
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::envelope::{DataKey, EnvelopeError, KeyProvider, WrappedKey};
use crate::state::{Namespace, SharedState, StateError, StateKey};

/// The prefix of every sealed value (format version 1).
pub const SEALED_PREFIX: &str = "kf1.";
/// The longest sealed value accepted (64 KiB of text); longer input is
/// refused before any decoding.
pub const MAX_SEALED_CHARS: usize = 64 * 1024;
/// The most data keys a key set holds; rotation refuses to grow past it
/// (retirement after re-encryption keeps the set small).
pub const MAX_DATA_KEYS: usize = 64;
/// Characters of a data key id (hex).
const KEY_ID_CHARS: usize = 16;
/// The namespace of the key-set records.
const NS: Namespace = Namespace::new("fle.keyset");
/// How often an instance may reload the key set because a value named a
/// key it does not hold (another instance rotated).
const RELOAD_EVERY: Duration = Duration::from_secs(1);
/// The shortest grace before a superseded key may be retired: longer than
/// a pending TOTP enrolment lives (10 minutes), and long enough that every
/// instance has refreshed its set (each does every quarter of the grace).
pub const MIN_RETIRE_AFTER: Duration = Duration::from_secs(900);
/// Compare-and-set attempts of one key-set change.
const UPDATE_ATTEMPTS: usize = 16;
/// The largest key-set record read.
const MAX_KEYSET_BYTES: usize = 256 * 1024;

/// Why a value could not be sealed or opened, or the key set not used.
/// Never carries key material or plaintext.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldError {
    /// The text is not a sealed value (wrong prefix, size, key id or
    /// encoding).
    #[error("not a sealed value")]
    Malformed,
    /// The value names a data key the key set does not hold (retired, or
    /// from another deployment).
    #[error("unknown data key {0:?}")]
    UnknownKey(String),
    /// The value does not open: altered, moved to another context, or
    /// sealed under another key.
    #[error("the sealed value does not open: altered, moved or under another key")]
    Tampered,
    /// The opened value is not a valid `T` (for [`Encrypted`]).
    #[error("the opened value is not of the expected type")]
    Type,
    /// The key set cannot be read or written, or is corrupt.
    #[error("field keys: {0}")]
    KeySet(String),
    /// The key-encryption key provider failed (wrong KEK, unknown KEK id,
    /// unreachable KMS).
    #[error("field keys: {0}")]
    Envelope(#[from] EnvelopeError),
}

impl From<StateError> for FieldError {
    fn from(e: StateError) -> Self {
        Self::KeySet(format!("state: {e}"))
    }
}

/// How a [`FieldKeys`] rotates and retires keys.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FieldKeysOptions {
    /// The key set's name (one record per name in the shared state).
    pub name: String,
    /// How long a data key is the active one (`key_rotation_days`); `None`
    /// never rotates by age.
    pub rotation: Option<Duration>,
    /// How long after a key is superseded a re-encryption pass must begin
    /// before the key may be retired (at least [`MIN_RETIRE_AFTER`]). An
    /// instance re-reads the set before sealing once its copy is older
    /// than a quarter of this, so no instance seals under a key that
    /// could be retired.
    pub retire_after: Duration,
}

impl Default for FieldKeysOptions {
    fn default() -> Self {
        Self {
            name: "default".into(),
            rotation: Some(Duration::from_secs(90 * 86_400)),
            retire_after: Duration::from_secs(7_200),
        }
    }
}

impl FieldKeysOptions {
    /// Sets the rotation period (`None`: never by age).
    pub fn rotation(mut self, rotation: Option<Duration>) -> Self {
        self.rotation = rotation;
        self
    }

    /// Sets the grace before a superseded key may be retired.
    pub fn retire_after(mut self, grace: Duration) -> Self {
        self.retire_after = grace;
        self
    }

    /// Sets the key set's name (`[a-z0-9_.-]`, 1 to 64 characters).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

/// One data key as the key-set record stores it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct StoredKey {
    id: String,
    created: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    superseded: Option<Timestamp>,
    kek: String,
    wrapped: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
struct StoredSet {
    /// Oldest first; the last is active.
    keys: Vec<StoredKey>,
}

/// The key set as loaded: the record's bytes (for compare-and-set) and the
/// unwrapped keys.
struct Loaded {
    raw: Bytes,
    set: StoredSet,
    keys: HashMap<String, Arc<DataKey>>,
    active: (String, Arc<DataKey>),
}

/// What a data key looks like from outside (no key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Its id, as sealed values name it.
    pub id: String,
    /// When it was created.
    pub created: Timestamp,
    /// When a newer key replaced it as the active one.
    pub superseded: Option<Timestamp>,
    /// The KEK that wraps it.
    pub kek_id: String,
}

/// Seals and opens field values with the shared, rotating key set; cheap
/// to share behind an `Arc`. See the module docs.
pub struct FieldKeys {
    state: SharedState,
    provider: Arc<dyn KeyProvider>,
    options: FieldKeysOptions,
    record: StateKey,
    loaded: RwLock<Arc<Loaded>>,
    /// When the set was last read from the state (successfully), in the
    /// state clock's milliseconds.
    refreshed_ms: std::sync::atomic::AtomicI64,
    /// One reload at a time; holds when the last one was attempted.
    reloading: tokio::sync::Mutex<Option<std::time::Instant>>,
    /// Whether a complete re-encryption pass ran in this process (the
    /// first one also seals what was stored in clear).
    swept: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for FieldKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let loaded = self.current();
        f.debug_struct("FieldKeys")
            .field("name", &self.options.name)
            .field("active", &loaded.active.0)
            .field("keys", &loaded.keys.len())
            .field("provider", &self.provider)
            .finish()
    }
}

fn key_context(name: &str, id: &str) -> Vec<u8> {
    format!("kailash-field-key-v1\0{name}\0{id}").into_bytes()
}

fn seal_context(id: &str, context: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + id.len() + context.len());
    out.extend_from_slice(b"kailash-field-v1\0");
    out.extend_from_slice(id.as_bytes());
    out.push(0);
    out.extend_from_slice(context);
    out
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// Splits a sealed value into its key id and encoded ciphertext, checking
/// prefix, id, alphabet and size without decoding (no allocation).
fn check_shape(sealed: &str) -> Result<(&str, &str), FieldError> {
    if sealed.len() > MAX_SEALED_CHARS {
        return Err(FieldError::Malformed);
    }
    let rest = sealed
        .strip_prefix(SEALED_PREFIX)
        .ok_or(FieldError::Malformed)?;
    let (id, body) = rest.split_once('.').ok_or(FieldError::Malformed)?;
    if id.len() != KEY_ID_CHARS || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(FieldError::Malformed);
    }
    // Unpadded base64url of at least nonce + tag: whole groups of 4, or a
    // tail of 2 or 3 characters.
    let ok = body.len() % 4 != 1
        && body.len() * 3 / 4 >= crate::envelope::OVERHEAD
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(FieldError::Malformed);
    }
    Ok((id, body))
}

/// Splits a sealed value into its key id and decoded ciphertext.
fn parse_sealed(sealed: &str) -> Result<(&str, Vec<u8>), FieldError> {
    let (id, body) = check_shape(sealed)?;
    // Non-canonical trailing bits are refused by the decoder too.
    let bytes = BASE64URL_NOPAD
        .decode(body.as_bytes())
        .map_err(|_| FieldError::Malformed)?;
    Ok((id, bytes))
}

/// Whether `text` has the shape of a sealed value: a cheap check, without
/// decoding, that tells a sealed field from a legacy clear one.
pub fn is_sealed(text: &str) -> bool {
    check_shape(text).is_ok()
}

/// The id of the data key that sealed `sealed`, if it is a sealed value.
pub fn key_id_of(sealed: &str) -> Option<&str> {
    sealed
        .strip_prefix(SEALED_PREFIX)
        .and_then(|r| r.split_once('.'))
        .map(|(id, _)| id)
        .filter(|id| id.len() == KEY_ID_CHARS)
}

impl FieldKeys {
    /// Loads the key set named in `options` from `state`, creating it
    /// (one active key wrapped by `provider`) the first time. Every
    /// instance opening the same name over the same state shares it.
    ///
    /// Fails when the state cannot be reached, the record is corrupt, or
    /// the provider cannot unwrap a stored key (a wrong or missing KEK):
    /// starting with keys that cannot open what is stored would be worse.
    pub async fn load(
        state: SharedState,
        provider: Arc<dyn KeyProvider>,
        options: FieldKeysOptions,
    ) -> Result<Self, FieldError> {
        if !valid_name(&options.name) {
            return Err(FieldError::KeySet(
                "a key set name is 1 to 64 of a-z 0-9 . _ -".into(),
            ));
        }
        if options.rotation.is_some_and(|r| r.is_zero()) {
            return Err(FieldError::KeySet(
                "the rotation period must be positive".into(),
            ));
        }
        if options.retire_after < MIN_RETIRE_AFTER {
            return Err(FieldError::KeySet(format!(
                "retire_after must be at least {} s",
                MIN_RETIRE_AFTER.as_secs()
            )));
        }
        let record = StateKey::global(NS, &options.name);
        let loaded = loop {
            if let Some(raw) = state.kv.get(&record).await? {
                break Self::unwrap_set(&*provider, &options.name, raw, None).await?;
            }
            let now = state.clock.now();
            let (entry, _) = Self::new_key(&*provider, &options.name, now).await?;
            let set = StoredSet { keys: vec![entry] };
            let raw = Bytes::from(serde_json::to_vec(&set).map_err(corrupt)?);
            // Another instance may create it first: then load theirs.
            if state.kv.set_if_absent(&record, raw, None).await? {
                continue;
            }
        };
        let refreshed_ms = std::sync::atomic::AtomicI64::new(state.clock.now_millis());
        Ok(Self {
            state,
            provider,
            options,
            record,
            loaded: RwLock::new(Arc::new(loaded)),
            refreshed_ms,
            reloading: tokio::sync::Mutex::new(None),
            swept: std::sync::atomic::AtomicBool::new(false),
        })
    }

    async fn new_key(
        provider: &dyn KeyProvider,
        name: &str,
        now: Timestamp,
    ) -> Result<(StoredKey, DataKey), FieldError> {
        let mut id = [0u8; KEY_ID_CHARS / 2];
        getrandom::fill(&mut id).map_err(|_| EnvelopeError::Random)?;
        let id = HEXLOWER.encode(&id);
        let key = DataKey::generate()?;
        let wrapped = provider.wrap(&key, &key_context(name, &id)).await?;
        Ok((
            StoredKey {
                id,
                created: now,
                superseded: None,
                kek: wrapped.kek_id,
                wrapped: BASE64URL_NOPAD.encode(&wrapped.bytes),
            },
            key,
        ))
    }

    /// The set in `raw`, its keys unwrapped — those already in `held` are
    /// reused, so a reload asks the provider only for new keys (and keeps
    /// working while instances roll onto a new KEK).
    async fn unwrap_set(
        provider: &dyn KeyProvider,
        name: &str,
        raw: Bytes,
        held: Option<&Loaded>,
    ) -> Result<Loaded, FieldError> {
        if raw.len() > MAX_KEYSET_BYTES {
            return Err(FieldError::KeySet("the key set record is too large".into()));
        }
        let set: StoredSet = serde_json::from_slice(&raw).map_err(corrupt)?;
        let mut keys = HashMap::with_capacity(set.keys.len());
        for entry in &set.keys {
            if let Some(key) = held.and_then(|h| h.keys.get(&entry.id)) {
                keys.insert(entry.id.clone(), key.clone());
                continue;
            }
            let bytes = BASE64URL_NOPAD
                .decode(entry.wrapped.as_bytes())
                .map_err(corrupt)?;
            let wrapped = WrappedKey {
                kek_id: entry.kek.clone(),
                bytes,
            };
            let key = provider
                .unwrap(&wrapped, &key_context(name, &entry.id))
                .await?;
            keys.insert(entry.id.clone(), Arc::new(key));
        }
        let active_id = set
            .keys
            .last()
            .map(|k| k.id.clone())
            .ok_or_else(|| FieldError::KeySet("the key set is empty".into()))?;
        let active = keys
            .get(&active_id)
            .cloned()
            .ok_or_else(|| FieldError::KeySet("the key set is corrupt".into()))?;
        Ok(Loaded {
            raw,
            set,
            keys,
            active: (active_id, active),
        })
    }

    fn current(&self) -> Arc<Loaded> {
        self.loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn install(&self, loaded: Loaded) {
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
    }

    /// Seals `plaintext` under the active data key, bound to `context`.
    ///
    /// When this instance's copy of the set is older than a quarter of
    /// `retire_after`, it is re-read first (so nothing is sealed under a
    /// key another instance may retire); if that read fails, so does the
    /// seal.
    pub async fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<String, FieldError> {
        if self.stale() {
            self.reload().await?;
        }
        self.seal_now(plaintext, context)
    }

    /// Whether this instance's copy of the set is too old to seal with.
    fn stale(&self) -> bool {
        let refreshed = self.refreshed_ms.load(std::sync::atomic::Ordering::Relaxed);
        let quarter =
            i64::try_from((self.options.retire_after / 4).as_millis()).unwrap_or(i64::MAX);
        self.state.clock.now_millis().saturating_sub(refreshed) >= quarter
    }

    fn seal_now(&self, plaintext: &[u8], context: &[u8]) -> Result<String, FieldError> {
        let loaded = self.current();
        let (id, key) = &loaded.active;
        let sealed = key.seal(plaintext, &seal_context(id, context))?;
        let mut out = String::with_capacity(
            SEALED_PREFIX.len() + id.len() + 1 + BASE64URL_NOPAD.encode_len(sealed.len()),
        );
        out.push_str(SEALED_PREFIX);
        out.push_str(id);
        out.push('.');
        BASE64URL_NOPAD.encode_append(&sealed, &mut out);
        if out.len() > MAX_SEALED_CHARS {
            return Err(FieldError::Malformed);
        }
        Ok(out)
    }

    /// Opens a value sealed under any key of the set and `context`. A key
    /// id this instance does not hold reloads the set (another instance
    /// may have rotated): one reload at a time, the others waiting for it,
    /// and at most one a second for ids that stay unknown.
    pub async fn open(&self, sealed: &str, context: &[u8]) -> Result<Vec<u8>, FieldError> {
        let (id, bytes) = parse_sealed(sealed)?;
        let mut loaded = self.current();
        if !loaded.keys.contains_key(id) {
            let mut last = self.reloading.lock().await;
            loaded = self.current();
            let recent = last.is_some_and(|at| at.elapsed() < RELOAD_EVERY);
            if !loaded.keys.contains_key(id) && !recent {
                *last = Some(std::time::Instant::now());
                self.reload_now().await?;
                loaded = self.current();
            }
        }
        let key = loaded
            .keys
            .get(id)
            .ok_or_else(|| FieldError::UnknownKey(id.to_owned()))?;
        key.open(&bytes, &seal_context(id, context))
            .map_err(|_| FieldError::Tampered)
    }

    /// Whether `sealed` is sealed under the active key (nothing to
    /// re-encrypt).
    pub fn is_current(&self, sealed: &str) -> bool {
        key_id_of(sealed) == Some(self.current().active.0.as_str())
    }

    /// `sealed` re-sealed under the active key, or `None` when it already
    /// is: what a [`Reencrypt`] target writes back.
    pub async fn reseal(&self, sealed: &str, context: &[u8]) -> Result<Option<String>, FieldError> {
        if self.is_current(sealed) {
            return Ok(None);
        }
        let plain = self.open(sealed, context).await?;
        self.seal(&plain, context).await.map(Some)
    }

    /// The data keys, oldest first (the last is active).
    pub fn keys(&self) -> Vec<KeyInfo> {
        self.current()
            .set
            .keys
            .iter()
            .map(|k| KeyInfo {
                id: k.id.clone(),
                created: k.created,
                superseded: k.superseded,
                kek_id: k.kek.clone(),
            })
            .collect()
    }

    /// Re-reads the key set from the shared state (another instance may
    /// have rotated or retired keys).
    ///
    /// A set that no longer holds this instance's active key is refused
    /// ([`FieldError::KeySet`]) and not adopted: keys are retired only
    /// long after they stop being active, so such a set was replaced (a
    /// restore, an evicted or deleted record) and adopting it would make
    /// everything sealed so far unreadable.
    pub async fn reload(&self) -> Result<(), FieldError> {
        let _one = self.reloading.lock().await;
        self.reload_now().await
    }

    async fn reload_now(&self) -> Result<(), FieldError> {
        let raw = self.state.kv.get(&self.record).await?.ok_or_else(|| {
            tracing::error!(record = %self.record, "the field key set is gone from the state");
            FieldError::KeySet("the key set record is gone (evicted or deleted?)".into())
        })?;
        let current = self.current();
        if raw != current.raw {
            let loaded =
                Self::unwrap_set(&*self.provider, &self.options.name, raw, Some(&current)).await?;
            if !loaded.keys.contains_key(&current.active.0) {
                tracing::error!(
                    record = %self.record,
                    "the field key set in the state lost this instance's active key; not adopted"
                );
                return Err(FieldError::KeySet(
                    "the stored key set lost the active key (replaced or restored?)".into(),
                ));
            }
            self.install(loaded);
        }
        self.refreshed_ms.store(
            self.state.clock.now_millis(),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(())
    }

    /// Writes `set` in place of `loaded`'s record if nobody changed it
    /// meanwhile (compare-and-set); whether it did. On success the new set
    /// is installed.
    async fn commit(&self, loaded: &Loaded, set: &StoredSet) -> Result<bool, FieldError> {
        let raw = Bytes::from(serde_json::to_vec(set).map_err(corrupt)?);
        if !self
            .state
            .kv
            .compare_and_swap(&self.record, Some(&loaded.raw), Some(raw.clone()), None)
            .await?
        {
            return Ok(false);
        }
        let loaded =
            Self::unwrap_set(&*self.provider, &self.options.name, raw, Some(loaded)).await?;
        self.install(loaded);
        Ok(true)
    }

    /// Adds a new active data key now, whatever the active key's age.
    pub async fn rotate(&self) -> Result<(), FieldError> {
        self.rotate_when(None).await.map(drop)
    }

    /// Adds a new active data key when the active one is older than the
    /// rotation period; whether it rotated. Several instances calling it
    /// at once rotate once.
    pub async fn rotate_if_due(&self) -> Result<bool, FieldError> {
        match self.options.rotation {
            Some(period) => self.rotate_when(Some(period)).await,
            None => Ok(false),
        }
    }

    /// Rotates when the active key is at least `age` old (`None`: always).
    async fn rotate_when(&self, age: Option<Duration>) -> Result<bool, FieldError> {
        for _ in 0..UPDATE_ATTEMPTS {
            self.reload().await?;
            let loaded = self.current();
            let now = self.state.clock.now();
            let mut set = loaded.set.clone();
            let count = set.keys.len();
            let Some(active) = set.keys.last_mut() else {
                return Err(FieldError::KeySet("the key set is empty".into()));
            };
            if age.is_some_and(|age| plus(active.created, age) > now) {
                return Ok(false);
            }
            if count >= MAX_DATA_KEYS {
                return Err(FieldError::KeySet(format!(
                    "{MAX_DATA_KEYS} data keys: retire old ones (re-encrypt) before rotating"
                )));
            }
            active.superseded = Some(now);
            let (entry, _) = Self::new_key(&*self.provider, &self.options.name, now).await?;
            set.keys.push(entry);
            if self.commit(&loaded, &set).await? {
                return Ok(true);
            }
        }
        Err(busy())
    }

    /// Re-wraps every data key not wrapped by the provider's active KEK
    /// (after a KEK rotation); how many moved.
    pub async fn rewrap(&self) -> Result<usize, FieldError> {
        for _ in 0..UPDATE_ATTEMPTS {
            self.reload().await?;
            let loaded = self.current();
            let mut set = loaded.set.clone();
            let mut moved = 0;
            for entry in &mut set.keys {
                let wrapped = WrappedKey {
                    kek_id: entry.kek.clone(),
                    bytes: BASE64URL_NOPAD
                        .decode(entry.wrapped.as_bytes())
                        .map_err(corrupt)?,
                };
                let context = key_context(&self.options.name, &entry.id);
                if let Some(new) = self.provider.rewrap(&wrapped, &context).await? {
                    entry.kek = new.kek_id;
                    entry.wrapped = BASE64URL_NOPAD.encode(&new.bytes);
                    moved += 1;
                }
            }
            if moved == 0 || self.commit(&loaded, &set).await? {
                return Ok(moved);
            }
        }
        Err(busy())
    }

    /// Removes superseded keys whose grace ended before `pass_began` (a
    /// complete re-encryption pass began then, so nothing sealed under
    /// them remains); how many went.
    async fn retire_before(&self, pass_began: Timestamp) -> Result<usize, FieldError> {
        let grace = self.options.retire_after;
        for _ in 0..UPDATE_ATTEMPTS {
            self.reload().await?;
            let loaded = self.current();
            let mut set = loaded.set.clone();
            let last = set.keys.len().saturating_sub(1);
            let mut i = 0;
            set.keys.retain(|k| {
                let keep = i == last || k.superseded.is_none_or(|at| plus(at, grace) > pass_began);
                i += 1;
                keep
            });
            let retired = loaded.set.keys.len() - set.keys.len();
            if retired == 0 || self.commit(&loaded, &set).await? {
                return Ok(retired);
            }
        }
        Err(busy())
    }

    /// One maintenance round: reload, rotate when due, re-wrap after a KEK
    /// rotation (a failure of either is logged and counted, not fatal),
    /// and — while superseded keys exist, and once per process — a
    /// re-encryption pass over `targets`, retiring the keys a complete
    /// pass made unused.
    pub async fn maintain(
        &self,
        targets: &[Arc<dyn Reencrypt>],
    ) -> Result<MaintenanceReport, FieldError> {
        self.reload().await?;
        let mut report = MaintenanceReport::default();
        // Neither a full set nor an unreachable KMS may stop the pass and
        // the retirement that would fix them: warned, counted, retried
        // next round.
        match self.rotate_if_due().await {
            Ok(rotated) => report.rotated = rotated,
            Err(e) => {
                tracing::warn!(error = %e, "field key rotation failed");
                metrics::counter!("kailash_field_key_failures_total", "step" => "rotate")
                    .increment(1);
            }
        }
        match self.rewrap().await {
            Ok(moved) => report.rewrapped = moved,
            Err(e) => {
                tracing::warn!(error = %e, "re-wrapping field keys failed");
                metrics::counter!("kailash_field_key_failures_total", "step" => "rewrap")
                    .increment(1);
            }
        }
        // A pass while older keys exist, and once per process (which also
        // seals what was stored in clear before encryption was on).
        let superseded = self.current().set.keys.len() > 1;
        if !superseded && self.swept.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(report);
        }
        let began = self.state.clock.now();
        let mut complete = true;
        for target in targets {
            match target.reencrypt(self).await {
                Ok(stats) => {
                    metrics::counter!("kailash_field_reencrypted_total", "target" => target.name())
                        .increment(stats.resealed);
                    if stats.failed > 0 {
                        metrics::counter!("kailash_field_reencrypt_failures_total", "target" => target.name())
                            .increment(stats.failed);
                        complete = false;
                    }
                    report.targets.push((target.name(), stats));
                }
                Err(e) => {
                    tracing::warn!(target = target.name(), error = %e, "re-encryption pass failed");
                    metrics::counter!("kailash_field_reencrypt_failures_total", "target" => target.name())
                        .increment(1);
                    complete = false;
                }
            }
        }
        if complete {
            self.swept.store(true, std::sync::atomic::Ordering::Relaxed);
            if superseded {
                report.retired = self.retire_before(began).await?;
            }
        }
        metrics::gauge!("kailash_field_keys").set(self.current().set.keys.len() as f64);
        Ok(report)
    }

    /// Runs [`maintain`](Self::maintain) every `every` until the returned
    /// handle is aborted; failures are logged and retried next round.
    pub fn spawn_maintenance(
        self: &Arc<Self>,
        targets: Vec<Arc<dyn Reencrypt>>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let keys = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match keys.maintain(&targets).await {
                    Ok(report) if report.changed() => {
                        tracing::info!(
                            rotated = report.rotated,
                            rewrapped = report.rewrapped,
                            retired = report.retired,
                            "field keys maintained"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "field key maintenance failed"),
                }
            }
        })
    }
}

/// `t + d`, saturating at the end of time.
fn plus(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

fn busy() -> FieldError {
    FieldError::KeySet("the key set kept changing under this update".into())
}

fn corrupt(e: impl std::fmt::Display) -> FieldError {
    FieldError::KeySet(format!("the key set record is corrupt: {e}"))
}

/// What one [`FieldKeys::maintain`] round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Whether a new active key was added.
    pub rotated: bool,
    /// Data keys re-wrapped under a new KEK.
    pub rewrapped: usize,
    /// Superseded keys removed after a complete pass.
    pub retired: usize,
    /// Each target's pass.
    pub targets: Vec<(&'static str, ReencryptStats)>,
}

impl MaintenanceReport {
    /// Whether anything changed (for logging).
    pub fn changed(&self) -> bool {
        self.rotated
            || self.rewrapped > 0
            || self.retired > 0
            || self.targets.iter().any(|(_, s)| s.resealed > 0)
    }
}

/// What one re-encryption pass over a target did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReencryptStats {
    /// Records looked at.
    pub scanned: u64,
    /// Records written back with their values re-sealed.
    pub resealed: u64,
    /// Records that could not be re-sealed (left as they were; the pass
    /// counts as incomplete and no key is retired).
    pub failed: u64,
}

/// Records that hold sealed values: a re-encryption pass re-seals the
/// values an older key sealed (with [`FieldKeys::reseal`]) and writes each
/// record back atomically (compare-and-set), leaving a record that
/// changed meanwhile to the next pass.
#[async_trait]
pub trait Reencrypt: Send + Sync + 'static {
    /// A short name for logs and metrics (`sessions`, `mfa`).
    fn name(&self) -> &'static str;

    /// One pass over every record.
    async fn reencrypt(&self, keys: &FieldKeys) -> Result<ReencryptStats, FieldError>;
}

/// How often a [`Reencrypt`] target re-reads and re-seals one record
/// that changed under it before counting it as failed.
pub const RESEAL_ATTEMPTS: usize = 4;

/// One re-encryption pass over every live key of `namespace` (all
/// tenants): `reseal` re-seals one record and says whether it wrote. A
/// record whose `reseal` fails is logged and counted as failed (the pass
/// is then incomplete); a failure to list the keys ends the pass.
pub async fn reencrypt_namespace<F, Fut>(
    state: &SharedState,
    namespace: Namespace,
    what: &'static str,
    mut reseal: F,
) -> Result<ReencryptStats, FieldError>
where
    F: FnMut(StateKey) -> Fut + Send,
    Fut: std::future::Future<Output = Result<bool, FieldError>> + Send,
{
    let mut stats = ReencryptStats::default();
    let mut cursor = Some(crate::state::ScanCursor::START);
    while let Some(at) = cursor {
        let page = state.kv.scan(namespace, at).await?;
        cursor = page.next;
        for key in page.keys {
            stats.scanned += 1;
            match reseal(key).await {
                Ok(true) => stats.resealed += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, what, "a sealed value could not be re-sealed");
                    stats.failed += 1;
                }
            }
        }
    }
    Ok(stats)
}

/// A field holding the sealed text of a `T` (its JSON, sealed by
/// [`FieldKeys`]). Serializes as that text; deserializing checks its
/// shape and size but opens nothing — [`open`](Self::open) does, with the
/// keys and the same context it was sealed with.
pub struct Encrypted<T> {
    sealed: String,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Encrypted<T> {
    fn clone(&self) -> Self {
        Self {
            sealed: self.sealed.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> PartialEq for Encrypted<T> {
    fn eq(&self, other: &Self) -> bool {
        self.sealed == other.sealed
    }
}

impl<T> Eq for Encrypted<T> {}

impl<T> std::fmt::Debug for Encrypted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encrypted(key {:?})", key_id_of(&self.sealed))
    }
}

impl<T: Serialize + serde::de::DeserializeOwned> Encrypted<T> {
    /// `value` sealed under the active key, bound to `context`.
    pub async fn seal(keys: &FieldKeys, value: &T, context: &[u8]) -> Result<Self, FieldError> {
        let json = serde_json::to_vec(value).map_err(|_| FieldError::Type)?;
        Ok(Self {
            sealed: keys.seal(&json, context).await?,
            _type: PhantomData,
        })
    }

    /// The value, opened with the context it was sealed with.
    pub async fn open(&self, keys: &FieldKeys, context: &[u8]) -> Result<T, FieldError> {
        let json = keys.open(&self.sealed, context).await?;
        serde_json::from_slice(&json).map_err(|_| FieldError::Type)
    }

    /// Re-sealed under the active key, or `None` when it already is.
    pub async fn reseal(
        &self,
        keys: &FieldKeys,
        context: &[u8],
    ) -> Result<Option<Self>, FieldError> {
        Ok(keys
            .reseal(&self.sealed, context)
            .await?
            .map(|sealed| Self {
                sealed,
                _type: PhantomData,
            }))
    }
}

impl<T> Encrypted<T> {
    /// A sealed text read from elsewhere, checked for shape and size.
    pub fn from_sealed(sealed: String) -> Result<Self, FieldError> {
        check_shape(&sealed)?;
        Ok(Self {
            sealed,
            _type: PhantomData,
        })
    }

    /// The sealed text.
    pub fn as_str(&self) -> &str {
        &self.sealed
    }

    /// The id of the data key that sealed it.
    pub fn key_id(&self) -> &str {
        key_id_of(&self.sealed).unwrap_or("")
    }
}

impl<T> Serialize for Encrypted<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.sealed)
    }
}

impl<'de, T> Deserialize<'de> for Encrypted<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_sealed(text).map_err(|_| serde::de::Error::custom("not a sealed value"))
    }
}

#[cfg(test)]
mod tests;
