//! Envelope encryption: data encrypted with AES-256-GCM under a *data key*,
//! each data key stored only *wrapped* (itself encrypted with AES-256-GCM)
//! by a *key-encryption key* (KEK) that carries an id.
//!
//! Data keys are small and many (one per person whose data is kept, for
//! instance); KEKs are few and live outside the data store, in a
//! [`Keyring`] read from a file or the environment, or in a KMS behind
//! [`KeyProvider`]. Rotating the KEK means adding a new one as the active
//! key and re-wrapping the stored data keys ([`KeyProvider::rewrap`]); the
//! data itself is never re-encrypted, and old KEK ids keep unwrapping until
//! every data key has moved. Deleting a data key makes everything sealed
//! under it unreadable for good (crypto-shredding).
//!
//! Every sealed value and wrapped key is bound to a caller-chosen context
//! (AES-GCM's additional data): a ciphertext moved to another record, or a
//! wrapped key moved to another owner, fails to open with
//! [`EnvelopeError::Tampered`] instead of decrypting.
//!
//! ```
//! use kailash_core::envelope::{DataKey, KeyProvider, Keyring};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), kailash_core::envelope::EnvelopeError> {
//! // A keyring file has one `id base64(32 bytes)` line per KEK; the last is active.
//! let keyring = Keyring::parse(&format!("2026-01 {}\n", Keyring::generate_key()?))?;
//!
//! let data_key = DataKey::generate()?;
//! let sealed = data_key.seal(b"alice@example.com", b"row 17")?;
//! let wrapped = keyring.wrap(&data_key, b"subject alice").await?;
//!
//! // Later: unwrap with whichever KEK wrapped it, then open.
//! let again = keyring.unwrap(&wrapped, b"subject alice").await?;
//! assert_eq!(again.open(&sealed, b"row 17")?, b"alice@example.com");
//! // The wrong context is refused, never garbage.
//! assert!(again.open(&sealed, b"row 18").is_err());
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use data_encoding::BASE64;

/// Bytes in a key (AES-256).
pub const KEY_LEN: usize = 32;
/// Bytes a sealed value adds to its plaintext (nonce and tag).
pub const OVERHEAD: usize = NONCE_LEN + 16;
/// The most KEKs a keyring holds.
pub const MAX_KEYS: usize = 256;
/// The largest keyring text accepted.
pub const MAX_KEYRING_BYTES: usize = 64 * 1024;
/// The longest KEK id.
pub const MAX_KEY_ID_LEN: usize = 64;

/// Why a key could not be used or a value could not be opened. Never
/// carries key material or plaintext.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// A wrapped key names a KEK the keyring does not hold.
    #[error("unknown key-encryption key id {0:?}")]
    UnknownKey(String),
    /// The ciphertext, its context or the key is not the one it was sealed
    /// with: altered, moved, or the wrong key.
    #[error("the ciphertext does not open: altered, moved or under another key")]
    Tampered,
    /// A keyring text is not valid (the message names the line).
    #[error("keyring: {0}")]
    Keyring(String),
    /// The system's random source failed.
    #[error("the system random source failed")]
    Random,
    /// A key provider (a KMS, say) could not be reached.
    #[error("key provider: {0}")]
    Provider(String),
}

fn random<const N: usize>() -> Result<[u8; N], EnvelopeError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| EnvelopeError::Random)?;
    Ok(bytes)
}

fn aead_key(raw: &[u8; KEY_LEN]) -> LessSafeKey {
    // A 32-byte slice is always a valid AES-256 key.
    #[allow(clippy::expect_used)]
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, raw).expect("a 32-byte AES-256 key"))
}

fn seal_with(
    key: &LessSafeKey,
    plaintext: &[u8],
    context: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let nonce = random::<NONCE_LEN>()?;
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let mut body = out.split_off(NONCE_LEN);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(context),
        &mut body,
    )
    .map_err(|_| EnvelopeError::Tampered)?;
    out.extend_from_slice(&body);
    Ok(out)
}

fn open_with(key: &LessSafeKey, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    if sealed.len() < OVERHEAD {
        return Err(EnvelopeError::Tampered);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| EnvelopeError::Tampered)?;
    let mut body = body.to_vec();
    let len = key
        .open_in_place(nonce, Aad::from(context), &mut body)
        .map_err(|_| EnvelopeError::Tampered)?
        .len();
    body.truncate(len);
    Ok(body)
}

