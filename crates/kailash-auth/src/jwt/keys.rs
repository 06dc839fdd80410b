//! Signing and verifying keys.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use data_encoding::BASE64;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, EncodingKey};

use super::algorithm::Algorithm;
use super::error::KeyError;

/// Minimum HS256 secret length in bytes.
pub const MIN_HS256_SECRET: usize = 32;

/// A PKCS#8 PEM document holding a private key. Its `Debug` is redacted;
/// read it with [`expose`](Self::expose) only to store it.
#[derive(Clone)]
pub struct Pkcs8Pem(String);

impl Pkcs8Pem {
    /// The PEM text (`-----BEGIN PRIVATE KEY-----` …). Handle as a secret.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pkcs8Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pkcs8Pem(<redacted>)")
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

enum Secret {
    Pem(Pkcs8Pem),
    Hmac,
}

/// A private key that signs tokens, with its `kid` and algorithm.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    secret: Secret,
    verifying: VerifyingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn check_kid(kid: &str) -> Result<(), KeyError> {
    if kid.is_empty() {
        Err(KeyError::EmptyKid)
    } else {
        Ok(())
    }
}

impl SigningKey {
    /// Loads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`) for
    /// RS256, ES256 or EdDSA. For HS256 use [`hs256`](Self::hs256).
    pub fn from_pkcs8_pem(
        alg: Algorithm,
        kid: impl Into<String>,
        pem: &[u8],
    ) -> Result<Self, KeyError> {
        let kid = kid.into();
        check_kid(&kid)?;
        let invalid = || KeyError::InvalidKey { kid: kid.clone() };
        let encoding = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            Algorithm::HS256 => return Err(invalid()),
        }
        .map_err(|_| invalid())?;
        let jwk = Jwk::from_encoding_key(&encoding, alg.to_jwt()).map_err(|_| invalid())?;
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| invalid())?;
        let text = std::str::from_utf8(pem).map_err(|_| invalid())?.to_owned();
        let verifying = VerifyingKey {
            kid: kid.clone(),
            alg,
            decoding,
            jwk: Some(jwk),
        };
        // Prove the pair works: sign and verify a probe message.
        let probe = jsonwebtoken::crypto::sign(b"kailash-probe", &encoding, alg.to_jwt())
            .map_err(|_| invalid())?;
        if !jsonwebtoken::crypto::verify(
            &probe,
            b"kailash-probe",
            &verifying.decoding,
            alg.to_jwt(),
        )
        .unwrap_or(false)
        {
            return Err(invalid());
        }
        Ok(Self {
            kid,
            alg,
            encoding,
            secret: Secret::Pem(Pkcs8Pem(text)),
            verifying,
        })
    }

    /// An HS256 key from a shared secret of at least 32 bytes.
    pub fn hs256(kid: impl Into<String>, secret: &[u8]) -> Result<Self, KeyError> {
        let kid = kid.into();
        check_kid(&kid)?;
        if secret.len() < MIN_HS256_SECRET {
            return Err(KeyError::SecretTooShort { kid });
        }
        Ok(Self {
            verifying: VerifyingKey::hs256(kid.clone(), secret)?,
            kid,
            alg: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret),
            secret: Secret::Hmac,
        })
    }

    /// Generates a fresh key: RSA 2048-bit for RS256, P-256 for ES256,
    /// Ed25519 for EdDSA. HS256 is refused (supply a random secret instead).
    pub fn generate(alg: Algorithm, kid: impl Into<String>) -> Result<Self, KeyError> {
        let der: Vec<u8> = match alg {
            Algorithm::RS256 => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| KeyError::Crypto)?;
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                    pair.as_der().map_err(|_| KeyError::Crypto)?;
                der.as_ref().to_vec()
            }
            Algorithm::ES256 => aws_lc_rs::signature::EcdsaKeyPair::generate(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            )
            .and_then(|pair| pair.to_pkcs8v1())
            .map_err(|_| KeyError::Crypto)?
            .as_ref()
            .to_vec(),
            Algorithm::EdDSA => aws_lc_rs::signature::Ed25519KeyPair::generate()
                .and_then(|pair| pair.to_pkcs8v1())
                .map_err(|_| KeyError::Crypto)?
                .as_ref()
                .to_vec(),
            Algorithm::HS256 => return Err(KeyError::GenerationUnsupported),
        };
        let pem = pem_encode("PRIVATE KEY", &der);
        Self::from_pkcs8_pem(alg, kid, pem.as_bytes())
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The private key as PKCS#8 PEM, for storage; `None` for HS256.
    pub fn to_pkcs8_pem(&self) -> Option<Pkcs8Pem> {
        match &self.secret {
            Secret::Pem(pem) => Some(pem.clone()),
            Secret::Hmac => None,
        }
    }

    /// The matching verifying key (public key, or the HS256 secret).
    pub fn verifying_key(&self) -> VerifyingKey {
        self.verifying.clone()
    }

    pub(crate) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }
}

