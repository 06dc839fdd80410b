//! Time-based one-time passwords (RFC 6238), replay protection and recovery codes.
//!
//! * [`TotpSecret`]: the shared secret (20 random bytes by default), shown to
//!   users as unpadded base32; `Debug` is redacted.
//! * [`TotpConfig`]: digits, period, allowed clock skew and HMAC algorithm
//!   (defaults: 6 digits, 30 s, ±1 step, SHA-1 — what authenticator apps
//!   expect); computes ([`code_at`](TotpConfig::code_at)) and checks
//!   ([`verify`](TotpConfig::verify)) codes, and builds the `otpauth://` URI
//!   for enrolment ([`provisioning_uri`](TotpConfig::provisioning_uri)).
//! * [`TotpGuard`]: verification that accepts each code at most once, across
//!   gateway instances, by recording the matched step in the shared state.
//! * [`RecoveryCodes`]: one-time backup codes, stored as SHA-256 hashes.
//!
//! ```
//! use kailash_auth::totp::{TotpConfig, TotpSecret};
//!
//! let secret = TotpSecret::generate()?;
//! let config = TotpConfig::default();
//! let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
//! let code = config.code_at(&secret, now.as_second() as u64);
//! assert_eq!(config.verify(&secret, &code, now), Some(1_700_000_000 / 30));
//! assert_eq!(config.verify(&secret, "not-a-code", now), None);
//! # Ok::<(), kailash_auth::totp::TotpError>(())
//! ```

mod guard;
mod recovery;

use std::fmt;

use aws_lc_rs::hmac;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use subtle::{ConditionallySelectable, ConstantTimeEq};

pub use guard::{TotpCheck, TotpGuard, USED_STEP_NAMESPACE};
pub use recovery::{DEFAULT_RECOVERY_CODES, MAX_RECOVERY_CODES, RecoveryCode, RecoveryCodes};

/// Length of a generated secret in bytes (160 bits, as RFC 4226 recommends).
pub const DEFAULT_SECRET_LEN: usize = 20;
/// The shortest secret accepted: 80 bits, the length many authenticator
/// deployments (and the classic `JBSWY3DPEHPK3PXP` example) use. RFC 4226
/// asks for at least 128; secrets generated here are always 160 bits, so
/// the shorter minimum only lets existing enrolments be imported.
pub const MIN_SECRET_LEN: usize = 10;
/// The longest secret accepted.
pub const MAX_SECRET_LEN: usize = 64;

/// Why a TOTP operation failed. Messages never contain a secret or code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TotpError {
    /// A secret is not valid base32 (RFC 4648 alphabet).
    #[error("TOTP secret is not valid base32")]
    InvalidBase32,
    /// A secret is shorter than [`MIN_SECRET_LEN`] or longer than [`MAX_SECRET_LEN`] bytes.
    #[error("TOTP secret must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} bytes")]
    InvalidSecretLength,
    /// A configuration value is out of range.
    #[error("invalid TOTP configuration: {0}")]
    InvalidConfig(&'static str),
    /// The operating system's random number generator failed.
    #[error("random number generator failed")]
    Rng,
    /// The shared state failed; the caller must treat the attempt as failed.
    #[error(transparent)]
    State(#[from] kailash_core::state::StateError),
}

/// A TOTP shared secret.
///
/// `Debug` prints `TotpSecret(***)`. Use [`to_base32`](Self::to_base32) to
/// show it to the user once at enrolment and [`as_bytes`](Self::as_bytes) to
/// store it (encrypted).
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// A new secret of [`DEFAULT_SECRET_LEN`] bytes from the OS random number generator.
    pub fn generate() -> Result<Self, TotpError> {
        let mut bytes = vec![0u8; DEFAULT_SECRET_LEN];
        getrandom::fill(&mut bytes).map_err(|_| TotpError::Rng)?;
        Ok(Self(bytes))
    }

    /// A secret from raw bytes ([`MIN_SECRET_LEN`] to [`MAX_SECRET_LEN`]).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Self, TotpError> {
        let bytes = bytes.into();
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&bytes.len()) {
            return Err(TotpError::InvalidSecretLength);
        }
        Ok(Self(bytes))
    }

    /// A secret from base32 (RFC 4648). Case, spaces and trailing `=`
    /// padding are ignored; anything else outside the alphabet, or a length
    /// that is not a whole number of bytes, is refused.
    pub fn from_base32(text: &str) -> Result<Self, TotpError> {
        if text.len() > 4 * MAX_SECRET_LEN {
            return Err(TotpError::InvalidSecretLength);
        }
        let cleaned: String = text
            .chars()
            .filter(|c| *c != ' ')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let cleaned = cleaned.trim_end_matches('=');
        let bytes = data_encoding::BASE32_NOPAD
            .decode(cleaned.as_bytes())
            .map_err(|_| TotpError::InvalidBase32)?;
        Self::from_bytes(bytes)
    }

    /// Unpadded upper-case base32, as authenticator apps expect.
    pub fn to_base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(&self.0)
    }

    /// The raw secret.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(***)")
    }
}

