//! Permissions: `resource:action`, with `*` for any resource or action.
//! A resource may be qualified by one sub-resource, `kind:name:action`
//! (the workflow runtime's `node:transform:execute`); the qualified
//! resource `kind:name` is matched as one part, and `*` stands for a whole
//! part only.
//!
//! ```
//! use kailash_access::permission::Permission;
//!
//! let wanted = Permission::parse("workflow:execute")?;
//! assert!(Permission::parse("workflow:*")?.covers(&wanted));
//! assert!(Permission::parse("*")?.covers(&wanted));
//! assert!(!Permission::parse("data:read")?.covers(&wanted));
//! assert!(Permission::parse("workflow execute").is_err());
//!
//! let node = Permission::parse("node:llm:execute")?;
//! assert_eq!((node.resource(), node.action()), ("node:llm", "execute"));
//! assert!(Permission::parse("*:execute")?.covers(&node));
//! assert!(!Permission::parse("node:transform:execute")?.covers(&node));
//! # Ok::<(), kailash_access::permission::PermissionError>(())
//! ```

use std::fmt;
use std::sync::Arc;

use kailash_core::hash::FnvHashSet;

/// The longest permission text accepted, in bytes.
pub const MAX_PERMISSION_LEN: usize = 128;

/// Why a permission text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PermissionError {
    /// Not of the form `resource:action`, `kind:name:action` (or `*`).
    #[error("permission {0:?} is not `resource:action` or `kind:name:action` (or `*`)")]
    Shape(String),
    /// A part holds a character other than `[a-z0-9_.-]`, or is a partial wildcard.
    #[error(
        "permission {0:?}: each part is `*` or 1-64 characters of lowercase letters, digits, `_`, `.` and `-`"
    )]
    Characters(String),
    /// Longer than [`MAX_PERMISSION_LEN`].
    #[error("permission is longer than {MAX_PERMISSION_LEN} bytes")]
    TooLong,
}

/// A parsed permission or permission pattern.
///
/// Either part may be `*`. A bare `*` is `*:*`. Parsing is strict so that a
/// typo in a config file is an error, not a grant that never matches.
/// Cheap to clone (one `Arc`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    text: Arc<str>,
    colon: usize,
}

fn valid_part(part: &str) -> bool {
    part == "*"
        || (!part.is_empty()
            && part.len() <= 64
            && part.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
            }))
}

impl Permission {
    /// Parses `resource:action`, `resource:*`, `*:action`, `*`, or a
    /// qualified `kind:name:action` / `kind:name:*` (neither `kind` nor
    /// `name` may be `*`).
    pub fn parse(text: &str) -> Result<Self, PermissionError> {
        if text.len() > MAX_PERMISSION_LEN {
            return Err(PermissionError::TooLong);
        }
        let owned = if text == "*" { "*:*" } else { text };
        let Some((resource, action)) = owned.rsplit_once(':') else {
            return Err(PermissionError::Shape(text.to_owned()));
        };
        let resource_ok = match resource.split_once(':') {
            None => valid_part(resource),
            Some((kind, name)) => {
                if name.contains(':') {
                    return Err(PermissionError::Shape(text.to_owned()));
                }
                kind != "*" && name != "*" && valid_part(kind) && valid_part(name)
            }
        };
        if !resource_ok || !valid_part(action) {
            return Err(PermissionError::Characters(text.to_owned()));
        }
        Ok(Self {
            colon: resource.len(),
            text: Arc::from(owned),
        })
    }

    /// The resource part (`workflow`, or `*`).
    pub fn resource(&self) -> &str {
        &self.text[..self.colon]
    }

    /// The action part (`execute`, or `*`).
    pub fn action(&self) -> &str {
        &self.text[self.colon + 1..]
    }

    /// The whole text, `resource:action`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether either part is `*`.
    pub fn is_pattern(&self) -> bool {
        self.resource() == "*" || self.action() == "*"
    }

    /// Whether this pattern covers `wanted` (part by part, `*` covers anything).
    pub fn covers(&self, wanted: &Permission) -> bool {
        let part = |mine: &str, theirs: &str| mine == "*" || mine == theirs;
        part(self.resource(), wanted.resource()) && part(self.action(), wanted.action())
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permission({})", self.text)
    }
}

impl std::str::FromStr for Permission {
    type Err = PermissionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A set of permission patterns, matched in a few hash lookups (FNV: the
/// patterns come from configuration).
#[derive(Debug, Clone, Default)]
pub(crate) struct PermissionSet {
    all: bool,
    exact: FnvHashSet<Arc<str>>,
    any_action: FnvHashSet<Box<str>>,
    any_resource: FnvHashSet<Box<str>>,
}

impl PermissionSet {
    pub(crate) fn insert(&mut self, p: &Permission) {
        match (p.resource(), p.action()) {
            ("*", "*") => self.all = true,
            (r, "*") => {
                self.any_action.insert(r.into());
            }
            ("*", a) => {
                self.any_resource.insert(a.into());
            }
            _ => {
                self.exact.insert(p.text.clone());
            }
        }
    }

    pub(crate) fn contains(&self, wanted: &Permission) -> bool {
        self.all
            || (!self.exact.is_empty() && self.exact.contains(wanted.as_str()))
            || (!self.any_action.is_empty() && self.any_action.contains(wanted.resource()))
            || (!self.any_resource.is_empty() && self.any_resource.contains(wanted.action()))
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.all
            && self.exact.is_empty()
            && self.any_action.is_empty()
            && self.any_resource.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let p = Permission::parse("data:read").unwrap();
        assert_eq!((p.resource(), p.action()), ("data", "read"));
        let q = Permission::parse("node:http_request:*").unwrap();
        assert_eq!((q.resource(), q.action()), ("node:http_request", "*"));
        assert_eq!(Permission::parse("*").unwrap().as_str(), "*:*");
        for bad in [
            "",
            "data",
            "data:",
            ":read",
            "a:b:c:d",
            "a::c",
            "a:*:c",
            "*:b:c",
            "Data:read",
            "data:re ad",
            "da*:read",
            "data:*x",
        ] {
            assert!(Permission::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Permission::parse(&"a".repeat(200)),
            Err(PermissionError::TooLong)
        );
    }

    #[test]
    fn a_set_matches_like_covers() {
        let patterns = [
            "workflow:*",
            "*:read",
            "report:view",
            "node:llm:*",
            "node:transform:execute",
        ];
        let mut set = PermissionSet::default();
        for p in patterns {
            set.insert(&Permission::parse(p).unwrap());
        }
        for wanted in [
            "workflow:execute",
            "data:read",
            "report:view",
            "report:edit",
            "x:y",
            "node:llm:execute",
            "node:transform:execute",
            "node:transform:read",
            "node:http_request:execute",
        ] {
            let w = Permission::parse(wanted).unwrap();
            let by_cover = patterns
                .iter()
                .any(|p| Permission::parse(p).unwrap().covers(&w));
            assert_eq!(set.contains(&w), by_cover, "{wanted}");
        }
    }
}
