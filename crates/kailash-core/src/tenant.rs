//! Tenant identifiers.
//!
//! A [`TenantId`] is parsed strictly once, at the edge, and is cheap to clone
//! afterwards. Everything tenant-scoped (state keys, audit events, metrics)
//! takes a `TenantId`, never a bare string, so a value that never passed the
//! parser cannot name a tenant.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest tenant id accepted (a DNS label, so a tenant id can be a subdomain).
pub const MAX_TENANT_ID_LEN: usize = 63;

/// A validated tenant identifier.
///
/// Accepted: 1 to 63 characters of lowercase ASCII letters, digits, `-` and
/// `_`, starting with a letter or digit. Everything else (whitespace, control
/// characters, upper case, dots, colons, empty) is refused with a
/// [`TenantIdError`] that says which rule failed.
///
/// ```
/// use kailash_core::TenantId;
///
/// let acme: TenantId = "acme".parse()?;
/// assert_eq!(acme.as_str(), "acme");
/// assert!("Acme".parse::<TenantId>().is_err());
/// assert!(" acme".parse::<TenantId>().is_err());
/// # Ok::<(), kailash_core::TenantIdError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

/// Why a string is not a valid [`TenantId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TenantIdError {
    /// The id is empty.
    #[error("tenant id is empty")]
    Empty,
    /// The id is longer than [`MAX_TENANT_ID_LEN`].
    #[error("tenant id is longer than {MAX_TENANT_ID_LEN} characters")]
    TooLong,
    /// The id contains a character outside `[a-z0-9_-]`, at this byte offset.
    #[error("tenant id has a character outside [a-z0-9_-] at position {0}")]
    InvalidCharacter(usize),
    /// The id starts with `-` or `_`.
    #[error("tenant id must start with a letter or digit")]
    InvalidStart,
}

impl TenantId {
    /// Parses and validates a tenant id.
    pub fn new(id: &str) -> Result<Self, TenantIdError> {
        validate(id)?;
        Ok(Self(Arc::from(id)))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate(id: &str) -> Result<(), TenantIdError> {
    if id.is_empty() {
        return Err(TenantIdError::Empty);
    }
    if id.len() > MAX_TENANT_ID_LEN {
        return Err(TenantIdError::TooLong);
    }
    for (i, b) in id.bytes().enumerate() {
        let ok = b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_';
        if !ok {
            return Err(TenantIdError::InvalidCharacter(i));
        }
    }
    if id.starts_with(['-', '_']) {
        return Err(TenantIdError::InvalidStart);
    }
    Ok(())
}

impl FromStr for TenantId {
    type Err = TenantIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({:?})", &*self.0)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for TenantId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        TenantId::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids() {
        for ok in ["acme", "globex", "a", "t-1", "tenant_2", "9lives"] {
            assert_eq!(TenantId::new(ok).map(|t| t.to_string()), Ok(ok.to_owned()));
        }
        assert!(TenantId::new(&"a".repeat(MAX_TENANT_ID_LEN)).is_ok());
    }

    #[test]
    fn refuses_odd_ids() {
        assert_eq!(TenantId::new(""), Err(TenantIdError::Empty));
        assert_eq!(
            TenantId::new(&"a".repeat(MAX_TENANT_ID_LEN + 1)),
            Err(TenantIdError::TooLong)
        );
        assert_eq!(
            TenantId::new("Acme"),
            Err(TenantIdError::InvalidCharacter(0))
        );
        assert_eq!(
            TenantId::new("ac me"),
            Err(TenantIdError::InvalidCharacter(2))
        );
        assert_eq!(
            TenantId::new("acme\n"),
            Err(TenantIdError::InvalidCharacter(4))
        );
        assert_eq!(
            TenantId::new("a:b"),
            Err(TenantIdError::InvalidCharacter(1))
        );
        assert_eq!(
            TenantId::new("a.b"),
            Err(TenantIdError::InvalidCharacter(1))
        );
        assert_eq!(
            TenantId::new("ácme"),
            Err(TenantIdError::InvalidCharacter(0))
        );
        assert_eq!(TenantId::new("-acme"), Err(TenantIdError::InvalidStart));
    }

    #[test]
    fn serde_round_trip_validates() {
        let t: TenantId = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"acme\"");
        assert!(serde_json::from_str::<TenantId>("\"AC ME\"").is_err());
    }
}