/// The HMAC algorithm of a TOTP configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TotpAlgorithm {
    /// HMAC-SHA-1 (the default, and the only one many authenticator apps support).
    #[default]
    #[serde(rename = "SHA1")]
    Sha1,
    /// HMAC-SHA-256.
    #[serde(rename = "SHA256")]
    Sha256,
    /// HMAC-SHA-512.
    #[serde(rename = "SHA512")]
    Sha512,
}

impl TotpAlgorithm {
    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }

    /// The name used in `otpauth://` URIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

/// TOTP parameters.
///
/// Deserializes from configuration (`digits`, `period_secs`, `skew_steps`,
/// `algorithm`; unknown fields refused, missing ones default; values are
/// range-checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawConfig")]
pub struct TotpConfig {
    digits: u32,
    period_secs: u64,
    skew_steps: u32,
    algorithm: TotpAlgorithm,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    digits: u32,
    period_secs: u64,
    skew_steps: u32,
    algorithm: TotpAlgorithm,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            digits: 6,
            period_secs: 30,
            skew_steps: 1,
            algorithm: TotpAlgorithm::Sha1,
        }
    }
}

impl TryFrom<RawConfig> for TotpConfig {
    type Error = TotpError;
    fn try_from(r: RawConfig) -> Result<Self, Self::Error> {
        Self::new(r.digits, r.period_secs, r.skew_steps, r.algorithm)
    }
}

impl Default for TotpConfig {
    /// 6 digits, 30 seconds, ±1 step, SHA-1.
    fn default() -> Self {
        Self {
            digits: 6,
            period_secs: 30,
            skew_steps: 1,
            algorithm: TotpAlgorithm::Sha1,
        }
    }
}

impl TotpConfig {
    /// A configuration: 6 to 8 `digits`, a period of 1 to 3600 seconds and
    /// at most 10 steps of skew either way.
    pub fn new(
        digits: u32,
        period_secs: u64,
        skew_steps: u32,
        algorithm: TotpAlgorithm,
    ) -> Result<Self, TotpError> {
        if !(6..=8).contains(&digits) {
            return Err(TotpError::InvalidConfig("digits must be 6, 7 or 8"));
        }
        if !(1..=3600).contains(&period_secs) {
            return Err(TotpError::InvalidConfig(
                "period_secs must be between 1 and 3600",
            ));
        }
        if skew_steps > 10 {
            return Err(TotpError::InvalidConfig("skew_steps must be at most 10"));
        }
        Ok(Self {
            digits,
            period_secs,
            skew_steps,
            algorithm,
        })
    }

    /// Digits per code.
    pub fn digits(&self) -> u32 {
        self.digits
    }

