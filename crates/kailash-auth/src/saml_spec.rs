//! `[auth.saml]`: sign-in with a SAML 2.0 identity provider (this service
//! is the Service Provider).
//!
//! Plain data (it parses in every build, so a build without the `saml`
//! feature can say so instead of calling the key unknown); the flow itself
//! is `crate::saml` (feature `saml`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kailash_core::TenantId;
use kailash_core::spec::ConfigDuration;
use serde::{Deserialize, Serialize};

use crate::oidc_spec::check_url;

/// The claim URIs of the seed's attribute mapping (WS-Federation claim
/// types, as AD FS, Entra ID and most IdPs name them).
pub mod claim_uri {
    /// The e-mail address.
    pub const EMAIL: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";
    /// The given name.
    pub const GIVEN_NAME: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname";
    /// The surname.
    pub const SURNAME: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname";
    /// The department.
    pub const DEPARTMENT: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/department";
    /// The groups.
    pub const GROUPS: &str = "http://schemas.xmlsoap.org/claims/Group";
}

/// `[auth.saml]`: the identity provider, this Service Provider's names for
/// itself, and how the assertion's attributes become a principal (roles
/// from groups, attributes for ABAC, the tenant).
///
/// No secret is configured: AuthnRequests go unsigned over the redirect
/// binding (their ID is bound to the browser instead), and assertions are
/// expected signed, not encrypted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlSpec {
    /// The provider's name in subjects (`ext:{name}:{NameID}`) and the
    /// audit trail: 1–32 characters of `[a-z0-9_-]` (default `saml`).
    #[serde(default = "default_name")]
    pub name: String,
    /// This Service Provider's entity id (the Audience the IdP must name).
    pub entity_id: String,
    /// This service's `…/auth/saml/acs` URL, as the browser reaches it (the
    /// Recipient and Destination the IdP must name).
    pub acs_url: String,
    /// The identity provider's entity id (the Issuer it must name).
    pub idp_entity_id: String,
    /// The identity provider's single sign-on URL (HTTP-Redirect binding).
    pub idp_sso_url: String,
    /// PEM file of the identity provider's signing certificate(s).
    pub idp_certificate_file: PathBuf,
    /// Require the Assertion itself to be signed, not only the Response
    /// around it (default true).
    #[serde(default = "yes")]
    pub want_assertions_signed: bool,
    /// The attribute that becomes the username (default: the NameID).
    #[serde(default)]
    pub username_attribute: Option<String>,
    /// The attribute listing the user's groups (default
    /// `http://schemas.xmlsoap.org/claims/Group`).
    #[serde(default = "default_groups_attribute")]
    pub groups_attribute: String,
    /// Group → roles.
    #[serde(default)]
    pub group_roles: BTreeMap<String, Vec<String>>,
    /// Roles every user of this provider gets.
    #[serde(default)]
    pub default_roles: Vec<String>,
    /// Principal attribute → SAML attribute name, for ABAC conditions
    /// (`user.department`). Default: `email`, `first_name`, `last_name`,
    /// `department` from the claim URIs in [`claim_uri`]. Setting it
    /// replaces the whole default. The attribute `username` is always the
    /// mapped username.
    #[serde(default = "default_attributes")]
    pub attributes: BTreeMap<String, String>,
    /// The tenant of every user of this provider.
    #[serde(default)]
    pub tenant: Option<TenantId>,
    /// Or: the attribute naming the user's tenant.
    #[serde(default)]
    pub tenant_attribute: Option<String>,
    /// Accept the provider's word that the user passed a second factor, for
    /// roles in `mfa_required_roles` (default true).
    #[serde(default = "yes")]
    pub trust_idp_mfa: bool,
    /// `AuthnContextClassRef` values that count as a second factor (default
    /// `urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract`,
    /// `…:TimeSyncToken` and `http://schemas.microsoft.com/claims/multipleauthn`).
    #[serde(default = "default_mfa_class_refs")]
    pub mfa_authn_context_class_refs: Vec<String>,
    /// Tolerated clock difference with the provider (default `60s`, at
    /// most `5m`).
    #[serde(default = "default_clock_skew")]
    pub clock_skew: ConfigDuration,
    /// How long a started sign-in may take to come back (default `10m`).
    #[serde(default = "default_login_ttl")]
    pub login_ttl: ConfigDuration,
    /// How long a signed-in user's record is kept after their last sign-in
    /// (default `30d`).
    #[serde(default = "default_user_ttl")]
    pub user_ttl: ConfigDuration,
}

fn yes() -> bool {
    true
}
fn default_name() -> String {
    "saml".into()
}
fn default_groups_attribute() -> String {
    claim_uri::GROUPS.into()
}
fn default_attributes() -> BTreeMap<String, String> {
    [
        ("email", claim_uri::EMAIL),
        ("first_name", claim_uri::GIVEN_NAME),
        ("last_name", claim_uri::SURNAME),
        ("department", claim_uri::DEPARTMENT),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}
fn default_mfa_class_refs() -> Vec<String> {
    [
        "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken",
        "http://schemas.microsoft.com/claims/multipleauthn",
    ]
    .map(String::from)
    .to_vec()
}
fn default_clock_skew() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(60))
}
fn default_login_ttl() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(600))
}
fn default_user_ttl() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(30 * 86_400))
}

