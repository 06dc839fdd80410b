//! [`JwtAuthLayer`]: the cheap, cloneable layer and its settings.

use std::sync::Arc;

use kailash_core::audit::AuditSink;
use tower::Layer;

use super::config::Config;
use super::owner::SessionOwner;
use super::{JwtAuth, SessionCheck};
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
            .field("query_param", &self.config.query_param)
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

    /// Also accepts the token from the query parameter `name` (for example
    /// `access_token`), but only on WebSocket upgrade requests.
    pub fn websocket_query_param(mut self, name: impl Into<String>) -> Self {
        self.config_mut().query_param = Some(name.into());
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
