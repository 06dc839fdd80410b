//! RFC 8725 token verification.

use std::sync::Arc;
use std::time::Duration;

use data_encoding::BASE64URL_NOPAD;
use kailash_core::clock::{Clock, SystemClock};
use serde_json::{Map, Value};

use super::algorithm::{Algorithm, TokenType};
use super::claims::Claims;
use super::error::VerifyError;
use super::keyset::KeySet;
use super::remote::{Refetch, RemoteKeySet};

/// Default clock-skew leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default maximum token size in bytes.
pub const DEFAULT_MAX_TOKEN_SIZE: usize = 8 * 1024;

/// Where a [`Verifier`] finds its keys.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A local set (keys loaded or generated in process).
    Local(Arc<KeySet>),
    /// A remote JWKS, refetched on an unknown `kid` at most once per cooldown.
    Remote(Arc<RemoteKeySet>),
}

impl From<Arc<KeySet>> for KeySource {
    fn from(k: Arc<KeySet>) -> Self {
        Self::Local(k)
    }
}

impl From<Arc<RemoteKeySet>> for KeySource {
    fn from(k: Arc<RemoteKeySet>) -> Self {
        Self::Remote(k)
    }
}

impl KeySource {
    fn keys(&self) -> &KeySet {
        match self {
            Self::Local(k) => k,
            Self::Remote(r) => r.keys(),
        }
    }
}

/// Verifies compact JWS tokens following RFC 8725; cheap to clone.
#[derive(Debug, Clone)]
pub struct Verifier {
    inner: Arc<Config>,
}

#[derive(Debug)]
struct Config {
    keys: KeySource,
    issuer: String,
    audience: String,
    leeway_secs: i64,
    max_size: usize,
    token_type: TokenType,
    clock: Arc<dyn Clock>,
}

/// Builds a [`Verifier`]; defaults: 30 s leeway, 8 KiB maximum size, access
/// tokens (`typ: at+jwt`), the system clock.
#[derive(Debug)]
#[must_use]
pub struct VerifierBuilder {
    config: Config,
}

impl VerifierBuilder {
    /// Sets the leeway applied to `exp`, `nbf` and `iat` (clamped to 5 minutes).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.config.leeway_secs = i64::try_from(leeway.as_secs().min(300)).unwrap_or(300);
        self
    }

    /// Sets the maximum token size in bytes (checked before any parsing).
    pub fn max_token_size(mut self, bytes: usize) -> Self {
        self.config.max_size = bytes;
        self
    }

    /// Sets the expected token type.
    pub fn token_type(mut self, token_type: TokenType) -> Self {
        self.config.token_type = token_type;
        self
    }

    /// Sets the clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.config.clock = clock;
        self
    }

    /// Finishes the verifier.
    pub fn build(self) -> Verifier {
        Verifier {
            inner: Arc::new(self.config),
        }
    }
}

struct Parsed<'a> {
    message: &'a str,
    signature: &'a str,
    kid: Option<String>,
    alg: Option<Algorithm>,
    payload: &'a str,
}

impl Verifier {
    /// Starts a verifier for tokens from `issuer` for `audience`.
    pub fn builder(
        keys: impl Into<KeySource>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> VerifierBuilder {
        VerifierBuilder {
            config: Config {
                keys: keys.into(),
                issuer: issuer.into(),
                audience: audience.into(),
                leeway_secs: 30,
                max_size: DEFAULT_MAX_TOKEN_SIZE,
                token_type: TokenType::Access,
                clock: Arc::new(SystemClock),
            },
        }
    }

    /// The clock the verifier checks times against.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The expected token type.
    pub fn token_type(&self) -> TokenType {
        self.inner.token_type
    }

    /// Verifies with the keys at hand, without fetching (a remote set is not
    /// refreshed; an unknown `kid` is refused).
    pub fn verify_now(&self, token: &str) -> Result<Claims, VerifyError> {
        let parsed = self.parse(token)?;
        self.finish(&parsed, self.inner.keys.keys())
    }

    /// Verifies `token`. With a remote key set, an unknown `kid` triggers at
    /// most one refetch per cooldown.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let parsed = self.parse(token)?;
        match self.finish(&parsed, self.inner.keys.keys()) {
            Err(VerifyError::UnknownKey) => match &self.inner.keys {
                KeySource::Remote(remote) => match remote.refresh_for_unknown_kid().await {
                    Refetch::Changed => self.finish(&parsed, remote.keys()),
                    Refetch::CoolingDown => Err(VerifyError::UnknownKey),
                    Refetch::Failed => Err(VerifyError::KeysUnavailable),
                },
                KeySource::Local(_) => Err(VerifyError::UnknownKey),
            },
            other => other,
        }
    }

    /// Size check, split, and header checks that need no key.
    fn parse<'a>(&self, token: &'a str) -> Result<Parsed<'a>, VerifyError> {
        if token.len() > self.inner.max_size {
            return Err(VerifyError::TooLarge {
                limit: self.inner.max_size,
            });
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed);
        };
        if h.is_empty() || p.is_empty() || s.is_empty() {
            return Err(VerifyError::Malformed);
        }
        let header = decode_object(h)?;
        // RFC 7515 §4.1.11: we understand no extensions.
        if header.contains_key("crit") {
            return Err(VerifyError::UnsupportedCritical);
        }
        // jku, x5u, jwk, x5c are deliberately never read.
        let alg = match header.get("alg") {
            Some(Value::String(a)) => Algorithm::from_name(a),
            _ => return Err(VerifyError::Malformed),
        };
        match header.get("typ") {
            Some(Value::String(t)) if self.inner.token_type.matches(t) => {}
            _ => return Err(VerifyError::WrongTokenType),
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => return Err(VerifyError::Malformed),
        };
        Ok(Parsed {
            message: &token[..h.len() + 1 + p.len()],
            signature: s,
            kid,
            alg,
            payload: p,
        })
    }

    fn finish(&self, parsed: &Parsed<'_>, keys: &KeySet) -> Result<Claims, VerifyError> {
        let key = keys.lookup(parsed.kid.as_deref())?;
        // The algorithm comes from the key; the header must agree with it.
        if parsed.alg != Some(key.algorithm()) {
            return Err(VerifyError::AlgorithmMismatch);
        }
        if !key.verify_signature(parsed.message.as_bytes(), parsed.signature) {
            return Err(VerifyError::BadSignature);
        }
        let payload = decode_object(parsed.payload)?;
        let claims = Claims::from_json(&payload)?;
        self.check_claims(&claims)?;
        Ok(claims)
    }

    fn check_claims(&self, c: &Claims) -> Result<(), VerifyError> {
        let now = self.inner.clock.now().as_second();
        let leeway = self.inner.leeway_secs;
        if now >= c.exp.saturating_add(leeway) {
            return Err(VerifyError::Expired);
        }
        if let Some(nbf) = c.nbf
            && now < nbf.saturating_sub(leeway)
        {
            return Err(VerifyError::NotYetValid);
        }
        if let Some(iat) = c.iat
            && iat > now.saturating_add(leeway)
        {
            return Err(VerifyError::IssuedInFuture);
        }
        if c.iss != self.inner.issuer {
            return Err(VerifyError::WrongIssuer);
        }
        if !c.aud.iter().any(|a| *a == self.inner.audience) {
            return Err(VerifyError::WrongAudience);
        }
        Ok(())
    }
}

fn decode_object(part: &str) -> Result<Map<String, Value>, VerifyError> {
    let bytes = BASE64URL_NOPAD
        .decode(part.as_bytes())
        .map_err(|_| VerifyError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(VerifyError::Malformed),
    }
}