/// An `[auth.saml]` value that makes no sense, with its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidSamlSpec {
    /// The key, `saml.<name>` (under `[auth]`).
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

impl SamlSpec {
    /// Checks the values without reading the certificate.
    pub fn validate(&self) -> Result<(), InvalidSamlSpec> {
        let bad = |key: &'static str, message: &str| InvalidSamlSpec {
            key,
            message: message.to_owned(),
        };
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 32
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(bad("saml.name", "must be 1-32 characters of [a-z0-9_-]"));
        }
        if self.entity_id.is_empty() || self.entity_id.len() > 1024 {
            return Err(bad("saml.entity_id", "must be 1-1024 bytes"));
        }
        if self.idp_entity_id.is_empty() || self.idp_entity_id.len() > 1024 {
            return Err(bad("saml.idp_entity_id", "must be 1-1024 bytes"));
        }
        let acs = check_url(&self.acs_url).map_err(|m| bad("saml.acs_url", m))?;
        if acs.query().is_some() || !acs.path().ends_with("/auth/saml/acs") {
            return Err(bad(
                "saml.acs_url",
                "must be this service's /auth/saml/acs URL, without a query",
            ));
        }
        check_url(&self.idp_sso_url).map_err(|m| bad("saml.idp_sso_url", m))?;
        if self.tenant.is_some() && self.tenant_attribute.is_some() {
            return Err(bad(
                "saml.tenant",
                "set tenant or tenant_attribute, not both",
            ));
        }
        if self.clock_skew.0 > Duration::from_secs(300) {
            return Err(bad("saml.clock_skew", "must be at most 5m"));
        }
        if self.login_ttl.0.is_zero() || self.login_ttl.0 > Duration::from_secs(3600) {
            return Err(bad("saml.login_ttl", "must be between 1s and 1h"));
        }
        if self.user_ttl.0.is_zero() {
            return Err(bad("saml.user_ttl", "must be positive"));
        }
        if self.attributes.contains_key("username") {
            return Err(bad(
                "saml.attributes",
                "username is always the mapped username",
            ));
        }
        Ok(())
    }

    /// How long a started sign-in may take.
    pub fn login_ttl(&self) -> Duration {
        self.login_ttl.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> Result<SamlSpec, String> {
        let mut base = serde_json::json!({
            "entity_id": "https://api.example.com/saml",
            "acs_url": "https://api.example.com/auth/saml/acs",
            "idp_entity_id": "https://idp.example.com",
            "idp_sso_url": "https://idp.example.com/sso",
            "idp_certificate_file": "idp.pem",
        });
        for (k, v) in extra.as_object().expect("object") {
            base[k] = v.clone();
        }
        let spec: SamlSpec = serde_json::from_value(base).map_err(|e| e.to_string())?;
        spec.validate().map_err(|e| e.to_string())?;
        Ok(spec)
    }

    #[test]
    fn defaults_are_the_seeds_claim_uris_and_secure() {
        let s = spec(serde_json::json!({})).unwrap();
        assert_eq!(s.name, "saml");
        assert!(s.want_assertions_signed && s.trust_idp_mfa);
        assert_eq!(s.attributes["department"], claim_uri::DEPARTMENT);
        assert_eq!(s.attributes["email"], claim_uri::EMAIL);
        assert_eq!(s.groups_attribute, claim_uri::GROUPS);
        assert_eq!(s.login_ttl(), Duration::from_secs(600));
    }

    #[test]
    fn nonsense_is_refused_with_its_key() {
        for (extra, key) in [
            (serde_json::json!({ "name": "Bad Name" }), "saml.name"),
            (
                serde_json::json!({ "acs_url": "http://api.example.com/auth/saml/acs" }),
                "saml.acs_url",
            ),
            (
                serde_json::json!({ "acs_url": "https://api.example.com/callback" }),
                "saml.acs_url",
            ),
            (
                serde_json::json!({ "idp_sso_url": "ftp://x" }),
                "saml.idp_sso_url",
            ),
            (serde_json::json!({ "entity_id": "" }), "saml.entity_id"),
            (
                serde_json::json!({ "tenant": "acme", "tenant_attribute": "t" }),
                "saml.tenant",
            ),
            (
                serde_json::json!({ "clock_skew": "10m" }),
                "saml.clock_skew",
            ),
            (
                serde_json::json!({ "attributes": { "username": "x" } }),
                "saml.attributes",
            ),
        ] {
            let e = spec(extra.clone()).unwrap_err();
            assert!(e.starts_with(key), "{extra}: {e}");
        }
        assert!(spec(serde_json::json!({ "sign_requests": true })).is_err());
        // http:// on loopback is for a local IdP or gateway.
        spec(serde_json::json!({ "acs_url": "http://127.0.0.1:8000/auth/saml/acs" })).unwrap();
    }
}
