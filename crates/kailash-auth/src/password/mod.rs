//! Password hashing (argon2id) and password policy.
//!
//! * [`Password`] wraps a plaintext password; its `Debug` output is redacted
//!   and anything longer than [`MAX_PASSWORD_BYTES`] is refused before any
//!   hashing work is done.
//! * [`PasswordHasher`] hashes with argon2id (OWASP parameters by default:
//!   19 MiB, 2 iterations, 1 lane) into a PHC string, verifies, detects
//!   hashes that need rehashing, and offers
//!   [`verify_dummy`](PasswordHasher::verify_dummy) so a login for an unknown
//!   user costs as much as a wrong password. The `*_async` variants run on
//!   [`tokio::task::spawn_blocking`] under the hasher's [`HashLimiter`].
//! * [`HashLimiter`] bounds how many argon2 computations run at once (each
//!   takes 19 MiB and a core for tens of milliseconds): excess callers wait
//!   up to a short queue timeout, then get [`PasswordError::Busy`].
//! * [`PasswordHash`] is a validated, stored PHC string (argon2id only).
//! * [`PasswordPolicy`] checks a new password and lists every rule it breaks.
//!
//! ```
//! use kailash_auth::password::{HashParams, Password, PasswordHasher};
//!
//! // Small parameters keep the example fast; production uses the default.
//! let hasher = PasswordHasher::new(HashParams { memory_kib: 64, iterations: 1, parallelism: 1 })?;
//! let hash = hasher.hash(&Password::new("correct horse battery staple"))?;
//! assert!(hasher.verify(&Password::new("correct horse battery staple"), &hash));
//! assert!(!hasher.verify(&Password::new("wrong"), &hash));
//! # Ok::<(), kailash_auth::password::PasswordError>(())
//! ```

mod policy;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::phc;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use policy::{PasswordPolicy, PolicyError, PolicyViolation};

/// The longest password (in bytes) that is hashed or verified at all: four
/// bytes for each of the [`MAX_PASSWORD_CHARS`](crate::bounds::MAX_PASSWORD_CHARS)
/// characters the service and its routes accept, so a password they accept
/// is never too long to hash.
///
/// Longer inputs are refused before any argon2 work, so huge request bodies
/// cannot be used to burn CPU (argon2 reads the password once, through
/// BLAKE2b, so its length barely changes the cost).
pub const MAX_PASSWORD_BYTES: usize = 4096;

/// Bounds accepted for argon2 parameters, in configuration and in stored
/// hashes, so a tampered hash cannot make a login allocate gigabytes.
const MAX_MEMORY_KIB: u32 = 1024 * 1024;
const MAX_ITERATIONS: u32 = 64;
const MAX_PARALLELISM: u32 = 64;
const SALT_LEN: usize = 16;
const OUTPUT_LEN: usize = 32;
/// The fixed salt of [`PasswordHasher::verify_dummy`].
const DUMMY_SALT: [u8; SALT_LEN] = *b"kailash-dummy-sa";

