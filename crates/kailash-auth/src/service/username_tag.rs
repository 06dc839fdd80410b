//! The audit trail's name for a username that is not a user: a keyed
//! HMAC-SHA256, never the text itself.
//!
//! The text may be a password typed into the wrong field, or a megabyte of
//! junk; a plain hash of a username is reversed with a dictionary. The tag
//! is short (`unknown:` and 22 base64url characters, 128 bits of the HMAC)
//! and the same for the same username under the same key, so repeated
//! attempts against one name can still be correlated.
//!
//! The key is derived from the active signing key's private material
//! (HMAC-SHA256 with a fixed label), so every instance sharing the signing
//! key tags alike and nothing new has to be stored or shared; rotating the
//! signing key changes the tags. A key set without private key material
//! (an HS256 secret) gets a random key for the life of the process.

use aws_lc_rs::hmac;
use data_encoding::BASE64URL_NOPAD;

use crate::jwt::KeySet;

/// Label the tag key is derived under.
const LABEL: &[u8] = b"kailash-auth audit username tag v1";
/// HMAC bytes kept in a tag.
const TAG_BYTES: usize = 16;

/// Tags unknown usernames for the audit trail.
pub(super) struct UsernameTags {
    key: hmac::Key,
}

impl UsernameTags {
    /// Keyed from `keys`' signer (see the module documentation).
    pub(super) fn from_keys(keys: &KeySet) -> Self {
        let material = keys
            .signer()
            .and_then(|s| s.to_pkcs8_pem())
            .map(|pem| pem.expose().as_bytes().to_vec());
        let material = material.unwrap_or_else(|| {
            let mut random = vec![0u8; 32];
            if getrandom::fill(&mut random).is_err() {
                // The tag stays an HMAC; only its key is then not secret.
                tracing::error!("no randomness for the audit username-tag key");
            }
            random
        });
        let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, LABEL), &material);
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    /// The tag of a (normalised) username.
    pub(super) fn tag(&self, username: &str) -> String {
        let mac = hmac::sign(&self.key, username.as_bytes());
        let mut tag = String::from("unknown:");
        tag.push_str(&BASE64URL_NOPAD.encode(&mac.as_ref()[..TAG_BYTES]));
        tag
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kailash_core::clock::SystemClock;

    use super::*;
    use crate::jwt::{Algorithm, SigningKey};

    #[test]
    fn tags_are_short_stable_keyed_and_not_the_name() {
        let keys = |k: SigningKey| KeySet::new(k, Arc::new(SystemClock));
        let a =
            UsernameTags::from_keys(&keys(SigningKey::generate(Algorithm::EdDSA, "a").unwrap()));
        let b =
            UsernameTags::from_keys(&keys(SigningKey::generate(Algorithm::EdDSA, "b").unwrap()));
        let huge = "x".repeat(1 << 20);
        let t = a.tag(&huge);
        assert_eq!(t.len(), "unknown:".len() + 22);
        assert_eq!(t, a.tag(&huge));
        assert_ne!(a.tag("mallory"), b.tag("mallory"), "keyed per signing key");
        assert_ne!(a.tag("mallory"), a.tag("mallory2"));
        assert!(!a.tag("mallory").contains("mallory"));
        let hs = UsernameTags::from_keys(&keys(SigningKey::hs256("h", &[7; 32]).unwrap()));
        assert_eq!(hs.tag("x").len(), t.len());
    }
}