    /// Seconds per step.
    pub fn period_secs(&self) -> u64 {
        self.period_secs
    }

    /// Steps of clock skew accepted either way.
    pub fn skew_steps(&self) -> u32 {
        self.skew_steps
    }

    /// The HMAC algorithm.
    pub fn algorithm(&self) -> TotpAlgorithm {
        self.algorithm
    }

    /// The time step containing `unix_time` (seconds since the epoch).
    pub fn step_at(&self, unix_time: u64) -> u64 {
        unix_time / self.period_secs.max(1)
    }

    /// The code for the step containing `unix_time` (seconds since the epoch).
    pub fn code_at(&self, secret: &TotpSecret, unix_time: u64) -> String {
        self.code_at_step(secret, self.step_at(unix_time))
    }

    /// The code for time step `step` (RFC 4226 HOTP with counter `step`).
    pub fn code_at_step(&self, secret: &TotpSecret, step: u64) -> String {
        let digits = self.digits.clamp(6, 8);
        let modulus = 10u64.pow(digits);
        let value = u64::from(hotp(self.algorithm, secret.as_bytes(), step)) % modulus;
        format!("{value:0width$}", width = digits as usize)
    }

    /// Checks `code` at `now`, allowing the configured skew.
    ///
    /// Returns the matched time step, or `None` when the code is not exactly
    /// [`digits`](Self::digits) ASCII digits or matches no step in the
    /// window. Every candidate step is computed and compared in constant
    /// time. This does not stop replays; use [`TotpGuard`] for logins.
    pub fn verify(&self, secret: &TotpSecret, code: &str, now: Timestamp) -> Option<u64> {
        let digits = self.digits.clamp(6, 8) as usize;
        if code.len() != digits || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = u64::try_from(now.as_second()).ok()?;
        let current = self.step_at(now);
        let skew = u64::from(self.skew_steps);
        let first = current.saturating_sub(skew);
        let last = current.saturating_add(skew);
        let mut found = subtle::Choice::from(0);
        let mut matched = 0u64;
        for step in first..=last {
            let candidate = self.code_at_step(secret, step);
            let eq = candidate.as_bytes().ct_eq(code.as_bytes());
            // Keep the first match (the earliest step) without branching.
            let take = eq & !found;
            matched = u64::conditional_select(&matched, &step, take);
            found |= eq;
        }
        if bool::from(found) {
            Some(matched)
        } else {
            None
        }
    }

    /// The `otpauth://totp/…` URI authenticator apps read (usually as a QR
    /// code) at enrolment.
    ///
    /// `issuer` (your service) and `account` (the user's name or e-mail) are
    /// percent-encoded; only RFC 3986 unreserved characters are left as-is.
    pub fn provisioning_uri(&self, secret: &TotpSecret, issuer: &str, account: &str) -> String {
        let issuer = percent_encode(issuer);
        format!(
            "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm={alg}&digits={digits}&period={period}",
            account = percent_encode(account),
            secret = secret.to_base32(),
            alg = self.algorithm.as_str(),
            digits = self.digits,
            period = self.period_secs,
        )
    }
}

/// RFC 4226 HOTP value before reduction modulo 10^digits (dynamic truncation).
fn hotp(algorithm: TotpAlgorithm, secret: &[u8], counter: u64) -> u32 {
    let key = hmac::Key::new(algorithm.hmac(), secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    let offset = mac.last().map_or(0, |b| usize::from(b & 0x0f));
    match mac.get(offset..offset + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a & 0x7f, b, c, d]),
        // Unreachable for SHA-1/256/512 outputs (offset <= 15, length >= 20).
        _ => 0,
    }
}

/// Percent-encodes every byte except RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_leaves_only_unreserved() {
        assert_eq!(percent_encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(percent_encode("a b:c@d/é"), "a%20b%3Ac%40d%2F%C3%A9");
    }
}
