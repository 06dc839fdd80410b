//! Signed webhooks: the `X-Kailash-Signature` scheme the gateway's
//! outgoing webhooks (billing reports) carry, and its check for receivers.
//!
//! `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: the
//! timestamp is signed with the body, so a receiver that refuses a `t`
//! outside its replay window (five minutes is usual) refuses replays too.
//!
//! ```
//! use kailash_core::webhook::{sign, verify_signature};
//! use std::time::Duration;
//!
//! let secret = b"0123456789abcdef0123456789abcdef";
//! let body = br#"{"type":"billing.usage"}"#;
//! let header = sign(secret, 1_764_806_400, body);
//! assert!(header.starts_with("t=1764806400,v1="));
//! assert!(verify_signature(secret, &header, body, 1_764_806_460, Duration::from_secs(300)).is_ok());
//! // Another body, another secret or an old timestamp is refused.
//! assert!(verify_signature(secret, &header, b"{}", 1_764_806_460, Duration::from_secs(300)).is_err());
//! assert!(verify_signature(b"another secret of thirty-two b..", &header, body, 1_764_806_460, Duration::from_secs(300)).is_err());
//! assert!(verify_signature(secret, &header, body, 1_764_807_400, Duration::from_secs(300)).is_err());
//! ```

use std::time::Duration;

use aws_lc_rs::hmac;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-kailash-signature";

/// The longest signature header [`verify_signature`] reads.
pub const MAX_SIGNATURE_HEADER: usize = 256;

/// `X-Kailash-Signature` for `body` sent at `timestamp` (Unix seconds):
/// `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let mut hex = String::with_capacity(64);
    for b in tag.as_ref() {
        hex.push_str(&format!("{b:02x}"));
    }
    format!("t={timestamp},v1={hex}")
}

/// Why [`verify_signature`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The header is not `t=<digits>,v1=<64 hex digits>`.
    #[error("the signature header is malformed")]
    Malformed,
    /// `t` is further than the tolerance from now (a replay, or clocks apart).
    #[error("the signature's timestamp is outside the replay window")]
    Stale,
    /// The HMAC does not match.
    #[error("the signature does not match")]
    Mismatch,
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks `header` (an `X-Kailash-Signature` value) for `body` under
/// `secret`, received at `now` (Unix seconds), allowing `tolerance` between
/// the two clocks. The MAC comparison is constant-time.
///
/// # Errors
///
/// [`SignatureError`]: malformed, stale or not matching.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    if header.len() > MAX_SIGNATURE_HEADER {
        return Err(SignatureError::Malformed);
    }
    let (mut t, mut v1) = (None, None);
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) if t.is_none() => t = Some(v),
            Some(("v1", v)) if v1.is_none() => v1 = Some(v),
            _ => return Err(SignatureError::Malformed),
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return Err(SignatureError::Malformed);
    };
    if t.is_empty() || t.len() > 18 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed);
    }
    let timestamp: i64 = t.parse().map_err(|_| SignatureError::Malformed)?;
    let tag = unhex(v1)
        .filter(|tag| tag.len() == 32)
        .ok_or(SignatureError::Malformed)?;
    if now.abs_diff(timestamp) > tolerance.as_secs() {
        return Err(SignatureError::Stale);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut message = Vec::with_capacity(t.len() + 1 + body.len());
    message.extend_from_slice(t.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    hmac::verify(&key, &message, &tag).map_err(|_| SignatureError::Mismatch)
}
