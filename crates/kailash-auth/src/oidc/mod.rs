//! Sign-in with an OpenID Connect provider: the authorization code flow
//! with PKCE (S256), for Google, Microsoft Entra ID, Okta or any provider
//! with discovery.
//!
//! 1. [`OidcProvider::start`] (`GET /auth/oidc/{name}/login`) draws a
//!    `state`, a `nonce`, a PKCE verifier and a browser binding (256 bits
//!    each), keeps the first three in the shared state under the `state`
//!    for `login_ttl` (so any instance can finish the sign-in), and sends
//!    the browser to the provider with an `HttpOnly`, `Secure`,
//!    `SameSite=Lax` cookie (`__Host-kailash-oidc`) holding the binding.
//! 2. [`OidcProvider::finish`] (`GET /auth/oidc/{name}/callback`) takes
//!    the `state`'s record — once: a replayed callback finds nothing —
//!    checks the cookie's binding against it in constant time, redeems the
//!    code at the token endpoint with the verifier (client secret by
//!    `client_secret_basic` or `_post`, as the provider supports),
//!    validates the ID token (signature by a key of the provider's JWKS
//!    with the key's own algorithm — never `none` or a symmetric one —,
//!    `iss`, `aud` exactly this client, `azp`, `exp`, `iat`, `nbf`, the
//!    `nonce`, `at_hash` when present), adds the userinfo claims (same
//!    `sub`), and maps the claims to an [`ExternalIdentity`]: username,
//!    roles from groups, attributes, tenant, and whether the provider
//!    asserted a second factor (`amr`/`acr`).
//! 3. [`AuthService::sign_in_external`](crate::service::AuthService::sign_in_external) opens the session, as for a
//!    password login.
//!
//! The binding is a random secret rather than a signed cookie: only its
//! SHA-256 is stored, so a cookie cannot be forged from what the service
//! keeps, a state is used once, and nothing in the browser can be replayed
//! after the sign-in. Discovery documents are kept for `discovery_ttl`;
//! the JWKS is a [`RemoteKeySet`], refetched on an unknown `kid` at most
//! once a minute. Every call to the provider is bounded in time and size
//! ([`OidcHttp`]); a provider that cannot answer refuses the sign-in
//! (503), never falls back.
//!
//! ```
//! use kailash_auth::oidc::pkce_challenge;
//!
//! // RFC 7636, appendix B.
//! assert_eq!(
//!     pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
//!     "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
//! );
//! ```

mod claims;
mod discovery;
mod id_token;
#[cfg(feature = "axum")]
pub mod routes;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use data_encoding::{BASE64, BASE64URL_NOPAD, HEXLOWER};
use kailash_core::state::{Namespace, SharedState, StateKey};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

pub use claims::{email_domain, identity_from_claims};
pub use discovery::Discovery;
pub use id_token::{IdTokenExpect, MAX_ID_TOKEN_BYTES, verify_id_token};

/// The fingerprints of `providers`' settings, for
/// [`AuthService::set_external_providers`](crate::service::AuthService::set_external_providers).
pub fn fingerprints(providers: &OidcProviders) -> Vec<(String, String)> {
    providers
        .by_name
        .iter()
        .map(|(name, p)| (name.clone(), p.fingerprint()))
        .collect()
}

use crate::jwt::RemoteKeySet;
use crate::oidc_spec::{OidcProviderSpec, check_url};
use crate::password::Password;
use crate::service::{AuthError, ExternalIdentity};

/// The cookie that binds a sign-in to the browser that started it.
pub const FLOW_COOKIE: &str = "__Host-kailash-oidc";

/// The largest answer read from a provider (discovery, JWKS, token,
/// userinfo).
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// The longest `login_hint` passed on.
pub const MAX_LOGIN_HINT: usize = 256;

/// Where started sign-ins wait for their callback.
const NS_FLOW: Namespace = Namespace::new("oidc.flow");

/// How a request to an identity provider is sent: HTTPS (or HTTP to
/// loopback) with a bounded answer (at most [`MAX_ANSWER_BYTES`]) and a
/// deadline. The error names what failed, never the URL or a header.
#[async_trait]
pub trait OidcHttp: Send + Sync + 'static {
    /// Sends `request` (an absolute URI) and reads the whole answer.
    async fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, String>;
}

