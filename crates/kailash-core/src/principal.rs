//! The authenticated caller.
//!
//! An authentication layer (for example `JwtAuthLayer` in kailash-auth)
//! builds a [`Principal`] from verified credentials and inserts it into the
//! request's `http::Extensions`; tenancy, access control, rate limiting and
//! audit read it from there. Cloning is one reference-count increment.
//!
//! ```
//! use kailash_core::{AttributeValue, Principal, TenantId};
//!
//! let alice = Principal::builder("alice")
//!     .tenant(TenantId::new("acme")?)
//!     .role("admin")
//!     .attribute("department", "engineering")
//!     .attribute("clearance", "secret")
//!     .build();
//! assert!(alice.has_role("admin"));
//! assert_eq!(alice.attribute("department"), Some(&AttributeValue::from("engineering")));
//! # Ok::<(), kailash_core::TenantIdError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::tenant::TenantId;

/// A value of a subject or resource attribute (department, clearance,
/// location, …), as used by attribute-based access control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttributeValue {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    String(String),
    /// A list of values.
    List(Vec<AttributeValue>),
    /// Nested attributes, such as `location.country`.
    Map(BTreeMap<String, AttributeValue>),
}

impl AttributeValue {
    /// Looks up a dotted path (`"location.country"`) inside nested maps.
    pub fn get_path(&self, path: &str) -> Option<&AttributeValue> {
        path.split('.')
            .try_fold(self, |value, segment| match value {
                AttributeValue::Map(map) => map.get(segment),
                _ => None,
            })
    }

    /// The value as a string slice, when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttributeValue::String(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for AttributeValue {
    fn from(s: &str) -> Self {
        AttributeValue::String(s.to_owned())
    }
}
impl From<String> for AttributeValue {
    fn from(s: String) -> Self {
        AttributeValue::String(s)
    }
}
impl From<bool> for AttributeValue {
    fn from(b: bool) -> Self {
        AttributeValue::Bool(b)
    }
}
impl From<i64> for AttributeValue {
    fn from(i: i64) -> Self {
        AttributeValue::Int(i)
    }
}
impl From<f64> for AttributeValue {
    fn from(f: f64) -> Self {
        AttributeValue::Float(f)
    }
}
impl<V: Into<AttributeValue>> From<Vec<V>> for AttributeValue {
    fn from(v: Vec<V>) -> Self {
        AttributeValue::List(v.into_iter().map(Into::into).collect())
    }
}
impl From<BTreeMap<String, AttributeValue>> for AttributeValue {
    fn from(m: BTreeMap<String, AttributeValue>) -> Self {
        AttributeValue::Map(m)
    }
}

/// An authenticated subject: who is calling, for which tenant, with which
/// roles and attributes, through which session and token.
#[derive(Clone, PartialEq)]
pub struct Principal {
    inner: Arc<PrincipalInner>,
}

#[derive(PartialEq)]
struct PrincipalInner {
    subject: String,
    tenant: Option<TenantId>,
    roles: Vec<String>,
    attributes: BTreeMap<String, AttributeValue>,
    session_id: Option<String>,
    token_id: Option<String>,
    expires_at: Option<Timestamp>,
    /// After [`Principal::in_tenant`]: the tenant the token named (`None`
    /// for a tenantless principal); `None` while `tenant` is the token's.
    token_tenant: Option<Option<TenantId>>,
}

impl Principal {
    /// Starts building a principal for `subject` (a stable user id).
    pub fn builder(subject: impl Into<String>) -> PrincipalBuilder {
        PrincipalBuilder {
            inner: PrincipalInner {
                subject: subject.into(),
                tenant: None,
                roles: Vec::new(),
                attributes: BTreeMap::new(),
                session_id: None,
                token_id: None,
                expires_at: None,
                token_tenant: None,
            },
        }
    }

