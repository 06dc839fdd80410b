use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;

/// The header carrying the request id, in both directions.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest incoming request id accepted.
const MAX_LEN: usize = 128;

/// A request id. Cheap to clone; safe to put in a header or a log line.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// Accepts an incoming id when it is 1–128 characters of
    /// `[A-Za-z0-9._:-]` (nothing that could forge a log line).
    pub fn parse(value: &HeaderValue) -> Option<Self> {
        let bytes = value.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= MAX_LEN
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        ok.then(|| Self(value.clone()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ever built from validated ASCII.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.as_str())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Generates unique request ids without a system call per request: a random
/// 64-bit instance prefix (read once) and a counter, as 32 hex digits.
/// Ids are unique, not secret.
#[derive(Debug)]
pub struct RequestIdGenerator {
    prefix: u64,
    counter: AtomicU64,
}

impl Default for RequestIdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestIdGenerator {
    /// A generator with a random instance prefix.
    pub fn new() -> Self {
        let mut bytes = [0u8; 16];
        // If the OS cannot give randomness, fall back to time and pid: ids
        // only need to be unique, and that still separates instances.
        let (prefix, start) = match getrandom::fill(&mut bytes) {
            Ok(()) => {
                let (a, b) = bytes.split_at(8);
                (
                    u64::from_le_bytes(a.try_into().unwrap_or_default()),
                    u64::from_le_bytes(b.try_into().unwrap_or_default()),
                )
            }
            Err(_) => (
                jiff::Timestamp::now().as_nanosecond() as u64 ^ u64::from(std::process::id()),
                0,
            ),
        };
        Self {
            prefix,
            counter: AtomicU64::new(start),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> RequestId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 32];
        hex(self.prefix, &mut buf[..16]);
        hex(n, &mut buf[16..]);
        // 32 lowercase hex digits are always a valid header value.
        RequestId(HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("0")))
    }
}

fn hex(mut v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_hex() {
        let g = RequestIdGenerator::new();
        let a = g.next_id();
        let b = g.next_id();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(&a.as_str()[..16], &b.as_str()[..16], "same instance prefix");
    }

    #[test]
    fn incoming_ids_are_validated() {
        assert!(RequestId::parse(&HeaderValue::from_static("abc-123_x.y:z")).is_some());
        assert!(RequestId::parse(&HeaderValue::from_static("")).is_none());
        assert!(RequestId::parse(&HeaderValue::from_static("has space")).is_none());
        assert!(RequestId::parse(&HeaderValue::from_static("quote\"")).is_none());
        let long = "a".repeat(MAX_LEN + 1);
        assert!(RequestId::parse(&HeaderValue::from_str(&long).unwrap()).is_none());
    }
}