/// Why a sign-in step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// No provider of that name is configured (404).
    #[error("no such identity provider")]
    UnknownProvider,
    /// The request is malformed: a missing or oversized parameter (400).
    #[error("{0}")]
    BadRequest(&'static str),
    /// The answer is refused: a state or nonce mismatch, a replayed or
    /// expired sign-in, a forged or invalid ID token, an unverified e-mail,
    /// the provider's own refusal (401).
    #[error("{0}")]
    Refused(&'static str),
    /// The provider could not be reached or answered nonsense (503). The
    /// text is for the log, not the caller.
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
    /// The sign-in was refused or failed after the provider vouched for
    /// the user.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl From<kailash_core::state::StateError> for OidcError {
    fn from(e: kailash_core::state::StateError) -> Self {
        Self::Auth(e.into())
    }
}

/// The PKCE S256 challenge of `verifier` (RFC 7636).
pub fn pkce_challenge(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    BASE64URL_NOPAD.encode(digest.as_ref())
}

fn random_token() -> Result<String, OidcError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|_| OidcError::Unavailable("no randomness for the sign-in".into()))?;
    Ok(BASE64URL_NOPAD.encode(&bytes))
}

fn sha256_hex(text: &str) -> String {
    HEXLOWER.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()).as_ref())
}

/// A started sign-in waiting for its callback.
#[derive(Serialize, Deserialize)]
struct Flow {
    /// The provider's name.
    p: String,
    /// SHA-256 (hex) of the browser binding.
    b: String,
    /// The nonce.
    n: String,
    /// The PKCE verifier.
    v: String,
    /// When it started (Unix seconds).
    t: i64,
}

/// Where to send the browser, and the cookie to set.
#[derive(Clone)]
pub struct LoginStart {
    /// The provider's authorization URL with this sign-in's parameters.
    pub location: String,
    /// The `Set-Cookie` value binding the sign-in to this browser.
    pub set_cookie: String,
}

/// What the provider sent back to the callback.
#[derive(Clone, Default, Deserialize)]
pub struct Callback {
    /// The authorization code.
    #[serde(default)]
    pub code: Option<String>,
    /// The state this service sent.
    #[serde(default)]
    pub state: Option<String>,
    /// The provider's error code (`access_denied`, …), instead of a code.
    #[serde(default)]
    pub error: Option<String>,
    /// The issuer of the answer (RFC 9207), when the provider sends it: it
    /// must be this provider's (a mix-up defence).
    #[serde(default)]
    pub iss: Option<String>,
}

impl std::fmt::Debug for LoginStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL carries the state and the cookie the binding: neither is
        // for logs.
        f.debug_struct("LoginStart").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback")
            .field("code", &self.code.as_ref().map(|_| "…"))
            .field("state", &self.state.as_ref().map(|_| "…"))
            .field("error", &self.error.as_deref().map(sanitize))
            .field("iss", &self.iss)
            .finish()
    }
}