/// A data key: seals and opens values (AES-256-GCM, a random 96-bit nonce
/// per value, so keep it under about 2³² values per key — one key per
/// person or record is far below that).
pub struct DataKey {
    raw: [u8; KEY_LEN],
    key: LessSafeKey,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.raw = [0; KEY_LEN];
        std::hint::black_box(&self.raw);
    }
}

impl DataKey {
    /// A new random data key.
    pub fn generate() -> Result<Self, EnvelopeError> {
        Ok(Self::from_bytes(random::<KEY_LEN>()?))
    }

    fn from_bytes(raw: [u8; KEY_LEN]) -> Self {
        Self {
            key: aead_key(&raw),
            raw,
        }
    }

    /// `nonce ‖ ciphertext ‖ tag` of `plaintext`, bound to `context`.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        seal_with(&self.key, plaintext, context)
    }

    /// A keyed pseudonym of `message` (HMAC-SHA256 under a key derived
    /// from this one, so the same data key can seal values and index them
    /// without using one key with two algorithms): equal messages give
    /// equal pseudonyms, and nobody without the key can test a guess.
    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        use aws_lc_rs::hmac;
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &self.raw),
            b"kailash-envelope-mac-v1",
        );
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            message,
        );
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// The plaintext of a value [`seal`](Self::seal)ed under this key and
    /// `context`; [`EnvelopeError::Tampered`] otherwise.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        open_with(&self.key, sealed, context)
    }
}

/// A data key as stored: sealed under the KEK `kek_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The KEK that wrapped it.
    pub kek_id: String,
    /// `nonce ‖ encrypted key ‖ tag`.
    pub bytes: Vec<u8>,
}

/// A key-encryption key with its id.
pub struct Kek {
    id: String,
    key: LessSafeKey,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Kek {
    /// A KEK from its id and 32 key bytes.
    pub fn new(id: impl Into<String>, raw: [u8; KEY_LEN]) -> Result<Self, EnvelopeError> {
        let id = id.into();
        check_id(&id)?;
        Ok(Self {
            key: aead_key(&raw),
            id,
        })
    }

    /// Its id (stored beside every key it wraps).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `data_key` wrapped under this KEK, bound to `context`.
    pub fn wrap(&self, data_key: &DataKey, context: &[u8]) -> Result<WrappedKey, EnvelopeError> {
        Ok(WrappedKey {
            kek_id: self.id.clone(),
            bytes: seal_with(&self.key, &data_key.raw, &wrap_context(&self.id, context))?,
        })
    }

    /// The data key in `wrapped` (which must name this KEK).
    pub fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<DataKey, EnvelopeError> {
        if wrapped.kek_id != self.id {
            return Err(EnvelopeError::UnknownKey(wrapped.kek_id.clone()));
        }
        let raw = open_with(&self.key, &wrapped.bytes, &wrap_context(&self.id, context))?;
        let raw: [u8; KEY_LEN] = raw.try_into().map_err(|_| EnvelopeError::Tampered)?;
        Ok(DataKey::from_bytes(raw))
    }
}

/// The KEK id is part of what a wrapped key is bound to, so a wrapped key
/// relabelled with another id never opens.
fn wrap_context(kek_id: &str, context: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(kek_id.len() + 1 + context.len());
    out.extend_from_slice(kek_id.as_bytes());
    out.push(0);
    out.extend_from_slice(context);
    out
}

fn check_id(id: &str) -> Result<(), EnvelopeError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if ok {
        Ok(())
    } else {
        Err(EnvelopeError::Keyring(format!(
            "a key id is 1 to {MAX_KEY_ID_LEN} of A-Z a-z 0-9 . _ - :"
        )))
    }
}

/// Where KEKs come from: a [`Keyring`] (file or environment), or a KMS a
/// user plugs in. Wrapping always uses the active KEK; unwrapping uses the
/// one the wrapped key names. Its `Debug` output must not show key
/// material (ids are fine).
#[async_trait]
pub trait KeyProvider: std::fmt::Debug + Send + Sync + 'static {
    /// The id of the KEK new keys are wrapped with.
    fn active_id(&self) -> String;

    /// `data_key` wrapped under the active KEK, bound to `context`.
    async fn wrap(&self, data_key: &DataKey, context: &[u8]) -> Result<WrappedKey, EnvelopeError>;

    /// The data key in `wrapped`, under the KEK it names.
    async fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<DataKey, EnvelopeError>;

    /// `wrapped` under the active KEK, or `None` when it already is: what
    /// a rotation job runs over every stored key.
    async fn rewrap(
        &self,
        wrapped: &WrappedKey,
        context: &[u8],
    ) -> Result<Option<WrappedKey>, EnvelopeError> {
        if wrapped.kek_id == self.active_id() {
            return Ok(None);
        }
        let key = self.unwrap(wrapped, context).await?;
        self.wrap(&key, context).await.map(Some)
    }
}

