use std::sync::Arc;

use async_trait::async_trait;
use kailash_core::Principal;
use kailash_core::audit::AuditSink;
use tower::Layer;

use crate::jwt::{TokenCache, Verifier};

use super::service::JwtAuth;

/// Why a session check refused a principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionCheckError {
    /// The session was revoked (logout, admin action): 401.
    #[error("session revoked")]
    Revoked,
    /// The session expired or was idle too long: 401.
    #[error("session expired or idle")]
    Expired,
    /// The session store cannot answer: 503 (fail closed).
    #[error("session store unavailable")]
    Unavailable,
}

/// Decides whether a verified principal's server-side session is still alive.
#[async_trait]
pub trait SessionCheck: Send + Sync + 'static {
    /// Checks the session of `principal`.
    async fn check(&self, principal: &Principal) -> Result<(), SessionCheckError>;

    /// Answers synchronously when the store is in process; `None` (the
    /// default) means "ask [`check`](Self::check)". Lets the layer skip
    /// boxing a future on the request path.
    fn check_now(&self, principal: &Principal) -> Option<Result<(), SessionCheckError>> {
        let _ = principal;
        None
    }
}

pub(super) struct Config {
    pub(super) verifier: Verifier,
    pub(super) cache: Option<Arc<TokenCache>>,
    pub(super) cookie: Option<String>,
    pub(super) query_param: Option<String>,
    pub(super) public_paths: Vec<String>,
    pub(super) public_prefixes: Vec<String>,
    pub(super) session: Option<Arc<dyn SessionCheck>>,
    pub(super) audit: Option<Arc<dyn AuditSink>>,
}

impl Config {
    pub(super) fn is_public(&self, path: &str) -> bool {
        self.public_paths.iter().any(|p| p == path)
            || self
                .public_prefixes
                .iter()
                .any(|p| path.starts_with(p.as_str()))
    }
}

/// Authenticates requests with bearer JWTs; cheap to clone.
#[derive(Clone)]
pub struct JwtAuthLayer {
    config: Arc<Config>,
}

impl std::fmt::Debug for JwtAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthLayer")
            .field("cookie", &self.config.cookie)
            .field("query_param", &self.config.query_param)
            .field("public_paths", &self.config.public_paths)
            .field("public_prefixes", &self.config.public_prefixes)
            .finish_non_exhaustive()
    }
}

impl JwtAuthLayer {
    /// Starts a layer using `verifier`. Defaults: only the `Authorization`
    /// header, no cache, no session check, no audit, no public routes.
    pub fn builder(verifier: Verifier) -> JwtAuthLayerBuilder {
        JwtAuthLayerBuilder {
            config: Config {
                verifier,
                cache: None,
                cookie: None,
                query_param: None,
                public_paths: Vec::new(),
                public_prefixes: Vec::new(),
                session: None,
                audit: None,
            },
        }
    }
}

impl<S> Layer<S> for JwtAuthLayer {
    type Service = JwtAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth {
            inner,
            config: self.config.clone(),
        }
    }
}

/// Builds a [`JwtAuthLayer`].
#[must_use]
pub struct JwtAuthLayerBuilder {
    config: Config,
}

impl std::fmt::Debug for JwtAuthLayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthLayerBuilder")
            .finish_non_exhaustive()
    }
}

impl JwtAuthLayerBuilder {
    /// Caches verified tokens.
    pub fn cache(mut self, cache: Arc<TokenCache>) -> Self {
        self.config.cache = Some(cache);
        self
    }

    /// Also accepts the token from the cookie `name` (the header wins when both
    /// are present).
    pub fn cookie(mut self, name: impl Into<String>) -> Self {
        self.config.cookie = Some(name.into());
        self
    }

    /// Also accepts the token from the query parameter `name` (for example
    /// `access_token`), but only on WebSocket upgrade requests.
    pub fn websocket_query_param(mut self, name: impl Into<String>) -> Self {
        self.config.query_param = Some(name.into());
        self
    }

    /// Lets requests to exactly `path` pass without credentials.
    pub fn public_path(mut self, path: impl Into<String>) -> Self {
        self.config.public_paths.push(path.into());
        self
    }

    /// Lets requests whose path starts with `prefix` pass without credentials.
    pub fn public_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.public_prefixes.push(prefix.into());
        self
    }

    /// Checks every verified principal's session.
    pub fn session_check(mut self, check: Arc<dyn SessionCheck>) -> Self {
        self.config.session = Some(check);
        self
    }

    /// Records every failure to `sink`.
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.config.audit = Some(sink);
        self
    }

    /// Finishes the layer.
    pub fn build(self) -> JwtAuthLayer {
        JwtAuthLayer {
            config: Arc::new(self.config),
        }
    }
}
