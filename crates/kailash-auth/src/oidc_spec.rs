//! `[[auth.oidc]]`: sign-in with an OpenID Connect provider (Google,
//! Microsoft Entra ID, Okta, or any provider with discovery).
//!
//! Plain data (it parses in every build, so a build without the `oidc`
//! feature can say so instead of calling the key unknown); the flow itself
//! is `crate::oidc`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kailash_core::TenantId;
use kailash_core::spec::ConfigDuration;
use serde::{Deserialize, Serialize};

/// The most providers one service configures.
pub const MAX_OIDC_PROVIDERS: usize = 16;

/// A provider whose issuer and defaults are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum OidcPreset {
    /// Google: issuer `https://accounts.google.com`, usernames from the
    /// verified `email`.
    Google,
    /// Microsoft Entra ID (Azure AD) v2.0: issuer
    /// `https://login.microsoftonline.com/{microsoft_tenant}/v2.0`, where
    /// `microsoft_tenant` is a directory id or domain, or `common` /
    /// `organizations` (multi-tenant: the token's `tid` completes the
    /// issuer, optionally restricted by `microsoft_allowed_tenants`).
    Microsoft,
    /// Okta: `issuer` is the org (`https://{yourOktaDomain}`) or an
    /// authorization server (`https://{yourOktaDomain}/oauth2/default`).
    Okta,
}

/// One `[[auth.oidc]]` entry: where the provider is, this service's
/// registration with it, and how its claims become a principal (roles from
/// groups, attributes for ABAC, the tenant).
///
/// The client secret is not here: the application reads it from
/// `client_secret_env` or `client_secret_file` and hands it over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderSpec {
    /// The provider's name in the routes (`/auth/oidc/{name}/login`):
    /// 1–32 characters of `[a-z0-9_-]`.
    pub name: String,
    /// A known provider (`google`, `microsoft`, `okta`): fills the issuer
    /// (Google, Microsoft) and the claim defaults.
    #[serde(default)]
    pub preset: Option<OidcPreset>,
    /// The issuer (`https://…`, exactly as the provider's discovery
    /// document states it). Required without a preset and for Okta;
    /// `http://` only for a provider on loopback.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Microsoft preset: the directory (tenant id or domain), or `common`
    /// / `organizations` (default `common`).
    #[serde(default)]
    pub microsoft_tenant: Option<String>,
    /// Microsoft multi-tenant issuers: the directory ids (`tid`, lower-case
    /// GUIDs) whose users may sign in. Required unless `allow_any_account`.
    #[serde(default)]
    pub microsoft_allowed_tenants: Vec<String>,
    /// Google: the Workspace domains (`hd` claim) whose users may sign in.
    /// Required unless `allow_any_account`.
    #[serde(default)]
    pub hosted_domains: Vec<String>,
    /// Let any account of a public provider sign in — every Google
    /// account, every Microsoft directory and personal account (default
    /// false: such an entry must name its domains or directories).
    #[serde(default)]
    pub allow_any_account: bool,
    /// This service's client id at the provider.
    pub client_id: String,
    /// Environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// File holding the client secret (trailing newline ignored). Without
    /// either, the service is a public client (PKCE only).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// The callback URL registered at the provider: this service's
    /// `…/auth/oidc/{name}/callback`, as the browser reaches it.
    pub redirect_uri: String,
    /// Scopes requested (default `openid email profile`; must include
    /// `openid`).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The claim that becomes the username (default `preferred_username`;
    /// Google: `email`). An `email` claim is used only when the provider
    /// says it is verified.
    #[serde(default)]
    pub username_claim: Option<String>,
    /// The claim listing the user's groups (default `groups`).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Group → roles.
    #[serde(default)]
    pub group_roles: BTreeMap<String, Vec<String>>,
    /// Roles every user of this provider gets.
    #[serde(default)]
    pub default_roles: Vec<String>,
    /// Principal attribute → claim, for ABAC conditions
    /// (`user.department`). Default: `email = "email"`,
    /// `first_name = "given_name"`, `last_name = "family_name"`,
    /// `department = "department"`, `title = "title"`. Setting it replaces
    /// the whole default; a dotted attribute name nests. The attribute
    /// `username` is always the mapped username.
    #[serde(default = "default_attributes")]
    pub attributes: BTreeMap<String, String>,
    /// The tenant of every user of this provider.
    #[serde(default)]
    pub tenant: Option<TenantId>,
    /// Or: the claim naming the user's tenant.
    #[serde(default)]
    pub tenant_claim: Option<String>,
    /// Or: the verified e-mail's domain → tenant (a domain not listed
    /// cannot sign in).
    #[serde(default)]
    pub tenant_domains: BTreeMap<String, TenantId>,
    /// Fetch the userinfo endpoint and add its claims to the ID token's
    /// (default true; the ID token's claims win, and the userinfo `sub`
    /// must match).
    #[serde(default = "yes")]
    pub userinfo: bool,
    /// Accept the provider's word that the user passed a second factor,
    /// for roles in `mfa_required_roles` (default true).
    #[serde(default = "yes")]
    pub trust_idp_mfa: bool,
    /// `amr` values (RFC 8176) that count as a second factor (default
    /// `["mfa"]`).
    #[serde(default = "default_mfa_amr")]
    pub mfa_amr: Vec<String>,
    /// `acr` values that count as a second factor (default none; Okta:
    /// `urn:okta:loa:2fa:any`, say).
    #[serde(default)]
    pub mfa_acr: Vec<String>,
    /// Request the `acr` values of `mfa_acr` from the provider
    /// (`acr_values`) when set (default false).
    #[serde(default)]
    pub request_mfa_acr: bool,
    /// PEM file of a CA to trust besides the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Each call to the provider (default `5s`). A provider that does not
    /// answer in time refuses the sign-in (503).
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// How long the discovery document is kept before it is fetched again
    /// (default `1h`).
    #[serde(default = "default_discovery_ttl")]
    pub discovery_ttl: ConfigDuration,
    /// How long a started sign-in may take to come back (default `10m`).
    #[serde(default = "default_login_ttl")]
    pub login_ttl: ConfigDuration,
    /// How long a signed-in user's record is kept after their last sign-in
    /// (default `30d`); refresh tokens of a user whose record is gone stop
    /// working.
    #[serde(default = "default_user_ttl")]
    pub user_ttl: ConfigDuration,
}

