//! Random identifiers (session ids, refresh families and generations,
//! token ids): 192 bits from the OS, base64url without padding.

use data_encoding::BASE64URL_NOPAD;

/// Random bytes in an id.
const ID_BYTES: usize = 24;
/// The longest id accepted from a client.
const MAX_ID_LEN: usize = 128;

/// A new random id; `None` when the OS cannot supply randomness (callers
/// fail closed: an id is a bearer-adjacent secret, never guessable).
pub(crate) fn random() -> Option<String> {
    let mut bytes = [0u8; ID_BYTES];
    getrandom::fill(&mut bytes).ok()?;
    Some(BASE64URL_NOPAD.encode(&bytes))
}

/// Whether a client-supplied `id` could be one of ours (bounded, base64url
/// alphabet), checked before it reaches a state key.
pub(crate) fn is_valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
