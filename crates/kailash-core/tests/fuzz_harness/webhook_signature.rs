// The `webhook_signature` fuzz harness, shared word for word by the fuzz
// target (`fuzz/fuzz_targets/webhook_signature.rs`) and the stable corpus
// replay in `tests/properties.rs`.
//
// The input's first line is an `X-Kailash-Signature` header as a receiver
// gets it, the rest the body. Invariants: `verify_signature` never panics
// on any header or body; what `sign` makes verifies for that body within
// the window and for no other body, timestamp or secret.

/// Runs one input.
#[allow(dead_code, reason = "each includer calls it from its own entry point")]
fn webhook_signature_harness(bytes: &[u8]) {
    use kailash_core::webhook::{SignatureError, sign, verify_signature};
    use std::time::Duration;

    const SECRET: &[u8] = b"fuzz-secret-0123456789abcdef0123";
    const NOW: i64 = 1_764_806_400;
    const WINDOW: Duration = Duration::from_secs(300);
    let (header, body) = match bytes.iter().position(|&b| b == b'\n') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &b""[..]),
    };
    let header = String::from_utf8_lossy(header);
    // Whatever the input: an answer, never a panic.
    let _ = verify_signature(SECRET, &header, body, NOW, WINDOW);
    // A signature made now holds for this body, and only for it.
    let t = NOW - 299 + i64::try_from(body.len() % 599).unwrap_or(0);
    let made = sign(SECRET, t, body);
    assert_eq!(verify_signature(SECRET, &made, body, NOW, WINDOW), Ok(()));
    assert_eq!(
        verify_signature(b"another-secret-0123456789abcdef", &made, body, NOW, WINDOW),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(SECRET, &made, body, NOW + 601, WINDOW),
        Err(SignatureError::Stale)
    );
    let mut other = body.to_vec();
    other.push(b'x');
    assert_eq!(
        verify_signature(SECRET, &made, &other, NOW, WINDOW),
        Err(SignatureError::Mismatch)
    );
}