    /// The subject (user id).
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// The tenant the credentials were issued for, if any.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.inner.tenant.as_ref()
    }

    /// The same principal acting in `tenant`: what a tenancy layer that was
    /// told to let tenantless principals choose a tenant stamps on the
    /// request, so that every later reader of [`tenant`](Self::tenant)
    /// sees the one resolved tenant.
    #[must_use]
    pub fn in_tenant(&self, tenant: TenantId) -> Self {
        let i = &self.inner;
        Self {
            inner: Arc::new(PrincipalInner {
                subject: i.subject.clone(),
                tenant: Some(tenant),
                roles: i.roles.clone(),
                attributes: i.attributes.clone(),
                session_id: i.session_id.clone(),
                token_id: i.token_id.clone(),
                expires_at: i.expires_at,
                token_tenant: Some(i.token_tenant.clone().unwrap_or_else(|| i.tenant.clone())),
            }),
        }
    }

    /// The tenant the principal's token named — not one a tenancy layer
    /// stamped on a tenantless principal with [`in_tenant`](Self::in_tenant).
    /// Session state is keyed by it: a session is stored under the tenant
    /// it was created in.
    pub fn token_tenant(&self) -> Option<&TenantId> {
        match &self.inner.token_tenant {
            Some(named) => named.as_ref(),
            None => self.inner.tenant.as_ref(),
        }
    }

    /// The subject's roles.
    pub fn roles(&self) -> &[String] {
        &self.inner.roles
    }

    /// Whether the subject has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.inner.roles.iter().any(|r| r == role)
    }

    /// All attributes.
    pub fn attributes(&self) -> &BTreeMap<String, AttributeValue> {
        &self.inner.attributes
    }

    /// One attribute by name; a dotted name (`location.country`) looks inside maps.
    pub fn attribute(&self, name: &str) -> Option<&AttributeValue> {
        match name.split_once('.') {
            None => self.inner.attributes.get(name),
            Some((head, rest)) => self.inner.attributes.get(head)?.get_path(rest),
        }
    }

    /// The server-side session the credentials belong to.
    pub fn session_id(&self) -> Option<&str> {
        self.inner.session_id.as_deref()
    }

    /// The credential's own id (a JWT `jti`).
    pub fn token_id(&self) -> Option<&str> {
        self.inner.token_id.as_deref()
    }

    /// When the credentials expire.
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.inner.expires_at
    }
}

impl fmt::Debug for Principal {
    // Session and token ids are bearer-adjacent; keep them out of debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("subject", &self.inner.subject)
            .field("tenant", &self.inner.tenant)
            .field("roles", &self.inner.roles)
            .field("attributes", &self.inner.attributes)
            .field("session_id", &self.inner.session_id.as_ref().map(|_| "…"))
            .field("expires_at", &self.inner.expires_at)
            .finish()
    }
}

/// Builds a [`Principal`].
#[must_use]
pub struct PrincipalBuilder {
    inner: PrincipalInner,
}

impl PrincipalBuilder {
    /// Sets the tenant.
    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.inner.tenant = Some(tenant);
        self
    }

    /// Adds a role.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.inner.roles.push(role.into());
        self
    }

    /// Adds several roles.
    pub fn roles<I, R>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        self.inner.roles.extend(roles.into_iter().map(Into::into));
        self
    }

    /// Sets an attribute.
    pub fn attribute(mut self, name: impl Into<String>, value: impl Into<AttributeValue>) -> Self {
        self.inner.attributes.insert(name.into(), value.into());
        self
    }

    /// Sets the session id.
    pub fn session_id(mut self, id: impl Into<String>) -> Self {
        self.inner.session_id = Some(id.into());
        self
    }

    /// Sets the token id.
    pub fn token_id(mut self, id: impl Into<String>) -> Self {
        self.inner.token_id = Some(id.into());
        self
    }

    /// Sets the expiry of the credentials.
    pub fn expires_at(mut self, at: Timestamp) -> Self {
        self.inner.expires_at = Some(at);
        self
    }

    /// Finishes the principal.
    pub fn build(self) -> Principal {
        Principal {
            inner: Arc::new(self.inner),
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_stamped_tenant_leaves_the_token_tenant_alone() {
        let ops = Principal::builder("ops").build();
        let acme = TenantId::new("acme").unwrap();
        let acting = ops.in_tenant(acme.clone());
        assert_eq!(acting.tenant(), Some(&acme));
        assert_eq!(acting.token_tenant(), None);
        let again = acting.in_tenant(TenantId::new("globex").unwrap());
        assert_eq!(again.token_tenant(), None);
        let bob = Principal::builder("bob").tenant(acme.clone()).build();
        assert_eq!(bob.token_tenant(), Some(&acme));
    }
    use super::*;

    #[test]
    fn nested_attributes_resolve_by_dotted_path() {
        let mut location = BTreeMap::new();
        location.insert("country".to_owned(), AttributeValue::from("GB"));
        let p = Principal::builder("dave")
            .attribute("location", location)
            .build();
        assert_eq!(
            p.attribute("location.country")
                .and_then(AttributeValue::as_str),
            Some("GB")
        );
        assert_eq!(p.attribute("location.city"), None);
        assert_eq!(p.attribute("nope.country"), None);
    }

    #[test]
    fn debug_output_hides_session_and_token_ids() {
        let p = Principal::builder("bob")
            .session_id("sess-secret-123")
            .token_id("jti-secret-456")
            .build();
        let shown = format!("{p:?}");
        assert!(!shown.contains("sess-secret-123"));
        assert!(!shown.contains("jti-secret-456"));
        assert!(shown.contains("bob"));
    }
}
