//! Typed errors of the JWT module. None of them ever carries a token or key
//! material; a `kid` is named where it helps an operator.

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is longer than the configured maximum (checked before parsing).
    #[error("token exceeds the maximum size of {limit} bytes")]
    TooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The token is not a well-formed compact JWS with JSON header and claims.
    #[error("token is malformed")]
    Malformed,
    /// No key in the set matches the token's `kid` (or the `kid` is missing
    /// while the set holds several keys).
    #[error("no key matches the token")]
    UnknownKey,
    /// The header `alg` differs from the selected key's algorithm.
    #[error("token algorithm does not match the key")]
    AlgorithmMismatch,
    /// The header carries a `crit` parameter; no extensions are understood.
    #[error("token requires an unsupported critical header extension")]
    UnsupportedCritical,
    /// The header `typ` is not the expected token type.
    #[error("token has the wrong type")]
    WrongTokenType,
    /// The signature does not verify with the selected key.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token was issued in the future")]
    IssuedInFuture,
    /// `iss` is not the expected issuer.
    #[error("token has the wrong issuer")]
    WrongIssuer,
    /// `aud` does not contain the expected audience.
    #[error("token has the wrong audience")]
    WrongAudience,
    /// A required claim is absent.
    #[error("token lacks the `{0}` claim")]
    MissingClaim(&'static str),
    /// A claim has the wrong JSON type or an invalid value.
    #[error("token has an invalid `{0}` claim")]
    InvalidClaim(&'static str),
    /// The `tid` claim is not a valid tenant id.
    #[error("token has an invalid tenant id")]
    InvalidTenant,
    /// The key set could not be refreshed (remote JWKS unavailable).
    #[error("signing keys are unavailable")]
    KeysUnavailable,
}

impl VerifyError {
    /// The RFC 6750 error code for a `WWW-Authenticate: Bearer` challenge:
    /// `invalid_request` for a malformed or oversized token, otherwise
    /// `invalid_token`.
    pub fn rfc6750_code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } | Self::Malformed => "invalid_request",
            _ => "invalid_token",
        }
    }

    /// A short snake_case code for the failure (a metric label).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::AlgorithmMismatch => "algorithm_mismatch",
            Self::UnsupportedCritical => "unsupported_critical",
            Self::WrongTokenType => "wrong_token_type",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim(_) => "missing_claim",
            Self::InvalidClaim(_) => "invalid_claim",
            Self::InvalidTenant => "invalid_tenant",
            Self::KeysUnavailable => "keys_unavailable",
        }
    }

    /// A fixed phrase for audit records (never input-derived).
    pub fn audit_reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "token too large",
            Self::Malformed => "malformed token",
            Self::UnknownKey => "unknown signing key",
            Self::AlgorithmMismatch => "algorithm mismatch",
            Self::UnsupportedCritical => "unsupported critical header",
            Self::WrongTokenType => "wrong token type",
            Self::BadSignature => "bad signature",
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::IssuedInFuture => "token issued in the future",
            Self::WrongIssuer => "wrong issuer",
            Self::WrongAudience => "wrong audience",
            Self::MissingClaim(_) => "missing claim",
            Self::InvalidClaim(_) => "invalid claim",
            Self::InvalidTenant => "invalid tenant id",
            Self::KeysUnavailable => "signing keys unavailable",
        }
    }
}

/// Why a key could not be loaded, generated or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The PEM or DER input could not be parsed as a key of the algorithm.
    #[error("key `{kid}` could not be parsed for its algorithm")]
    InvalidKey {
        /// The key id.
        kid: String,
    },
    /// An HS256 secret shorter than 32 bytes.
    #[error("HS256 secret for key `{kid}` is shorter than 32 bytes")]
    SecretTooShort {
        /// The key id.
        kid: String,
    },
    /// The key id is empty.
    #[error("key id must not be empty")]
    EmptyKid,
    /// Key generation is not offered for the algorithm (HS256: supply a secret).
    #[error("key generation is not supported for this algorithm")]
    GenerationUnsupported,
    /// The cryptographic backend failed.
    #[error("cryptographic backend failure")]
    Crypto,
}

/// Why a key set could not be built or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySetError {
    /// Two keys share one `kid`.
    #[error("duplicate key id `{kid}`")]
    DuplicateKid {
        /// The key id.
        kid: String,
    },
    /// The JWKS document is not an object with a `keys` array.
    #[error("JWKS document must be an object with a `keys` array")]
    NotAJwks,
    /// A JWK has no (string) `kid`; `index` is its position in `keys`.
    #[error("JWK at index {index} has no key id")]
    MissingKid {
        /// Position in the `keys` array.
        index: usize,
    },
    /// A JWK has an unsupported `kty`, `crv` or `alg`.
    #[error("JWK `{kid}` has an unsupported key type, curve or algorithm")]
    Unsupported {
        /// The key id.
        kid: String,
    },
    /// A JWK's parameters are missing or invalid.
    #[error("JWK `{kid}` has missing or invalid parameters")]
    InvalidJwk {
        /// The key id.
        kid: String,
    },
    /// The JWKS holds no usable key.
    #[error("key set is empty")]
    Empty,
    /// The set has no active signer (it was loaded verify-only).
    #[error("key set has no signing key")]
    NoSigner,
    /// Signing failed in the cryptographic backend.
    #[error("token signing failed")]
    Signing,
    /// A JWKS source failed.
    #[error("JWKS source failed: {0}")]
    Source(String),
}