fn yes() -> bool {
    true
}
fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_mfa_amr() -> Vec<String> {
    vec!["mfa".into()]
}
fn default_attributes() -> BTreeMap<String, String> {
    [
        ("email", "email"),
        ("first_name", "given_name"),
        ("last_name", "family_name"),
        ("department", "department"),
        ("title", "title"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}
fn default_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}
fn default_discovery_ttl() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(3600))
}
fn default_login_ttl() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(600))
}
fn default_user_ttl() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(30 * 86_400))
}

/// A `[[auth.oidc]]` value that makes no sense, with its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidOidcSpec {
    /// The key, `oidc.<name>` (under `[auth]`).
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Whether `text` is a lower-case GUID (a Microsoft directory id).
fn is_guid(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// Whether `host` is a loopback name or address (where `http://` is
/// allowed: a provider run locally).
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks `text` is an absolute `https://` URL (or `http://` on loopback)
/// with a host and no credentials or fragment.
pub(crate) fn check_url(text: &str) -> Result<url::Url, &'static str> {
    if text.len() > 2048 {
        return Err("must be at most 2048 bytes");
    }
    let url = url::Url::parse(text).map_err(|_| "must be an absolute URL")?;
    let host = url.host_str().ok_or("must have a host")?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(host) => {}
        "http" => return Err("must be https:// (http:// only on loopback)"),
        _ => return Err("must be an https:// URL"),
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err("must carry no credentials and no fragment");
    }
    Ok(url)
}

impl OidcProviderSpec {
    /// The issuer this entry names (the preset's, or `issuer`); for a
    /// Microsoft multi-tenant entry, with the `{tenantid}` placeholder.
    pub fn issuer_template(&self) -> Option<String> {
        match self.preset {
            Some(OidcPreset::Google) => Some("https://accounts.google.com".into()),
            Some(OidcPreset::Microsoft) => {
                let tenant = self.microsoft_tenant.as_deref().unwrap_or("common");
                Some(format!("https://login.microsoftonline.com/{tenant}/v2.0"))
            }
            _ => self.issuer.clone(),
        }
    }