/// A plaintext password.
///
/// `Debug` prints `Password(***)`; there is no `Display`. Use
/// [`expose`](Self::expose) where the text is really needed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Wraps a plaintext password (any length; length limits are applied
    /// when hashing, verifying and checking the policy).
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The plaintext.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the password is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn too_long(&self) -> bool {
        self.0.len() > MAX_PASSWORD_BYTES
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// Why hashing or parsing failed. Messages never contain a password or hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The password is longer than [`MAX_PASSWORD_BYTES`]; nothing was hashed.
    #[error("password is longer than {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// The argon2 parameters are out of range.
    #[error("invalid argon2 parameters: {0}")]
    InvalidParams(&'static str),
    /// A stored hash is not a well-formed PHC string.
    #[error("stored password hash is malformed")]
    MalformedHash,
    /// A stored hash uses an algorithm other than argon2id (or an old version).
    #[error("stored password hash does not use argon2id v19")]
    UnsupportedAlgorithm,
    /// The operating system's random number generator failed.
    #[error("random number generator failed")]
    Rng,
    /// argon2 reported an internal error.
    #[error("password hashing failed")]
    Hashing,
    /// The blocking task running the hash was cancelled or panicked.
    #[error("password hashing task failed")]
    Task,
    /// Every hashing slot stayed busy for the whole queue timeout; nothing
    /// was hashed. Retry after `retry_after`.
    #[error("password hashing is busy")]
    Busy {
        /// When a retry is worthwhile.
        retry_after: Duration,
    },
}

/// The default queue timeout of a [`HashLimiter`]: how long a hash waits
/// for a free slot before it is refused.
pub const DEFAULT_HASH_QUEUE_TIMEOUT: Duration = Duration::from_secs(1);

/// Bounds the argon2 computations that run at once.
///
/// Every `*_async` call of a [`PasswordHasher`] (hash, verify, and the
/// dummy verification for unknown users alike) takes one slot for as long
/// as its blocking task runs — also when the caller stops waiting, so
/// cancelled requests cannot pile up work beyond the bound. A call that
/// finds no free slot waits at most the queue timeout, then fails with
/// [`PasswordError::Busy`] without hashing. Clones share the slots.
///
/// ```
/// use std::time::Duration;
/// use kailash_auth::password::HashLimiter;
///
/// let limiter = HashLimiter::new(4, Duration::from_millis(500));
/// assert_eq!(limiter.max_concurrent(), 4);
/// assert_eq!(HashLimiter::default().max_concurrent(), HashLimiter::default_concurrency());
/// ```
#[derive(Debug, Clone)]
pub struct HashLimiter {
    slots: Arc<Semaphore>,
    max: usize,
    queue_timeout: Duration,
}

impl Default for HashLimiter {
    /// [`default_concurrency`](Self::default_concurrency) slots and
    /// [`DEFAULT_HASH_QUEUE_TIMEOUT`].
    fn default() -> Self {
        Self::new(Self::default_concurrency(), DEFAULT_HASH_QUEUE_TIMEOUT)
    }
}

impl HashLimiter {
    /// At most `max_concurrent` (at least 1) computations at once; others
    /// wait up to `queue_timeout` (zero: not at all).
    pub fn new(max_concurrent: usize, queue_timeout: Duration) -> Self {
        let max = max_concurrent.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            queue_timeout,
        }
    }

    /// The default bound: the number of cores available to this process
    /// (1 when unknown).
    pub fn default_concurrency() -> usize {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    }

    /// The bound.
    pub fn max_concurrent(&self) -> usize {
        self.max
    }

    /// The queue timeout.
    pub fn queue_timeout(&self) -> Duration {
        self.queue_timeout
    }

    /// A slot, or `Busy` once the queue timeout has passed.
    async fn acquire(&self) -> Result<OwnedSemaphorePermit, PasswordError> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let busy = PasswordError::Busy {
            retry_after: self.queue_timeout.max(Duration::from_secs(1)),
        };
        if self.queue_timeout.is_zero() {
            return Err(busy);
        }
        match tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // Timed out (the semaphore is never closed).
            _ => Err(busy),
        }
    }
}

/// argon2id cost parameters (serde: `memory_kib`, `iterations`, `parallelism`).
///
/// The default is OWASP's recommendation: 19 MiB, 2 iterations, 1 lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashParams {
    /// Memory in KiB (`m`).
    pub memory_kib: u32,
    /// Passes over memory (`t`).
    pub iterations: u32,
    /// Lanes (`p`).
    pub parallelism: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl HashParams {
    fn to_argon2(self) -> Result<Params, PasswordError> {
        if self.memory_kib > MAX_MEMORY_KIB {
            return Err(PasswordError::InvalidParams("memory_kib above 1 GiB"));
        }
        if self.iterations > MAX_ITERATIONS {
            return Err(PasswordError::InvalidParams("iterations above 64"));
        }
        if self.parallelism > MAX_PARALLELISM {
            return Err(PasswordError::InvalidParams("parallelism above 64"));
        }
        Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(OUTPUT_LEN),
        )
        .map_err(|_| {
            PasswordError::InvalidParams(
                "argon2 refused them (memory_kib must be at least 8 * parallelism; \
                 iterations and parallelism at least 1)",
            )
        })
    }
}

