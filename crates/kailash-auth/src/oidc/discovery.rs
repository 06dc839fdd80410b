//! The provider's discovery document (OpenID Connect Discovery 1.0), checked
//! against the configuration, and the JWKS it names.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use super::{OidcError, OidcHttp, checked_url, load_keys};
use crate::jwt::RemoteKeySet;
use crate::oidc_spec::OidcProviderSpec;

/// What this service uses of a discovery document.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Discovery {
    /// `issuer`, equal to the configured one (for a Microsoft multi-tenant
    /// endpoint, with `{tenantid}`).
    pub issuer: String,
    /// `authorization_endpoint`.
    pub authorization_endpoint: url::Url,
    /// `token_endpoint`.
    pub token_endpoint: url::Url,
    /// `jwks_uri`.
    pub jwks_uri: url::Url,
    /// `userinfo_endpoint`, if any.
    pub userinfo_endpoint: Option<url::Url>,
    /// `id_token_signing_alg_values_supported`.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// `token_endpoint_auth_methods_supported` (empty: the default,
    /// `client_secret_basic`).
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

/// How the client secret goes to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientAuth {
    /// `client_secret_basic` (HTTP Basic).
    Basic,
    /// `client_secret_post` (in the form).
    Post,
}

/// The longest list read from a discovery document.
const MAX_LIST: usize = 64;

impl Discovery {
    /// Reads and checks a discovery document for `spec`: the issuer must be
    /// exactly the configured one, every endpoint an `https://` URL (or
    /// `http://` on loopback), the code flow and S256 PKCE supported where
    /// the document says what it supports.
    pub fn from_json(doc: &Value, spec: &OidcProviderSpec) -> Result<Self, OidcError> {
        let bad = |m: &str| OidcError::Unavailable(format!("discovery document: {m}"));
        let obj = doc.as_object().ok_or_else(|| bad("not a JSON object"))?;
        let text = |name: &str| obj.get(name).and_then(Value::as_str);
        let list = |name: &str| -> Result<Vec<String>, OidcError> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) if items.len() <= MAX_LIST => items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .filter(|s| s.len() <= 256)
                            .map(str::to_owned)
                            .ok_or_else(|| bad("a list holds something other than short strings"))
                    })
                    .collect(),
                Some(_) => Err(bad("a list is not a short array")),
            }
        };
        let issuer = text("issuer").ok_or_else(|| bad("no issuer"))?;
        let expected = spec.discovery_issuer().unwrap_or_default();
        if issuer != expected {
            return Err(bad("its issuer is not the configured issuer"));
        }
        // Plain http:// endpoints only for a provider on loopback itself:
        // a document of an https:// issuer never sends the client secret
        // or a token to a local plain-text service.
        let issuer_https = issuer.starts_with("https://");
        let checked = |text: &str, name: &'static str| -> Result<url::Url, OidcError> {
            let url = checked_url(text, name)?;
            if issuer_https && url.scheme() != "https" {
                return Err(bad(&format!("its {name} is not https://")));
            }
            Ok(url)
        };
        let url = |name: &'static str| -> Result<url::Url, OidcError> {
            checked(text(name).ok_or_else(|| bad(&format!("no {name}")))?, name)
        };
        let response_types = list("response_types_supported")?;
        if !response_types.is_empty() && !response_types.iter().any(|t| t == "code") {
            return Err(bad(
                "the provider does not support the authorization code flow",
            ));
        }
        let pkce = list("code_challenge_methods_supported")?;
        if !pkce.is_empty() && !pkce.iter().any(|m| m == "S256") {
            return Err(bad("the provider does not support S256 PKCE"));
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            authorization_endpoint: url("authorization_endpoint")?,
            token_endpoint: url("token_endpoint")?,
            jwks_uri: url("jwks_uri")?,
            userinfo_endpoint: match text("userinfo_endpoint") {
                Some(u) => Some(checked(u, "userinfo_endpoint")?),
                None => None,
            },
            id_token_signing_alg_values_supported: list("id_token_signing_alg_values_supported")?,
            token_endpoint_auth_methods_supported: list("token_endpoint_auth_methods_supported")?,
        })
    }

    /// How a client with (or without) a secret authenticates at the token
    /// endpoint: HTTP Basic unless the provider supports only the form.
    pub(super) fn auth_method(&self, has_secret: bool) -> Result<ClientAuth, OidcError> {
        let methods = &self.token_endpoint_auth_methods_supported;
        let supports = |m: &str| methods.iter().any(|x| x == m);
        if !has_secret || methods.is_empty() || supports("client_secret_basic") {
            Ok(ClientAuth::Basic)
        } else if supports("client_secret_post") {
            Ok(ClientAuth::Post)
        } else {
            Err(OidcError::Unavailable(
                "the token endpoint supports neither client_secret_basic nor client_secret_post"
                    .into(),
            ))
        }
    }
}

/// A checked document and, once loaded, its JWKS.
pub(super) struct Found {
    pub(super) doc: Discovery,
    keys: tokio::sync::Mutex<Option<Arc<RemoteKeySet>>>,
}