    /// Whether the issuer is a Microsoft multi-tenant endpoint (`common`,
    /// `organizations`): the discovery document's issuer then holds
    /// `{tenantid}`, completed by each token's `tid`.
    pub fn microsoft_multi_tenant(&self) -> bool {
        self.preset == Some(OidcPreset::Microsoft)
            && matches!(
                self.microsoft_tenant.as_deref().unwrap_or("common"),
                "common" | "organizations"
            )
    }

    /// The issuer the discovery document (fetched under
    /// [`issuer_template`](Self::issuer_template)) must state: the same,
    /// except for Microsoft's shared endpoints — `{tenantid}` for `common`
    /// and `organizations`, the personal-accounts directory for `consumers`.
    pub fn discovery_issuer(&self) -> Option<String> {
        if self.preset == Some(OidcPreset::Microsoft) {
            match self.microsoft_tenant.as_deref().unwrap_or("common") {
                "common" | "organizations" => {
                    return Some("https://login.microsoftonline.com/{tenantid}/v2.0".into());
                }
                "consumers" => {
                    return Some(
                        "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
                            .into(),
                    );
                }
                _ => {}
            }
        }
        self.issuer_template()
    }

    /// The claim the username comes from.
    pub fn username_claim(&self) -> &str {
        match (&self.username_claim, self.preset) {
            (Some(c), _) => c,
            (None, Some(OidcPreset::Google)) => "email",
            (None, _) => "preferred_username",
        }
    }

    /// Timeouts and lifetimes, as durations.
    pub fn login_ttl(&self) -> Duration {
        self.login_ttl.0
    }