/// One configured OpenID Connect provider. Cheap to share (`Arc`).
pub struct OidcProvider {
    spec: OidcProviderSpec,
    secret: Option<Password>,
    http: Arc<dyn OidcHttp>,
    state: SharedState,
    discovery: tokio::sync::Mutex<Option<discovery::Cached>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("name", &self.spec.name)
            .field("issuer", &self.spec.issuer_template())
            .field("confidential", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

impl OidcProvider {
    /// A provider as `spec` describes it (checked with
    /// [`OidcProviderSpec::validate`]), with its client secret (none for
    /// a public client), calling out through `http` and keeping started
    /// sign-ins in `state`. Nothing is fetched until the first sign-in.
    pub fn new(
        spec: OidcProviderSpec,
        secret: Option<Password>,
        http: Arc<dyn OidcHttp>,
        state: SharedState,
    ) -> Result<Self, crate::oidc_spec::InvalidOidcSpec> {
        spec.validate()?;
        Ok(Self {
            spec,
            secret,
            http,
            state,
            discovery: tokio::sync::Mutex::new(None),
        })
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The configuration.
    pub fn spec(&self) -> &OidcProviderSpec {
        &self.spec
    }

    /// The fingerprint of the settings that decide who this provider's
    /// users are here (see
    /// [`AuthService::set_external_providers`](crate::service::AuthService::set_external_providers)).
    pub fn fingerprint(&self) -> String {
        claims::mapping_fingerprint(&self.spec)
    }

    /// Starts a sign-in: the provider's authorization URL and the cookie
    /// binding it to this browser. `login_hint` (at most
    /// [`MAX_LOGIN_HINT`] characters) is passed on.
    pub async fn start(&self, login_hint: Option<&str>) -> Result<LoginStart, OidcError> {
        if login_hint.is_some_and(|h| h.len() > MAX_LOGIN_HINT) {
            return Err(OidcError::BadRequest("login_hint is too long"));
        }
        let found = self.discovered().await?;
        let (state, nonce, verifier, binding) = (
            random_token()?,
            random_token()?,
            random_token()?,
            random_token()?,
        );
        let flow = Flow {
            p: self.spec.name.clone(),
            b: sha256_hex(&binding),
            n: nonce.clone(),
            v: verifier.clone(),
            t: self.state.clock.now().as_second(),
        };
        let bytes = serde_json::to_vec(&flow).map_err(|_| AuthError::Internal)?;
        self.state
            .kv
            .set(
                &StateKey::global(NS_FLOW, &state),
                Bytes::from(bytes),
                Some(self.spec.login_ttl()),
            )
            .await?;
        let mut url = found.doc.authorization_endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.spec.client_id)
                .append_pair("redirect_uri", &self.spec.redirect_uri)
                .append_pair("scope", &self.spec.scopes.join(" "))
                .append_pair("state", &state)
                .append_pair("nonce", &nonce)
                .append_pair("code_challenge", &pkce_challenge(&verifier))
                .append_pair("code_challenge_method", "S256");
            if let Some(hint) = login_hint.filter(|h| !h.is_empty()) {
                q.append_pair("login_hint", hint);
            }
            if self.spec.request_mfa_acr {
                q.append_pair("acr_values", &self.spec.mfa_acr.join(" "));
            }
        }
        Ok(LoginStart {
            location: url.into(),
            set_cookie: format!(
                "{FLOW_COOKIE}={binding}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
                self.spec.login_ttl().as_secs()
            ),
        })
    }

    /// The `Set-Cookie` value that removes the binding cookie.
    pub fn clear_cookie() -> &'static str {
        "__Host-kailash-oidc=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
    }

