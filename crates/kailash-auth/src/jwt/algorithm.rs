//! The supported signature algorithms.

use std::fmt;

/// A JWS algorithm this crate signs and verifies with. Every key carries
/// exactly one; a token's header never chooses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// EdDSA on Ed25519.
    EdDSA,
    /// HMAC with SHA-256 (shared secret of at least 32 bytes).
    HS256,
}

impl Algorithm {
    /// The JOSE name (`"RS256"`, `"ES256"`, `"EdDSA"`, `"HS256"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
            Self::HS256 => "HS256",
        }
    }

    /// Parses a JOSE name; anything unsupported (including `none`) is `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::RS256),
            "ES256" => Some(Self::ES256),
            "EdDSA" => Some(Self::EdDSA),
            "HS256" => Some(Self::HS256),
            _ => None,
        }
    }

    pub(crate) fn to_jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Self::HS256 => jsonwebtoken::Algorithm::HS256,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of token, carried in the JWS `typ` header so that an access
/// token never passes as a refresh token or the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TokenType {
    /// An access token, `typ: at+jwt` (RFC 9068).
    #[default]
    Access,
    /// A refresh token, `typ: rt+jwt`.
    Refresh,
    /// An enrolment-only token, `typ: mfa-enrol+jwt`: it lets a user whose
    /// role requires a second factor enrol one, and nothing else.
    MfaEnrolment,
}

impl TokenType {
    /// The `typ` header value.
    pub fn typ(self) -> &'static str {
        match self {
            Self::Access => "at+jwt",
            Self::Refresh => "rt+jwt",
            Self::MfaEnrolment => "mfa-enrol+jwt",
        }
    }

    /// Whether a header `typ` names this type. Media types are
    /// case-insensitive and may carry the `application/` prefix (RFC 7515 §4.1.9).
    pub fn matches(self, typ: &str) -> bool {
        let typ = match (typ.get(..12), typ.get(12..)) {
            (Some(prefix), Some(rest)) if prefix.eq_ignore_ascii_case("application/") => rest,
            _ => typ,
        };
        typ.eq_ignore_ascii_case(self.typ())
    }
}