    /// Checks the values without contacting the provider.
    pub fn validate(&self) -> Result<(), InvalidOidcSpec> {
        let bad = |key: &'static str, message: &str| InvalidOidcSpec {
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
            return Err(bad("oidc.name", "must be 1-32 characters of [a-z0-9_-]"));
        }
        match (self.preset, &self.issuer) {
            (Some(OidcPreset::Google | OidcPreset::Microsoft), Some(_)) => {
                return Err(bad(
                    "oidc.issuer",
                    "the google and microsoft presets set the issuer; leave it out",
                ));
            }
            (None | Some(OidcPreset::Okta), None) => {
                return Err(bad("oidc.issuer", "must name the provider's issuer"));
            }
            _ => {}
        }
        if self.microsoft_tenant.is_some() && self.preset != Some(OidcPreset::Microsoft) {
            return Err(bad(
                "oidc.microsoft_tenant",
                "only for the microsoft preset",
            ));
        }
        // A domain would fetch a document whose issuer names the GUID, so
        // only GUIDs and the shared endpoints.
        if let Some(t) = &self.microsoft_tenant
            && !(is_guid(t) || matches!(t.as_str(), "common" | "organizations" | "consumers"))
        {
            return Err(bad(
                "oidc.microsoft_tenant",
                "must be a directory id (a lower-case GUID), common, organizations or consumers",
            ));
        }
        if !self.microsoft_allowed_tenants.is_empty() && !self.microsoft_multi_tenant() {
            return Err(bad(
                "oidc.microsoft_allowed_tenants",
                "only for the microsoft preset with a multi-tenant microsoft_tenant (common, organizations)",
            ));
        }
        if self.microsoft_allowed_tenants.iter().any(|t| !is_guid(t)) {
            return Err(bad(
                "oidc.microsoft_allowed_tenants",
                "must be directory ids (lower-case GUIDs)",
            ));
        }
        let public_multi =
            self.microsoft_multi_tenant() || self.microsoft_tenant.as_deref() == Some("consumers");
        if public_multi && self.microsoft_allowed_tenants.is_empty() && !self.allow_any_account {
            return Err(bad(
                "oidc.microsoft_allowed_tenants",
                "any Microsoft account could sign in: list the allowed directories, or set allow_any_account = true",
            ));
        }
        if !self.hosted_domains.is_empty() && self.preset != Some(OidcPreset::Google) {
            return Err(bad("oidc.hosted_domains", "only for the google preset"));
        }
        if self.hosted_domains.iter().any(|d| {
            d.is_empty() || d.len() > 253 || d.contains('@') || *d != d.to_ascii_lowercase()
        }) {
            return Err(bad(
                "oidc.hosted_domains",
                "must be lower-case domains (without @)",
            ));
        }
        if self.preset == Some(OidcPreset::Google)
            && self.hosted_domains.is_empty()
            && !self.allow_any_account
        {
            return Err(bad(
                "oidc.hosted_domains",
                "any Google account could sign in: list your Workspace domains, or set allow_any_account = true",
            ));
        }
        if let Some(issuer) = self.issuer_template() {
            check_url(&issuer).map_err(|m| bad("oidc.issuer", m))?;
        }
        if self.client_id.is_empty() || self.client_id.len() > 512 {
            return Err(bad("oidc.client_id", "must be 1-512 bytes"));
        }
        if self.client_secret_env.is_some() && self.client_secret_file.is_some() {
            return Err(bad(
                "oidc.client_secret_env",
                "set client_secret_env or client_secret_file, not both",
            ));
        }
        if self.client_secret_env.as_deref() == Some("") {
            return Err(bad(
                "oidc.client_secret_env",
                "must name an environment variable",
            ));
        }
        let redirect = check_url(&self.redirect_uri).map_err(|m| bad("oidc.redirect_uri", m))?;
        if redirect.query().is_some()
            || redirect.path() != format!("/auth/oidc/{}/callback", self.name)
        {
            return Err(bad(
                "oidc.redirect_uri",
                "must be this service's /auth/oidc/{name}/callback URL, without a query",
            ));
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            return Err(bad("oidc.scopes", "must include openid"));
        }
        if self.scopes.len() > 32
            || self.scopes.iter().any(|s| {
                s.is_empty()
                    || s.len() > 128
                    || s.bytes()
                        .any(|b| b <= b' ' || b == b'"' || b == b'\\' || b >= 0x7f)
            })
        {
            return Err(bad(
                "oidc.scopes",
                "at most 32 scopes, each 1-128 printable characters without spaces",
            ));
        }
        let sources = usize::from(self.tenant.is_some())
            + usize::from(self.tenant_claim.is_some())
            + usize::from(!self.tenant_domains.is_empty());
        if sources > 1 {
            return Err(bad(
                "oidc.tenant",
                "set at most one of tenant, tenant_claim and tenant_domains",
            ));
        }
        if self.tenant_domains.keys().any(|d| {
            d.is_empty() || d.len() > 253 || d.contains('@') || *d != d.to_ascii_lowercase()
        }) {
            return Err(bad(
                "oidc.tenant_domains",
                "keys must be lower-case e-mail domains (without @)",
            ));
        }
        if self
            .mfa_amr
            .iter()
            .chain(&self.mfa_acr)
            .any(|v| v.is_empty() || v.len() > 256)
        {
            return Err(bad("oidc.mfa_amr", "values must be 1-256 characters"));
        }
        if self.request_mfa_acr && self.mfa_acr.is_empty() {
            return Err(bad(
                "oidc.request_mfa_acr",
                "needs the acr values to request in mfa_acr",
            ));
        }
        let within = |d: &ConfigDuration, min: u64, max: u64| {
            (min..=max).contains(&d.0.as_secs()) && !d.0.is_zero()
        };
        if !within(&self.timeout, 0, 60) {
            return Err(bad("oidc.timeout", "must be between 1ms and 60s"));
        }
        if !within(&self.discovery_ttl, 60, 7 * 86_400) {
            return Err(bad("oidc.discovery_ttl", "must be between 1m and 7d"));
        }
        if !within(&self.login_ttl, 60, 3600) {
            return Err(bad("oidc.login_ttl", "must be between 1m and 1h"));
        }
        if !within(&self.user_ttl, 3600, 400 * 86_400) {
            return Err(bad("oidc.user_ttl", "must be between 1h and 400d"));
        }
        Ok(())
    }
}