/// A stored argon2id password hash (a validated PHC string).
///
/// `Debug` shows the parameters only, never the salt or hash. Serde reads
/// and writes the PHC string and validates it when reading.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    phc: String,
    params: HashParams,
    version: u32,
    output_len: usize,
}

impl PasswordHash {
    /// Parses and validates a stored PHC string.
    ///
    /// Accepted: `$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>` with parameters
    /// within sane bounds (memory at most 1 GiB, at most 64 iterations and
    /// lanes). Anything else, including bcrypt, argon2i and argon2d hashes,
    /// is an error.
    pub fn parse(s: &str) -> Result<Self, PasswordError> {
        // PHC strings are short; refuse absurd input before parsing.
        if s.len() > 512 {
            return Err(PasswordError::MalformedHash);
        }
        let parsed = phc::PasswordHash::new(s).map_err(|_| PasswordError::MalformedHash)?;
        if parsed.algorithm.as_str() != "argon2id" {
            return Err(PasswordError::UnsupportedAlgorithm);
        }
        let version = parsed.version.unwrap_or(0x10);
        if version != u32::from(Version::V0x13) {
            return Err(PasswordError::UnsupportedAlgorithm);
        }
        let (Some(salt), Some(output)) = (&parsed.salt, &parsed.hash) else {
            return Err(PasswordError::MalformedHash);
        };
        if salt.len() < 8 || output.len() < 16 {
            return Err(PasswordError::MalformedHash);
        }
        let p = Params::try_from(&parsed).map_err(|_| PasswordError::MalformedHash)?;
        let params = HashParams {
            memory_kib: p.m_cost(),
            iterations: p.t_cost(),
            parallelism: p.p_cost(),
        };
        // Bounds (a tampered hash must not make verification allocate 4 TiB).
        params
            .to_argon2()
            .map_err(|_| PasswordError::MalformedHash)?;
        Ok(Self {
            phc: s.to_owned(),
            params,
            version,
            output_len: output.len(),
        })
    }

    /// The PHC string, for storage.
    pub fn as_str(&self) -> &str {
        &self.phc
    }

    /// The argon2 parameters this hash was made with.
    pub fn params(&self) -> HashParams {
        self.params
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHash")
            .field("algorithm", &"argon2id")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl FromStr for PasswordHash {
    type Err = PasswordError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for PasswordHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.phc)
    }
}

impl<'de> Deserialize<'de> for PasswordHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Hashes and verifies passwords with argon2id.
///
/// Cheap to clone: parameters, and a [`HashLimiter`] that clones share.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    config: HashParams,
    params: Params,
    limiter: HashLimiter,
}

impl Default for PasswordHasher {
    /// OWASP parameters (see [`HashParams::default`]) and the default
    /// [`HashLimiter`].
    fn default() -> Self {
        Self {
            config: HashParams::default(),
            params: Params::DEFAULT,
            limiter: HashLimiter::default(),
        }
    }
}

impl PasswordHasher {
    /// A hasher with the given parameters (and the default
    /// [`HashLimiter`]); fails when they are out of range.
    pub fn new(params: HashParams) -> Result<Self, PasswordError> {
        Ok(Self {
            config: params,
            params: params.to_argon2()?,
            limiter: HashLimiter::default(),
        })
    }

    /// Runs the `*_async` calls under `limiter` (shared with its clones).
    #[must_use]
    pub fn with_limiter(mut self, limiter: HashLimiter) -> Self {
        self.limiter = limiter;
        self
    }

    /// The limiter of the `*_async` calls.
    pub fn limiter(&self) -> &HashLimiter {
        &self.limiter
    }

    /// The parameters new hashes are made with.
    pub fn params(&self) -> HashParams {
        self.config
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes `password` with a fresh random salt.
    pub fn hash(&self, password: &Password) -> Result<PasswordHash, PasswordError> {
        if password.too_long() {
            return Err(PasswordError::TooLong {
                max: MAX_PASSWORD_BYTES,
            });
        }
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|_| PasswordError::Rng)?;
        let phc = self
            .argon2()
            .hash_password_with_salt(password.expose().as_bytes(), &salt)
            .map_err(|_| PasswordError::Hashing)?
            .to_string();
        PasswordHash::parse(&phc)
    }

