//! Signed checkpoints: Ed25519 signatures over the chain's head at a
//! sequence number, stored outside the trail (`kailash_audit_checkpoint`).
//!
//! The signed message is the ASCII text
//! `kailash-audit-checkpoint/1\n{seq}\n{at_ms}\n{base64url(hash)}`. Someone
//! who can write the database but does not hold the private key can
//! rewrite entries and recompute every hash after them, but cannot sign a
//! checkpoint over the rewritten chain: `verify` names the checkpoint that
//! no longer matches.
//!
//! ```
//! use kailash_postgres::audit::{CheckpointKey, VerifyingKey};
//!
//! let key = CheckpointKey::generate().unwrap();
//! let public = VerifyingKey::from_pem(&key.public_key_pem()).unwrap();
//! assert_eq!(public.key_id(), key.key_id());
//! let signature = key.sign(7, 1_700_000_000_000, &[1; 32]);
//! assert!(public.verify(7, 1_700_000_000_000, &[1; 32], &signature));
//! assert!(!public.verify(8, 1_700_000_000_000, &[1; 32], &signature));
//! ```

use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use kailash_core::audit::entry::ChainHash;

/// The DER prefix of an Ed25519 `SubjectPublicKeyInfo` (RFC 8410); the 32
/// key bytes follow.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Why a key could not be read. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not PEM, or not the expected block.
    #[error("expected a PEM `{0}` block")]
    NotPem(&'static str),
    /// The block does not hold an Ed25519 key.
    #[error("not an Ed25519 key")]
    NotEd25519,
    /// The system's random source failed.
    #[error("could not generate a key")]
    Rng,
}

fn message(seq: u64, at_ms: i64, hash: &ChainHash) -> Vec<u8> {
    format!(
        "kailash-audit-checkpoint/1\n{seq}\n{at_ms}\n{}",
        data_encoding::BASE64URL_NOPAD.encode(hash)
    )
    .into_bytes()
}

/// The first 8 bytes of SHA-256 of the public key, base64url: names the
/// key a checkpoint was signed with.
fn key_id_of(public: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public);
    data_encoding::BASE64URL_NOPAD.encode(&digest.as_ref()[..8])
}

fn pem_block(text: &str, label: &'static str) -> Result<Vec<u8>, KeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin).ok_or(KeyError::NotPem(label))? + begin.len();
    let stop = text[start..].find(&end).ok_or(KeyError::NotPem(label))? + start;
    let b64: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    data_encoding::BASE64
        .decode(b64.as_bytes())
        .map_err(|_| KeyError::NotPem(label))
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = data_encoding::BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The private key that signs checkpoints. Its `Debug` shows only the key id.
pub struct CheckpointKey {
    pair: Ed25519KeyPair,
    pkcs8: Option<Vec<u8>>,
    key_id: String,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl CheckpointKey {
    /// Reads a PKCS#8 `PRIVATE KEY` PEM block (what
    /// `openssl genpkey -algorithm ed25519` writes).
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let der = pem_block(text, "PRIVATE KEY")?;
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|_| KeyError::NotEd25519)?;
        let key_id = key_id_of(pair.public_key().as_ref());
        Ok(Self {
            pair,
            pkcs8: Some(der),
            key_id,
        })
    }

    /// A new random key.
    pub fn generate() -> Result<Self, KeyError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Rng)?;
        let mut key = Self::from_pem(&pem("PRIVATE KEY", doc.as_ref()))?;
        key.pkcs8 = Some(doc.as_ref().to_vec());
        Ok(key)
    }

    /// The private key as PKCS#8 PEM (to store a generated key).
    pub fn private_key_pem(&self) -> Option<String> {
        self.pkcs8.as_ref().map(|der| pem("PRIVATE KEY", der))
    }

    /// The public key as a `PUBLIC KEY` PEM block, for `verify`.
    pub fn public_key_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.pair.public_key().as_ref());
        pem("PUBLIC KEY", &der)
    }

    /// The key's id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs the checkpoint of the chain at `seq`.
    pub fn sign(&self, seq: u64, at_ms: i64, hash: &ChainHash) -> Vec<u8> {
        self.pair.sign(&message(seq, at_ms, hash)).as_ref().to_vec()
    }
}

/// A public key that checks checkpoint signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    public: [u8; 32],
    key_id: String,
}

impl VerifyingKey {
    /// Reads a `PUBLIC KEY` PEM block (Ed25519 `SubjectPublicKeyInfo`), or
    /// takes the public half of a `PRIVATE KEY` block.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        if text.contains("PRIVATE KEY") {
            let key = CheckpointKey::from_pem(text)?;
            return Self::from_raw(key.pair.public_key().as_ref());
        }
        let der = pem_block(text, "PUBLIC KEY")?;
        let raw = der
            .strip_prefix(&SPKI_PREFIX[..])
            .ok_or(KeyError::NotEd25519)?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: &[u8]) -> Result<Self, KeyError> {
        let public: [u8; 32] = raw.try_into().map_err(|_| KeyError::NotEd25519)?;
        Ok(Self {
            key_id: key_id_of(&public),
            public,
        })
    }

    /// The key's id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Whether `signature` signs the checkpoint at `seq`.
    pub fn verify(&self, seq: u64, at_ms: i64, hash: &ChainHash, signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&signature::ED25519, &self.public)
            .verify(&message(seq, at_ms, hash), signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pem_and_refuse_garbage() {
        let key = CheckpointKey::generate().unwrap();
        let again = CheckpointKey::from_pem(&key.private_key_pem().unwrap()).unwrap();
        assert_eq!(again.key_id(), key.key_id());
        let from_private = VerifyingKey::from_pem(&key.private_key_pem().unwrap()).unwrap();
        assert_eq!(
            from_private,
            VerifyingKey::from_pem(&key.public_key_pem()).unwrap()
        );
        let sig = key.sign(1, 2, &[3; 32]);
        assert!(from_private.verify(1, 2, &[3; 32], &sig));
        assert!(!from_private.verify(1, 2, &[4; 32], &sig));
        assert!(!from_private.verify(1, 3, &[3; 32], &sig));
        let other =
            VerifyingKey::from_pem(&CheckpointKey::generate().unwrap().public_key_pem()).unwrap();
        assert!(!other.verify(1, 2, &[3; 32], &sig));
        assert_eq!(
            CheckpointKey::from_pem("nonsense").unwrap_err(),
            KeyError::NotPem("PRIVATE KEY")
        );
        let rsa_like = pem("PUBLIC KEY", &[0x30, 0x03, 0x02, 0x01, 0x00]);
        assert_eq!(
            VerifyingKey::from_pem(&rsa_like).unwrap_err(),
            KeyError::NotEd25519
        );
        assert!(!format!("{key:?}").contains("BEGIN"));
    }

    /// A key in the form `openssl genpkey -algorithm ed25519` writes
    /// (PKCS#8 v1, no public key inside) reads.
    #[test]
    fn an_openssl_key_reads() {
        let openssl = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAa8vXQk4wK6yi2pK3bN4tvG9JwBbVZ4C2fP9o0yQ2xk\n-----END PRIVATE KEY-----\n";
        let key = CheckpointKey::from_pem(openssl).unwrap();
        let public = VerifyingKey::from_pem(&key.public_key_pem()).unwrap();
        assert!(public.verify(9, 9, &[9; 32], &key.sign(9, 9, &[9; 32])));
    }
}