/// Checks a list of providers: each valid, names unique, at most
/// [`MAX_OIDC_PROVIDERS`].
pub fn validate_providers(providers: &[OidcProviderSpec]) -> Result<(), InvalidOidcSpec> {
    if providers.len() > MAX_OIDC_PROVIDERS {
        return Err(InvalidOidcSpec {
            key: "oidc",
            message: format!("at most {MAX_OIDC_PROVIDERS} providers"),
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    for p in providers {
        p.validate()?;
        if !seen.insert(p.name.as_str()) {
            return Err(InvalidOidcSpec {
                key: "oidc.name",
                message: format!("provider `{}` is named twice", p.name),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> OidcProviderSpec {
        let mut base = serde_json::json!({
            "name": "corp",
            "issuer": "https://id.example.com",
            "client_id": "kailash",
            "redirect_uri": "https://api.example.com/auth/oidc/corp/callback",
        });
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn a_plain_provider_is_valid_and_defaults_apply() {
        let s = spec(serde_json::json!({}));
        s.validate().unwrap();
        assert_eq!(s.username_claim(), "preferred_username");
        assert_eq!(s.scopes, ["openid", "email", "profile"]);
        assert!(s.userinfo && s.trust_idp_mfa);
    }

    #[test]
    fn presets_fill_the_issuer() {
        let g = spec(
            serde_json::json!({"preset": "google", "issuer": null, "redirect_uri": "https://a.example/auth/oidc/corp/callback", "hosted_domains": ["acme.com"]}),
        );
        g.validate().unwrap();
        assert_eq!(g.issuer_template().unwrap(), "https://accounts.google.com");
        assert_eq!(g.username_claim(), "email");
        let m = spec(
            serde_json::json!({"preset": "microsoft", "issuer": null, "allow_any_account": true}),
        );
        m.validate().unwrap();
        assert_eq!(
            m.issuer_template().unwrap(),
            "https://login.microsoftonline.com/common/v2.0"
        );
        assert!(m.microsoft_multi_tenant());
        let single = spec(
            serde_json::json!({"preset": "microsoft", "issuer": null, "microsoft_tenant": "9188040d-6c67-4c5b-b112-36a304b66dad"}),
        );
        assert!(!single.microsoft_multi_tenant());
        single.validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (serde_json::json!({"name": "Corp"}), "oidc.name"),
            (
                serde_json::json!({"issuer": "http://id.example.com"}),
                "oidc.issuer",
            ),
            (
                serde_json::json!({"issuer": "https://u:p@id.example.com"}),
                "oidc.issuer",
            ),
            (serde_json::json!({"preset": "google"}), "oidc.issuer"),
            (
                serde_json::json!({"redirect_uri": "https://api.example.com/callback"}),
                "oidc.redirect_uri",
            ),
            (serde_json::json!({"scopes": ["email"]}), "oidc.scopes"),
            (
                serde_json::json!({"scopes": ["openid", "a b"]}),
                "oidc.scopes",
            ),
            (
                serde_json::json!({"tenant": "acme", "tenant_claim": "org"}),
                "oidc.tenant",
            ),
            (
                serde_json::json!({"tenant_domains": {"Acme.com": "acme"}}),
                "oidc.tenant_domains",
            ),
            (serde_json::json!({"login_ttl": "2h"}), "oidc.login_ttl"),
            (
                serde_json::json!({"request_mfa_acr": true}),
                "oidc.request_mfa_acr",
            ),
            (
                serde_json::json!({"microsoft_tenant": "x"}),
                "oidc.microsoft_tenant",
            ),
            (
                serde_json::json!({"client_secret_env": ""}),
                "oidc.client_secret_env",
            ),
        ];
        for (extra, key) in cases {
            let e = spec(extra.clone()).validate().unwrap_err();
            assert_eq!(e.key, key, "{extra}: {e}");
        }
        // http:// is fine on loopback only.
        spec(serde_json::json!({"issuer": "http://127.0.0.1:9999", "redirect_uri": "http://localhost:8000/auth/oidc/corp/callback"}))
            .validate()
            .unwrap();
    }

    #[test]
    fn names_are_unique() {
        let e = validate_providers(&[spec(serde_json::json!({})), spec(serde_json::json!({}))])
            .unwrap_err();
        assert_eq!(e.key, "oidc.name");
    }
}