    /// Whether `password` matches `hash` (constant-time comparison of the
    /// output). A password longer than [`MAX_PASSWORD_BYTES`] never matches
    /// and costs no hashing work.
    ///
    /// The stored hash's own parameters are used, so hashes made with older
    /// parameters still verify; see [`needs_rehash`](Self::needs_rehash).
    pub fn verify(&self, password: &Password, hash: &PasswordHash) -> bool {
        if password.too_long() {
            return false;
        }
        let Ok(parsed) = phc::PasswordHash::new(&hash.phc) else {
            return false;
        };
        self.argon2()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok()
    }

    /// Spends the same argon2 work as [`verify`](Self::verify) against a
    /// hash made with the current parameters, then returns `false`.
    ///
    /// Call it when the user does not exist, so that answer takes as long as
    /// a wrong password.
    pub fn verify_dummy(&self, password: &Password) -> bool {
        if password.too_long() {
            return false;
        }
        let mut out = [0u8; OUTPUT_LEN];
        if self
            .argon2()
            .hash_password_into(password.expose().as_bytes(), &DUMMY_SALT, &mut out)
            .is_err()
        {
            return false;
        }
        // Compare like a real verification would; the result is discarded.
        let matched = out.ct_eq(&[0u8; OUTPUT_LEN]);
        let _ = std::hint::black_box(matched);
        false
    }

    /// Whether `hash` was made with weaker settings than this hasher's (less
    /// memory, fewer iterations, a shorter output), so it should be replaced
    /// after the next successful login.
    pub fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        let stored = hash.params;
        stored.memory_kib < self.config.memory_kib
            || stored.iterations < self.config.iterations
            || hash.output_len < OUTPUT_LEN
            || hash.version != u32::from(Version::V0x13)
    }

    /// Runs `work` on a blocking thread holding one slot of the limiter
    /// until it finishes (even if the caller stops waiting).
    async fn limited<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Self) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit = self.limiter.acquire().await?;
        let hasher = self.clone();
        tokio::task::spawn_blocking(move || {
            let out = work(&hasher);
            drop(permit);
            out
        })
        .await
        .map_err(|_| PasswordError::Task)
    }

    /// [`hash`](Self::hash) on a blocking thread, under the limiter
    /// ([`PasswordError::Busy`] when no slot frees up in time).
    pub async fn hash_async(&self, password: &Password) -> Result<PasswordHash, PasswordError> {
        if password.too_long() {
            return Err(PasswordError::TooLong {
                max: MAX_PASSWORD_BYTES,
            });
        }
        let password = password.clone();
        self.limited(move |h| h.hash(&password)).await?
    }

    /// [`verify`](Self::verify) on a blocking thread, under the limiter.
    /// `Ok(false)` is a mismatch; an error ([`PasswordError::Busy`], or a
    /// failed task) means the password was not checked, so it must not
    /// count as a wrong one.
    pub async fn verify_async(
        &self,
        password: &Password,
        hash: &PasswordHash,
    ) -> Result<bool, PasswordError> {
        if password.too_long() {
            return Ok(false);
        }
        let password = password.clone();
        let hash = hash.clone();
        self.limited(move |h| h.verify(&password, &hash))
            .await
            .inspect_err(|e| {
                if matches!(e, PasswordError::Task) {
                    tracing::error!("password verification task failed");
                }
            })
    }

    /// [`verify_dummy`](Self::verify_dummy) on a blocking thread, under the
    /// limiter like a real verification (so unknown users cannot bypass the
    /// bound, and are refused by it alike).
    pub async fn verify_dummy_async(&self, password: &Password) -> Result<bool, PasswordError> {
        if password.too_long() {
            return Ok(false);
        }
        let password = password.clone();
        self.limited(move |h| h.verify_dummy(&password)).await
    }
}
