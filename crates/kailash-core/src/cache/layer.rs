use std::sync::Arc;

use tower::Layer;

use super::config::Config;
use super::service::ResponseCache;
use super::store::CacheStore;

/// Answers `GET` and `HEAD` requests from stored responses; see the
/// [module docs](super) for where it belongs in a stack.
#[derive(Debug, Clone)]
pub struct ResponseCacheLayer {
    config: Arc<Config>,
}

impl ResponseCacheLayer {
    /// A cache over `store` (shared by every clone of the layer and every
    /// other layer built from the same store).
    pub fn new(store: CacheStore) -> Self {
        Self {
            config: Arc::new(Config {
                store,
                x_cache: false,
            }),
        }
    }

    /// Marks every answer that went through the lookup with
    /// `x-cache: hit` or `x-cache: miss` (off by default: it tells any
    /// client what other requests were made).
    #[must_use]
    pub fn x_cache_header(self, on: bool) -> Self {
        Self {
            config: Arc::new(Config {
                store: self.config.store.clone(),
                x_cache: on,
            }),
        }
    }

    /// The store it answers from.
    pub fn store(&self) -> &CacheStore {
        &self.config.store
    }
}

impl<S> Layer<S> for ResponseCacheLayer {
    type Service = ResponseCache<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponseCache {
            inner,
            config: self.config.clone(),
        }
    }
}
