//! A set of keys by `kid` with one active signer and rotation.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use kailash_core::clock::Clock;

use super::algorithm::TokenType;
use super::claims::Claims;
use super::error::{KeySetError, VerifyError};
use super::jwks;
use super::keys::{SigningKey, VerifyingKey};

#[derive(Clone)]
struct Entry {
    key: Arc<VerifyingKey>,
    /// After this instant the key no longer verifies (rotated out).
    retire_at: Option<Timestamp>,
}

#[derive(Clone, Default)]
struct Snapshot {
    keys: HashMap<String, Entry>,
    signer: Option<Arc<SigningKey>>,
}

impl Snapshot {
    fn live(&self, now: Timestamp) -> impl Iterator<Item = &Entry> {
        self.keys
            .values()
            .filter(move |e| e.retire_at.is_none_or(|t| now < t))
    }
}

/// Keys by `kid` with at most one active signer.
///
/// Verification clones an `Arc` snapshot under a short read lock, so it never
/// holds a lock across an `await`. Rotated-out keys stop verifying at their
/// retirement time (checked against the [`Clock`]) and are pruned lazily.
pub struct KeySet {
    snapshot: RwLock<Arc<Snapshot>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let snap = self.current();
        let mut kids: Vec<&str> = snap.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("KeySet")
            .field("kids", &kids)
            .field("signer", &snap.signer.as_ref().map(|s| s.kid().to_owned()))
            .finish_non_exhaustive()
    }
}

impl KeySet {
    /// A set whose active signer (and only key) is `signer`.
    pub fn new(signer: SigningKey, clock: Arc<dyn Clock>) -> Self {
        let mut keys = HashMap::new();
        keys.insert(
            signer.kid().to_owned(),
            Entry {
                key: Arc::new(signer.verifying_key()),
                retire_at: None,
            },
        );
        Self {
            snapshot: RwLock::new(Arc::new(Snapshot {
                keys,
                signer: Some(Arc::new(signer)),
            })),
            clock,
        }
    }