/// A key that verifies signatures: a public key or an HS256 secret, with its
/// `kid` and algorithm.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: String,
    alg: Algorithm,
    decoding: DecodingKey,
    /// The public JWK (None for HS256, which is never exported).
    jwk: Option<Jwk>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// Loads a public key PEM (`-----BEGIN PUBLIC KEY-----`, or
    /// `RSA PUBLIC KEY` for RS256).
    pub fn from_public_pem(
        alg: Algorithm,
        kid: impl Into<String>,
        pem: &[u8],
    ) -> Result<Self, KeyError> {
        let kid = kid.into();
        check_kid(&kid)?;
        let invalid = || KeyError::InvalidKey { kid: kid.clone() };
        let decoding = match alg {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(pem),
            Algorithm::ES256 => DecodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
            Algorithm::HS256 => return Err(invalid()),
        }
        .map_err(|_| invalid())?;
        let jwk = Jwk::from_decoding_key(&decoding, Some(alg.to_jwt())).map_err(|_| invalid())?;
        Ok(Self {
            kid,
            alg,
            decoding,
            jwk: Some(jwk),
        })
    }

    /// An HS256 verifying key from a shared secret of at least 32 bytes.
    pub fn hs256(kid: impl Into<String>, secret: &[u8]) -> Result<Self, KeyError> {
        let kid = kid.into();
        check_kid(&kid)?;
        if secret.len() < MIN_HS256_SECRET {
            return Err(KeyError::SecretTooShort { kid });
        }
        Ok(Self {
            kid,
            alg: Algorithm::HS256,
            decoding: DecodingKey::from_secret(secret),
            jwk: None,
        })
    }

    pub(crate) fn from_parts(kid: String, alg: Algorithm, decoding: DecodingKey, jwk: Jwk) -> Self {
        Self {
            kid,
            alg,
            decoding,
            jwk: Some(jwk),
        }
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Whether this is a public key that may be published in a JWKS
    /// (false for HS256 secrets).
    pub fn is_public(&self) -> bool {
        self.jwk.is_some()
    }

    /// Verifies `signature` (base64url) over `message` with this key's own
    /// algorithm.
    pub(crate) fn verify_signature(&self, message: &[u8], signature: &str) -> bool {
        jsonwebtoken::crypto::verify(signature, message, &self.decoding, self.alg.to_jwt())
            .unwrap_or(false)
    }

    /// The public JWK (RFC 7517) with `kid`, `alg` and `use: "sig"`; `None`
    /// for an HS256 secret.
    pub fn to_jwk(&self) -> Option<serde_json::Value> {
        let jwk = self.jwk.as_ref()?;
        let mut value = serde_json::to_value(jwk).ok()?;
        let obj = value.as_object_mut()?;
        // Keep only public members, whatever the library adds.
        obj.retain(|k, _| matches!(k.as_str(), "kty" | "n" | "e" | "crv" | "x" | "y"));
        obj.insert("kid".into(), self.kid.clone().into());
        obj.insert("alg".into(), self.alg.as_str().into());
        obj.insert("use".into(), "sig".into());
        Some(value)
    }
}
