//! What a [`JwtAuthLayer`](super::JwtAuthLayer) was configured with, shared
//! (behind one `Arc`) by the layer and every [`JwtAuth`](super::JwtAuth)
//! service it makes.

use std::sync::Arc;

use kailash_core::audit::AuditSink;

use super::SessionCheck;
use crate::jwt::{TokenCache, Verifier};

#[derive(Clone)]
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
    /// Only the `Authorization` header, no cache, no session check, no
    /// audit, no public routes.
    pub(super) fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            cache: None,
            cookie: None,
            query_param: None,
            public_paths: Vec::new(),
            public_prefixes: Vec::new(),
            session: None,
            audit: None,
        }
    }

    /// Whether `path` is served without credentials.
    pub(super) fn is_public(&self, path: &str) -> bool {
        self.public_paths.iter().any(|p| p == path)
            || self
                .public_prefixes
                .iter()
                .any(|p| path.starts_with(p.as_str()))
    }
}