    /// Finishes a sign-in from the provider's callback and the binding
    /// cookie's value: the identity the provider vouched for, for
    /// [`AuthService::sign_in_external`](crate::service::AuthService::sign_in_external).
    pub async fn finish(
        &self,
        callback: &Callback,
        binding: Option<&str>,
    ) -> Result<ExternalIdentity, OidcError> {
        let bounded = |v: &Option<String>, max: usize| v.as_ref().is_none_or(|s| s.len() <= max);
        if !bounded(&callback.code, 4096)
            || !bounded(&callback.state, 512)
            || !bounded(&callback.error, 256)
            || !bounded(&callback.iss, 2048)
        {
            return Err(OidcError::BadRequest("a callback parameter is too long"));
        }
        let state = callback
            .state
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or(OidcError::BadRequest("the callback has no state"))?;
        // Whatever follows, this state is spent.
        let flow = self
            .state
            .kv
            .take(&StateKey::global(NS_FLOW, state))
            .await?;
        if let Some(error) = &callback.error {
            tracing::info!(provider = %self.spec.name, error = %sanitize(error), "identity provider refused the sign-in");
            return Err(OidcError::Refused(
                "the identity provider refused the sign-in",
            ));
        }
        let code = callback
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or(OidcError::BadRequest("the callback has no code"))?;
        let flow: Flow = match flow {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|_| AuthError::Internal)?,
            None => {
                return Err(OidcError::Refused(
                    "unknown, expired or already used sign-in state",
                ));
            }
        };
        let binding = binding
            .filter(|b| b.len() <= 128)
            .ok_or(OidcError::Refused("the sign-in cookie is missing"))?;
        let matches: bool = sha256_hex(binding)
            .as_bytes()
            .ct_eq(flow.b.as_bytes())
            .into();
        if !matches || flow.p != self.spec.name {
            return Err(OidcError::Refused(
                "the sign-in was started by another browser or provider",
            ));
        }
        let found = self.discovered().await?;
        if let Some(iss) = &callback.iss
            && !found.doc.issuer.contains("{tenantid}")
            && *iss != found.doc.issuer
        {
            return Err(OidcError::Refused("the answer comes from another issuer"));
        }
        let tokens = self.redeem(&found.doc, code, &flow.v).await?;
        let keys = found
            .keys(self.http.clone(), self.state.clock.clone())
            .await?;
        let mut claims = id_token::validate(
            &tokens.id_token,
            &keys,
            &IdTokenExpect {
                spec: &self.spec,
                issuer: &found.doc.issuer,
                algorithms: &found.doc.id_token_signing_alg_values_supported,
                nonce: &flow.n,
                started: flow.t,
                access_token: tokens.access_token.as_deref(),
                now: self.state.clock.now().as_second(),
            },
        )
        .await?;
        if self.spec.userinfo
            && let (Some(endpoint), Some(access)) =
                (&found.doc.userinfo_endpoint, tokens.access_token.as_deref())
        {
            let info = self.userinfo(endpoint, access).await?;
            claims::merge_userinfo(&mut claims, info)?;
        }
        identity_from_claims(&self.spec, &claims)
    }

    /// The discovery document (and the JWKS built from it), fetched when
    /// absent or older than `discovery_ttl`; concurrent callers share one
    /// fetch.
    async fn discovered(&self) -> Result<Arc<discovery::Found>, OidcError> {
        let now = self.state.clock.now();
        let mut held = self.discovery.lock().await;
        if let Some(cached) = held.as_ref()
            && cached.fresh(now, self.spec.discovery_ttl.0)
        {
            return Ok(cached.found.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.spec
                .issuer_template()
                .unwrap_or_default()
                .trim_end_matches('/')
        );
        let fetched = self.get_json(&url, None).await;
        let doc = match fetched.and_then(|v| Discovery::from_json(&v, &self.spec)) {
            Ok(doc) => doc,
            Err(e) => {
                // Keep serving a stale document while the provider is down.
                if let Some(cached) = held.as_ref() {
                    tracing::warn!(provider = %self.spec.name, error = %e, "discovery refresh failed; keeping the last document");
                    return Ok(cached.found.clone());
                }
                return Err(e);
            }
        };
        // The keys are fetched again with the document, so a key the
        // provider withdrew is not trusted past `discovery_ttl`.
        let found = Arc::new(discovery::Found::new(doc));
        *held = Some(discovery::Cached {
            found: found.clone(),
            at: now,
        });
        Ok(found)
    }

    /// GETs `url` as JSON, with a bearer token when given.
    async fn get_json(
        &self,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<serde_json::Value, OidcError> {
        let mut request = http::Request::get(url).header(http::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Bytes::new())
            .map_err(|_| OidcError::Unavailable("invalid provider URL".into()))?;
        let answer = self
            .http
            .send(request)
            .await
            .map_err(OidcError::Unavailable)?;
        match answer.status().as_u16() {
            200 => serde_json::from_slice(answer.body())
                .map_err(|_| OidcError::Unavailable("the provider's answer is not JSON".into())),
            401 | 403 if bearer.is_some() => Err(OidcError::Refused(
                "the identity provider refused its own access token",
            )),
            s => Err(OidcError::Unavailable(format!("the provider answered {s}"))),
        }
    }

    /// The token request redeeming `code`.
    fn token_request(
        &self,
        doc: &Discovery,
        code: &str,
        verifier: &str,
    ) -> Result<http::Request<Bytes>, OidcError> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &self.spec.redirect_uri)
            .append_pair("code_verifier", verifier);
        let mut request = http::Request::post(doc.token_endpoint.as_str())
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        match (&self.secret, doc.auth_method(self.secret.is_some())?) {
            (Some(secret), discovery::ClientAuth::Basic) => {
                // RFC 6749 §2.3.1: both parts form-encoded first.
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let pair = format!("{}:{}", enc(&self.spec.client_id), enc(secret.expose()));
                request = request.header(
                    http::header::AUTHORIZATION,
                    format!("Basic {}", BASE64.encode(pair.as_bytes())),
                );
            }
            (Some(secret), discovery::ClientAuth::Post) => {
                form.append_pair("client_id", &self.spec.client_id)
                    .append_pair("client_secret", secret.expose());
            }
            (None, _) => {
                form.append_pair("client_id", &self.spec.client_id);
            }
        }
        request
            .body(Bytes::from(form.finish()))
            .map_err(|_| OidcError::Unavailable("invalid token endpoint".into()))
    }

    /// Redeems `code` at the token endpoint.
    async fn redeem(
        &self,
        doc: &Discovery,
        code: &str,
        verifier: &str,
    ) -> Result<TokenAnswer, OidcError> {
        let request = self.token_request(doc, code, verifier)?;
        let answer = self
            .http
            .send(request)
            .await
            .map_err(OidcError::Unavailable)?;
        match answer.status().as_u16() {
            200 => {}
            400 | 401 => {
                // OAuth error codes are ASCII words; anything else is noise.
                let code = serde_json::from_slice::<serde_json::Value>(answer.body())
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(sanitize))
                    .unwrap_or_default();
                tracing::warn!(provider = %self.spec.name, error = %code, "the token endpoint refused the code");
                if matches!(code.as_str(), "invalid_client" | "unauthorized_client") {
                    // This service's registration is wrong, not the user.
                    return Err(OidcError::Unavailable(format!(
                        "the token endpoint refused this client ({code})"
                    )));
                }
                return Err(OidcError::Refused(
                    "the identity provider refused the authorization code",
                ));
            }
            s => {
                return Err(OidcError::Unavailable(format!(
                    "the token endpoint answered {s}"
                )));
            }
        }
        let answer: TokenAnswer = serde_json::from_slice(answer.body())
            .map_err(|_| OidcError::Refused("the token endpoint's answer has no ID token"))?;
        if answer
            .token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(OidcError::Refused(
                "the token endpoint's answer is not a bearer token",
            ));
        }
        Ok(answer)
    }

    async fn userinfo(
        &self,
        endpoint: &url::Url,
        access_token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
        match self.get_json(endpoint.as_str(), Some(access_token)).await? {
            serde_json::Value::Object(map) => Ok(map),
            _ => Err(OidcError::Refused(
                "the userinfo answer is not a JSON object",
            )),
        }
    }
}