/// KEKs held in memory, read from text with one `id base64(32 bytes)` per
/// line (`#` starts a comment); the **last** key is the active one. To
/// rotate, append a new line and restart: old ids keep unwrapping until
/// their keys are re-wrapped, then their lines can go.
pub struct Keyring {
    keys: HashMap<String, Arc<Kek>>,
    active: Arc<Kek>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active.id)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Keyring {
    /// A keyring of one KEK.
    pub fn single(kek: Kek) -> Self {
        let kek = Arc::new(kek);
        Self {
            keys: HashMap::from([(kek.id.clone(), kek.clone())]),
            active: kek,
        }
    }

    /// Parses keyring text (see the type's docs). Errors name the line,
    /// never a key.
    pub fn parse(text: &str) -> Result<Self, EnvelopeError> {
        if text.len() > MAX_KEYRING_BYTES {
            return Err(EnvelopeError::Keyring(format!(
                "more than {MAX_KEYRING_BYTES} bytes"
            )));
        }
        let mut keys = HashMap::new();
        let mut active = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let at = |what: &str| EnvelopeError::Keyring(format!("line {}: {what}", n + 1));
            let mut parts = line.split_whitespace();
            let (Some(id), Some(b64), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(at("expected `id base64-key`"));
            };
            check_id(id).map_err(|_| at("invalid key id"))?;
            let raw = BASE64
                .decode(b64.as_bytes())
                .map_err(|_| at("the key is not base64"))?;
            let raw: [u8; KEY_LEN] = raw.try_into().map_err(|_| at("the key is not 32 bytes"))?;
            let kek = Arc::new(Kek::new(id, raw)?);
            if keys.insert(id.to_owned(), kek.clone()).is_some() {
                return Err(at("the key id appears twice"));
            }
            if keys.len() > MAX_KEYS {
                return Err(at("too many keys"));
            }
            active = Some(kek);
        }
        let active = active.ok_or_else(|| EnvelopeError::Keyring("no key".into()))?;
        Ok(Self { keys, active })
    }

    /// Reads a keyring file. The error names the file, never its content.
    pub fn from_file(path: &Path) -> Result<Self, EnvelopeError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| EnvelopeError::Keyring(format!("{}: {e}", path.display())))?;
        if meta.len() > MAX_KEYRING_BYTES as u64 {
            return Err(EnvelopeError::Keyring(format!(
                "{}: more than {MAX_KEYRING_BYTES} bytes",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| EnvelopeError::Keyring(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| match e {
            EnvelopeError::Keyring(m) => EnvelopeError::Keyring(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// A fresh random key in the keyring's base64 form (for a new line).
    pub fn generate_key() -> Result<String, EnvelopeError> {
        Ok(BASE64.encode(&random::<KEY_LEN>()?))
    }

    /// The active KEK.
    pub fn active(&self) -> &Kek {
        &self.active
    }

    /// The KEK with `id`.
    pub fn get(&self, id: &str) -> Option<&Kek> {
        self.keys.get(id).map(|k| &**k)
    }
}

#[async_trait]
impl KeyProvider for Keyring {
    fn active_id(&self) -> String {
        self.active.id.clone()
    }

    async fn wrap(&self, data_key: &DataKey, context: &[u8]) -> Result<WrappedKey, EnvelopeError> {
        self.active.wrap(data_key, context)
    }

    async fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<DataKey, EnvelopeError> {
        self.get(&wrapped.kek_id)
            .ok_or_else(|| EnvelopeError::UnknownKey(wrapped.kek_id.clone()))?
            .unwrap(wrapped, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(lines: &[(&str, [u8; 32])]) -> Keyring {
        let text: String = lines
            .iter()
            .map(|(id, k)| format!("{id} {}\n", BASE64.encode(k)))
            .collect();
        Keyring::parse(&text).unwrap()
    }

    #[test]
    fn seal_open_round_trip_and_context_binding() {
        let key = DataKey::generate().unwrap();
        let sealed = key.seal(b"secret", b"ctx").unwrap();
        assert_eq!(sealed.len(), 6 + OVERHEAD);
        assert_eq!(key.open(&sealed, b"ctx").unwrap(), b"secret");
        assert_eq!(key.open(&sealed, b"other"), Err(EnvelopeError::Tampered));
        let other = DataKey::generate().unwrap();
        assert_eq!(other.open(&sealed, b"ctx"), Err(EnvelopeError::Tampered));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(
                key.open(&bad, b"ctx"),
                Err(EnvelopeError::Tampered),
                "byte {i}"
            );
        }
        assert_eq!(
            key.open(&sealed[..10], b"ctx"),
            Err(EnvelopeError::Tampered)
        );
        // Pseudonyms: stable per key, different across keys.
        assert_eq!(key.mac(b"alice"), key.mac(b"alice"));
        assert_ne!(key.mac(b"alice"), key.mac(b"bob"));
        assert_ne!(key.mac(b"alice"), other.mac(b"alice"));
        // Fresh nonces: the same plaintext never seals the same way twice.
        assert_ne!(key.seal(b"secret", b"ctx").unwrap(), sealed);
    }

    #[tokio::test]
    async fn rotation_rewraps_and_old_ids_still_unwrap() {
        let old = ring(&[("k1", [1; 32])]);
        let key = DataKey::generate().unwrap();
        let sealed = key.seal(b"v", b"").unwrap();
        let wrapped = old.wrap(&key, b"owner").await.unwrap();
        assert_eq!(wrapped.kek_id, "k1");

        let rotated = ring(&[("k1", [1; 32]), ("k2", [2; 32])]);
        assert_eq!(rotated.active_id(), "k2");
        let back = rotated.unwrap(&wrapped, b"owner").await.unwrap();
        assert_eq!(back.open(&sealed, b"").unwrap(), b"v");
        let moved = rotated.rewrap(&wrapped, b"owner").await.unwrap().unwrap();
        assert_eq!(moved.kek_id, "k2");
        assert_eq!(rotated.rewrap(&moved, b"owner").await.unwrap(), None);

        let only_new = ring(&[("k2", [2; 32])]);
        let again = only_new.unwrap(&moved, b"owner").await.unwrap();
        assert_eq!(again.open(&sealed, b"").unwrap(), b"v");
        assert_eq!(
            only_new.unwrap(&wrapped, b"owner").await.unwrap_err(),
            EnvelopeError::UnknownKey("k1".into())
        );
    }

    #[tokio::test]
    async fn wrapped_keys_are_bound_to_owner_and_kek_id() {
        let ring = ring(&[("a", [1; 32]), ("b", [1; 32])]);
        let key = DataKey::generate().unwrap();
        let wrapped = ring.wrap(&key, b"alice").await.unwrap();
        assert_eq!(
            ring.unwrap(&wrapped, b"bob").await.unwrap_err(),
            EnvelopeError::Tampered
        );
        // Same key bytes under another id: the id is bound too.
        let relabelled = WrappedKey {
            kek_id: "a".into(),
            bytes: wrapped.bytes.clone(),
        };
        assert_eq!(
            ring.unwrap(&relabelled, b"alice").await.unwrap_err(),
            EnvelopeError::Tampered
        );
        let wrong = Keyring::parse(&format!("b {}", BASE64.encode(&[9; 32]))).unwrap();
        assert_eq!(
            wrong.unwrap(&wrapped, b"alice").await.unwrap_err(),
            EnvelopeError::Tampered
        );
    }

    #[test]
    fn keyring_errors_name_the_line_never_the_key() {
        let key = BASE64.encode(&[7; 32]);
        let cases = [
            (String::new(), "no key"),
            ("# only a comment\n".to_owned(), "no key"),
            (format!("k1 {key}\nk1 {key}\n"), "line 2"),
            ("k1\n".to_owned(), "line 1"),
            (format!("k1 {key} extra\n"), "line 1"),
            (format!("bad/id {key}\n"), "line 1: invalid key id"),
            (
                "k1 not-base64!\n".to_owned(),
                "line 1: the key is not base64",
            ),
            (format!("k1 {}\n", BASE64.encode(&[7; 16])), "not 32 bytes"),
            ("x".repeat(MAX_KEYRING_BYTES + 1), "more than"),
        ];
        for (text, want) in cases {
            let err = Keyring::parse(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} lacks {want:?}");
            assert!(!err.contains(&key), "{err:?} shows a key");
        }
        let ok = Keyring::parse(&format!(
            "# ring\nold {key}  # retired\n\nnew {}\n",
            Keyring::generate_key().unwrap()
        ))
        .unwrap();
        assert_eq!(ok.active().id(), "new");
        assert!(ok.get("old").is_some());
        assert!(!format!("{ok:?}").contains(&key));
    }
}
