//! `[cache]`: the response cache (the seed's `enable_caching`).

use serde::{Deserialize, Serialize};

/// `[cache]`: a bounded in-memory response cache for `GET`/`HEAD`, applied
/// by routes inside their access check (see
/// [`GatewayBuilder::response_cache`](crate::GatewayBuilder::response_cache)).
/// Only responses that say how long they stay fresh are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    /// Whether the cache exists. Default false: no layer, no cost.
    pub enabled: bool,
    /// The bytes every entry together may take. Default 64 MiB.
    pub max_bytes: usize,
    /// The largest body stored, in bytes (larger ones pass through).
    /// Default 1 MiB; at most `max_bytes`.
    pub max_entry_bytes: usize,
    /// The most entries held. Default 10 000.
    pub max_entries: usize,
    /// Answers carry `x-cache: hit|miss`. Default false (it tells a
    /// client what other requests were made).
    pub x_cache_header: bool,
}

impl Default for CacheSection {
    fn default() -> Self {
        let limits = kailash_core::cache::CacheLimits::default();
        Self {
            enabled: false,
            max_bytes: limits.max_bytes,
            max_entry_bytes: limits.max_entry_bytes,
            max_entries: limits.max_entries,
            x_cache_header: false,
        }
    }
}

impl CacheSection {
    /// The store's limits.
    pub fn limits(&self) -> kailash_core::cache::CacheLimits {
        kailash_core::cache::CacheLimits {
            max_bytes: self.max_bytes,
            max_entry_bytes: self.max_entry_bytes,
            max_entries: self.max_entries,
        }
    }

    /// Checks the limits (also when disabled: a file is valid or not
    /// whatever its switches say); `(key, message)`.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        use kailash_core::cache::CacheLimitsError as E;
        match self.limits().validate() {
            Ok(()) => Ok(()),
            Err(E::ZeroBytes) => Err(("cache.max_bytes", "must be at least 1".into())),
            Err(E::ZeroEntries) => Err(("cache.max_entries", "must be at least 1".into())),
            Err(E::EntryBytes(max)) => Err((
                "cache.max_entry_bytes",
                format!("must be between 1 and cache.max_bytes ({max})"),
            )),
            Err(error) => Err(("cache", error.to_string())),
        }
    }

    /// The layer this section describes, when enabled.
    pub fn layer(&self) -> Option<kailash_core::cache::ResponseCacheLayer> {
        self.enabled.then(|| {
            kailash_core::cache::ResponseCacheLayer::new(kailash_core::cache::CacheStore::new(
                self.limits(),
            ))
            .x_cache_header(self.x_cache_header)
        })
    }
}
