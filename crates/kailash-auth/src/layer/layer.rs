//! [`JwtAuthLayer`]: the cheap, cloneable layer and its settings.

use std::sync::Arc;

use kailash_core::Principal;
use kailash_core::audit::AuditSink;
use tower::Layer;

use super::config::Config;
use super::owner::SessionOwner;
use super::{AuthenticateError, CredentialError, JwtAuth, SessionCheck, SessionCheckError};
use crate::jwt::{TokenCache, Verifier};

/// Authenticates requests with bearer JWTs; cheap to clone.
///
/// Built with [`JwtAuthLayer::new`] and chained setters; see the
/// [module documentation](super) for an example.
#[derive(Clone)]
#[must_use]
pub struct JwtAuthLayer {
    config: Arc<Config>,
}

impl std::fmt::Debug for JwtAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthLayer")
            .field("cookie", &self.config.cookie)
            .field("public", &self.config.public)
            .finish_non_exhaustive()
    }
}

impl JwtAuthLayer {
    /// A layer verifying tokens with `verifier`. Defaults: only the
    /// `Authorization` header, no cache, no session check, no audit, no
    /// public routes.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            config: Arc::new(Config::new(verifier)),
        }
    }

    /// The settings, for a setter. Copies them only if a clone of this
    /// layer already shares them, so clones never see each other's changes.
    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Caches verified tokens.
    pub fn cache(mut self, cache: Arc<TokenCache>) -> Self {
        self.config_mut().cache = Some(cache);
        self
    }

    /// Also accepts the token from the cookie `name`. A request carrying
    /// both the cookie and an `Authorization` header is refused (`401`,
    /// `invalid_request`): one credential per request.
    pub fn cookie(mut self, name: impl Into<String>) -> Self {
        self.config_mut().cookie = Some(name.into());
        self
    }

    /// Lets requests to exactly `path` pass without credentials.
    pub fn public_path(mut self, path: impl Into<String>) -> Self {
        self.config_mut().public.add_path(path);
        self
    }

    /// Lets requests to `prefix` and every path below it pass without
    /// credentials. Whole segments only: `/public` covers `/public/x`, not
    /// `/publicity`; a path with a `.` or `..` segment is never covered
    /// (see [`PublicPaths`](kailash_core::public::PublicPaths)).
    pub fn public_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config_mut().public.add_prefix(prefix);
        self
    }

    /// Checks every verified principal's session.
    pub fn session_check(mut self, check: Arc<dyn SessionCheck>) -> Self {
        self.config_mut().session = Some(check);
        self
    }

    /// Adds the session check to the request's
    /// [`PendingAdmission`](kailash_core::admission::PendingAdmission)
    /// instead of asking the store here, for a
    /// [`SessionCheck`] that offers an
    /// [`admission_check`](SessionCheck::admission_check): an
    /// [`AdmitLayer`](kailash_core::admission::AdmitLayer) inside this
    /// layer asks it together with the tenant's quota and the rate limits
    /// (one round trip on Redis), and refusals keep their responses and
    /// audit events. **An `AdmitLayer` must sit inside this layer**, or
    /// sessions go unchecked; the gateway composes both.
    pub fn defer_session_check(mut self) -> Self {
        self.config_mut().defer_session = true;
        self
    }

    /// Records every failure to `sink`.
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.config_mut().audit = Some(sink);
        self
    }

    /// The cookie the token is also read from, if one is set.
    pub fn cookie_name(&self) -> Option<&str> {
        self.config.cookie.as_deref()
    }

    /// The one credential in `headers`, read exactly as the layer reads a
    /// request's: the `Authorization: Bearer` header or the configured
    /// cookie, `Ok(None)` when neither is there, an error for two of them
    /// or a malformed one. For endpoints that authenticate on their own
    /// (a WebSocket upgrade that also accepts a subprotocol credential).
    pub fn credential<'a>(
        &self,
        headers: &'a http::HeaderMap,
    ) -> Result<Option<&'a str>, CredentialError> {
        super::authenticate::header_credential(&self.config, headers)
    }

    /// Authenticates `token` outside a request, with everything the layer
    /// does for one: verification (through the cache when set) and the
    /// session check (asked directly, even when the layer
    /// [defers](Self::defer_session_check) it). Nothing is audited: the
    /// caller knows the context and records its own outcome.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kailash_auth::jwt::{Algorithm, Claims, KeySet, SigningKey, TokenType, Verifier};
    /// use kailash_auth::layer::{AuthenticateError, JwtAuthLayer};
    /// use kailash_core::clock::{Clock, SystemClock};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    /// let keys = Arc::new(KeySet::new(SigningKey::generate(Algorithm::ES256, "k1")?, clock.clone()));
    /// let layer = JwtAuthLayer::new(Verifier::builder(keys.clone(), "https://id.example", "api").build());
    ///
    /// let now = clock.now().as_second();
    /// let token = keys.issue(&Claims::new("https://id.example", "alice", "api", now, now + 300), TokenType::Access)?;
    /// assert_eq!(layer.authenticate(&token).await?.subject(), "alice");
    /// assert!(matches!(layer.authenticate("not-a-token").await, Err(AuthenticateError::Token(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthenticateError> {
        super::authenticate::authenticate(&self.config, token).await
    }

    /// Asks the configured [`SessionCheck`] whether `principal`'s session
    /// is still alive without counting it as activity
    /// ([`SessionCheck::check_live`]; `Ok` when no check is configured):
    /// for holders of a long-lived connection that re-check a principal
    /// authenticated earlier while the connection stays open.
    pub async fn check_session_live(&self, principal: &Principal) -> Result<(), SessionCheckError> {
        match &self.config.session {
            Some(session) => session.check_live(principal).await,
            None => Ok(()),
        }
    }

    /// Asks the configured [`SessionCheck`] whether `principal`'s session
    /// is still alive, as a request would (a due renewal is written; `Ok`
    /// when no check is configured).
    pub async fn check_session(&self, principal: &Principal) -> Result<(), SessionCheckError> {
        match &self.config.session {
            Some(session) => match session.check_now(principal) {
                Some(answer) => answer,
                None => session.check(principal).await,
            },
            None => Ok(()),
        }
    }
}

impl<S> Layer<S> for JwtAuthLayer {
    type Service = JwtAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth::new(
            inner,
            self.config.clone(),
            SessionOwner::shared(&self.config),
        )
    }
}