/// The token endpoint's answer (only what is used).
#[derive(Deserialize)]
struct TokenAnswer {
    id_token: String,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
}

/// A provider's error code, for the log: at most 64 characters of
/// `[A-Za-z0-9_.-]`.
fn sanitize(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .take(64)
        .collect()
}

/// Every configured provider, by name.
#[derive(Debug, Clone, Default)]
pub struct OidcProviders {
    by_name: BTreeMap<String, Arc<OidcProvider>>,
}

impl OidcProviders {
    /// No providers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `provider` (a later one of the same name replaces it).
    #[must_use]
    pub fn with(mut self, provider: OidcProvider) -> Self {
        self.by_name
            .insert(provider.name().to_owned(), Arc::new(provider));
        self
    }

    /// The provider called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<OidcProvider>> {
        self.by_name.get(name)
    }

    /// The configured names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// A [`JwksSource`](crate::jwt::JwksSource) over an [`OidcHttp`].
struct HttpJwks {
    http: Arc<dyn OidcHttp>,
    url: url::Url,
}

#[async_trait]
impl crate::jwt::JwksSource for HttpJwks {
    async fn fetch(&self) -> Result<serde_json::Value, crate::jwt::KeySetError> {
        let request = http::Request::get(self.url.as_str())
            .header(
                http::header::ACCEPT,
                "application/json, application/jwk-set+json",
            )
            .body(Bytes::new())
            .map_err(|_| crate::jwt::KeySetError::Source("invalid JWKS URL".into()))?;
        let answer = self
            .http
            .send(request)
            .await
            .map_err(|e| crate::jwt::KeySetError::Source(format!("JWKS fetch failed: {e}")))?;
        if answer.status() != http::StatusCode::OK {
            return Err(crate::jwt::KeySetError::Source(format!(
                "JWKS fetch answered {}",
                answer.status().as_u16()
            )));
        }
        serde_json::from_slice(answer.body())
            .map_err(|_| crate::jwt::KeySetError::Source("JWKS is not JSON".into()))
    }
}

/// How long a JWKS refetch after an unknown `kid` waits for the last one.
const JWKS_COOLDOWN: Duration = Duration::from_secs(60);

fn checked_url(text: &str, what: &'static str) -> Result<url::Url, OidcError> {
    check_url(text).map_err(|_| {
        OidcError::Unavailable(format!(
            "the discovery document's {what} is not an https:// URL"
        ))
    })
}

async fn load_keys(
    http: Arc<dyn OidcHttp>,
    url: url::Url,
    clock: Arc<dyn kailash_core::clock::Clock>,
) -> Result<RemoteKeySet, OidcError> {
    RemoteKeySet::load(Arc::new(HttpJwks { http, url }), clock)
        .await
        .map(|k| k.with_cooldown(JWKS_COOLDOWN))
        .map_err(|e| OidcError::Unavailable(format!("JWKS: {e}")))
}