impl Found {
    pub(super) fn new(doc: Discovery) -> Self {
        Self {
            doc,
            keys: tokio::sync::Mutex::new(None),
        }
    }

    /// The provider's keys, fetched on first use.
    pub(super) async fn keys(
        &self,
        http: Arc<dyn OidcHttp>,
        clock: Arc<dyn kailash_core::clock::Clock>,
    ) -> Result<Arc<RemoteKeySet>, OidcError> {
        let mut held = self.keys.lock().await;
        if let Some(keys) = held.as_ref() {
            return Ok(keys.clone());
        }
        let keys = Arc::new(load_keys(http, self.doc.jwks_uri.clone(), clock).await?);
        *held = Some(keys.clone());
        Ok(keys)
    }
}

/// A document and when it was fetched.
pub(super) struct Cached {
    pub(super) found: Arc<Found>,
    pub(super) at: Timestamp,
}

impl Cached {
    pub(super) fn fresh(&self, now: Timestamp, ttl: Duration) -> bool {
        let age = now.duration_since(self.at);
        age >= jiff::SignedDuration::ZERO && age.unsigned_abs() < ttl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: Value) -> OidcProviderSpec {
        let mut base = serde_json::json!({
            "name": "corp",
            "client_id": "kailash",
            "redirect_uri": "https://api.example.com/auth/oidc/corp/callback",
        });
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        serde_json::from_value(base).unwrap()
    }

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/oidc/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
    }

    #[test]
    fn the_presets_accept_their_providers_published_documents() {
        let google = Discovery::from_json(
            &fixture("google"),
            &spec(serde_json::json!({"preset": "google", "hosted_domains": ["acme.com"]})),
        )
        .unwrap();
        assert_eq!(
            google.token_endpoint.as_str(),
            "https://oauth2.googleapis.com/token"
        );
        assert_eq!(google.auth_method(true).unwrap(), ClientAuth::Basic);
        let ms = Discovery::from_json(
            &fixture("microsoft-common"),
            &spec(serde_json::json!({"preset": "microsoft", "allow_any_account": true})),
        )
        .unwrap();
        assert_eq!(
            ms.issuer,
            "https://login.microsoftonline.com/{tenantid}/v2.0"
        );
        let single = Discovery::from_json(
            &fixture("microsoft-tenant"),
            &spec(serde_json::json!({"preset": "microsoft", "microsoft_tenant": "9188040d-6c67-4c5b-b112-36a304b66dad"})),
        )
        .unwrap();
        assert!(single.userinfo_endpoint.is_some());
        // `consumers` serves the personal-accounts directory's document.
        Discovery::from_json(
            &fixture("microsoft-tenant"),
            &spec(serde_json::json!({"preset": "microsoft", "microsoft_tenant": "consumers", "allow_any_account": true})),
        )
        .unwrap();
        let okta = Discovery::from_json(
            &fixture("okta"),
            &spec(serde_json::json!({"preset": "okta", "issuer": "https://dev-123456.okta.com/oauth2/default"})),
        )
        .unwrap();
        assert_eq!(okta.auth_method(true).unwrap(), ClientAuth::Basic);
        // The same document under another issuer is refused.
        assert!(
            Discovery::from_json(
                &fixture("okta"),
                &spec(serde_json::json!({"preset": "okta", "issuer": "https://dev-999999.okta.com/oauth2/default"})),
            )
            .is_err()
        );
    }

    #[test]
    fn unsafe_documents_are_refused() {
        let s = spec(serde_json::json!({"issuer": "https://id.example.com"}));
        let good = serde_json::json!({
            "issuer": "https://id.example.com",
            "authorization_endpoint": "https://id.example.com/auth",
            "token_endpoint": "https://id.example.com/token",
            "jwks_uri": "https://id.example.com/jwks",
        });
        Discovery::from_json(&good, &s).unwrap();
        let with = |k: &str, v: Value| {
            let mut d = good.clone();
            d[k] = v;
            Discovery::from_json(&d, &s)
        };
        assert!(with("token_endpoint", "http://id.example.com/token".into()).is_err());
        assert!(with("token_endpoint", "http://127.0.0.1:8080/token".into()).is_err());
        assert!(with("userinfo_endpoint", "http://localhost/userinfo".into()).is_err());
        assert!(with("jwks_uri", 5.into()).is_err());
        assert!(with("issuer", "https://id.example.com/".into()).is_err());
        assert!(
            with(
                "code_challenge_methods_supported",
                serde_json::json!(["plain"])
            )
            .is_err()
        );
        assert!(with("response_types_supported", serde_json::json!(["token"])).is_err());
        assert!(
            with(
                "token_endpoint_auth_methods_supported",
                serde_json::json!(vec!["x"; 65])
            )
            .is_err()
        );
        let d = with(
            "token_endpoint_auth_methods_supported",
            serde_json::json!(["private_key_jwt"]),
        )
        .unwrap();
        assert!(d.auth_method(true).is_err());
        assert_eq!(d.auth_method(false).unwrap(), ClientAuth::Basic);
        assert!(Discovery::from_json(&Value::Null, &s).is_err());
    }
}