    /// A verify-only set of keys; duplicate kids are refused.
    pub fn verify_only(
        keys: impl IntoIterator<Item = VerifyingKey>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, KeySetError> {
        let mut map = HashMap::new();
        for key in keys {
            let kid = key.kid().to_owned();
            if map.contains_key(&kid) {
                return Err(KeySetError::DuplicateKid { kid });
            }
            map.insert(
                kid,
                Entry {
                    key: Arc::new(key),
                    retire_at: None,
                },
            );
        }
        Ok(Self {
            snapshot: RwLock::new(Arc::new(Snapshot {
                keys: map,
                signer: None,
            })),
            clock,
        })
    }

    /// A verify-only set of the usable keys of a JWKS document (RFC 7517).
    /// Keys without a `kid`, for encryption, with an unsupported
    /// `kty`/`crv`/`alg` or invalid parameters, or sharing a `kid` are
    /// logged and skipped (the set may come back empty); symmetric (`oct`)
    /// keys are never accepted from a JWKS. Only a document without a `keys`
    /// array is an error.
    pub fn from_jwks(jwks: &serde_json::Value, clock: Arc<dyn Clock>) -> Result<Self, KeySetError> {
        Self::verify_only(jwks::parse(jwks)?, clock)
    }

    /// The active signer, if any.
    pub(crate) fn signer(&self) -> Option<Arc<SigningKey>> {
        self.current().signer.clone()
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        let mut guard = self
            .snapshot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = (**guard).clone();
        let now = self.clock.now();
        next.keys.retain(|_, e| e.retire_at.is_none_or(|t| now < t));
        f(&mut next);
        *guard = Arc::new(next);
    }

    pub(crate) fn replace_with(&self, other: &KeySet) {
        let snap = other.current();
        let mut guard = self
            .snapshot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = snap;
    }

    /// Adds a verify-only key (for example the previous deployment's public
    /// key). Refuses a `kid` already in the set.
    pub fn add_verifier(&self, key: VerifyingKey) -> Result<(), KeySetError> {
        let mut result = Ok(());
        self.update(|snap| {
            let kid = key.kid().to_owned();
            if snap.keys.contains_key(&kid) {
                result = Err(KeySetError::DuplicateKid { kid });
                return;
            }
            snap.keys.insert(
                kid,
                Entry {
                    key: Arc::new(key),
                    retire_at: None,
                },
            );
        });
        result
    }

    /// Makes `new_signer` the active signer. The previous signer keeps
    /// verifying until `now + retire_old_after` (use the longest token
    /// lifetime), then stops. A `kid` already in the set is refused.
    pub fn rotate(
        &self,
        new_signer: SigningKey,
        retire_old_after: Duration,
    ) -> Result<(), KeySetError> {
        let retire_at = self
            .clock
            .now()
            .checked_add(retire_old_after)
            .unwrap_or(Timestamp::MAX);
        let mut result = Ok(());
        self.update(|snap| {
            let kid = new_signer.kid().to_owned();
            if snap.keys.contains_key(&kid) {
                result = Err(KeySetError::DuplicateKid { kid });
                return;
            }
            if let Some(old) = snap.signer.take()
                && let Some(entry) = snap.keys.get_mut(old.kid())
            {
                entry.retire_at = Some(retire_at);
            }
            snap.keys.insert(
                kid,
                Entry {
                    key: Arc::new(new_signer.verifying_key()),
                    retire_at: None,
                },
            );
            snap.signer = Some(Arc::new(new_signer));
        });
        result
    }

    /// The key for a token's `kid`. Without a `kid`, the only key of a
    /// one-key set is used; otherwise a missing or unknown `kid` is refused.
    pub(crate) fn lookup(&self, kid: Option<&str>) -> Result<Arc<VerifyingKey>, VerifyError> {
        let snap = self.current();
        let now = self.clock.now();
        let entry = match kid {
            Some(kid) => snap.keys.get(kid),
            None => {
                let mut live = snap.live(now);
                match (live.next(), live.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        };
        match entry {
            Some(e) if e.retire_at.is_none_or(|t| now < t) => Ok(e.key.clone()),
            _ => Err(VerifyError::UnknownKey),
        }
    }

    /// The number of keys that currently verify.
    pub fn len(&self) -> usize {
        let snap = self.current();
        snap.live(self.clock.now()).count()
    }

    /// Whether no key currently verifies.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The active signer's `kid`, if any.
    pub fn signer_kid(&self) -> Option<String> {
        self.current().signer.as_ref().map(|s| s.kid().to_owned())
    }

    /// The public keys that currently verify, as a JWKS (`{"keys": [...]}`).
    /// HS256 secrets are never included.
    pub fn jwks(&self) -> serde_json::Value {
        let snap = self.current();
        let mut entries: Vec<&Entry> = snap.live(self.clock.now()).collect();
        entries.sort_by(|a, b| a.key.kid().cmp(b.key.kid()));
        let keys: Vec<serde_json::Value> = entries.iter().filter_map(|e| e.key.to_jwk()).collect();
        serde_json::json!({ "keys": keys })
    }

    /// Signs `claims` with the active signer, setting the header `alg`, `kid`
    /// and `typ` (`at+jwt` or `rt+jwt`).
    pub fn issue(&self, claims: &Claims, token_type: TokenType) -> Result<String, KeySetError> {
        let snap = self.current();
        let signer = snap.signer.as_ref().ok_or(KeySetError::NoSigner)?;
        sign(signer, &claims.to_json(), token_type.typ())
    }
}

/// Signs an arbitrary claims value with a key, header `typ` as given.
pub(crate) fn sign(
    key: &SigningKey,
    claims: &serde_json::Value,
    typ: &str,
) -> Result<String, KeySetError> {
    let mut header = jsonwebtoken::Header::new(key.algorithm().to_jwt());
    header.kid = Some(key.kid().to_owned());
    header.typ = Some(typ.to_owned());
    jsonwebtoken::encode(&header, claims, key.encoding()).map_err(|_| KeySetError::Signing)
}
