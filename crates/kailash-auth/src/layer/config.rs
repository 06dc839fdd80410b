//! What a [`JwtAuthLayer`](super::JwtAuthLayer) was configured with, shared
//! (behind one `Arc`) by the layer and every [`JwtAuth`](super::JwtAuth)
//! service it makes.

use std::sync::Arc;

use kailash_core::audit::AuditSink;
use kailash_core::public::PublicPaths;

use super::SessionCheck;
use crate::jwt::{TokenCache, Verifier};

#[derive(Clone)]
pub(super) struct Config {
    pub(super) verifier: Verifier,
    pub(super) cache: Option<Arc<TokenCache>>,
    pub(super) cookie: Option<String>,
    pub(super) public: PublicPaths,
    pub(super) session: Option<Arc<dyn SessionCheck>>,
    /// Whether the session check joins the request's admission plan.
    pub(super) defer_session: bool,
    pub(super) audit: Option<Arc<dyn AuditSink>>,
}

impl Config {
    /// Only the `Authorization` header, no cache, no session check, no
    /// audit, no public routes.
    pub(super) fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            cache: None,
            cookie: None,
            public: PublicPaths::new(),
            session: None,
            defer_session: false,
            audit: None,
        }
    }

    /// Whether `path` is served without credentials (segment-aware; see
    /// [`PublicPaths`]).
    pub(super) fn is_public(&self, path: &str) -> bool {
        self.public.contains(path)
    }
}
