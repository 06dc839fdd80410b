//! [`CacheLimits`], and what the layer and its service share.

use super::store::CacheStore;

/// The bounds of a [`CacheStore`].
///
/// The defaults (64 MiB in all, 1 MiB per entry, 10 000 entries) suit one
/// gateway instance; [`validate`](Self::validate) refuses settings that
/// could never store anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// The bytes every entry together may take (bodies, header fields and
    /// a fixed overhead per entry).
    pub max_bytes: usize,
    /// The largest response body stored; a longer (or longer-streaming)
    /// body is passed through and not stored.
    pub max_entry_bytes: usize,
    /// The most entries held.
    pub max_entries: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_entry_bytes: 1 << 20,
            max_entries: 10_000,
        }
    }
}

/// Why [`CacheLimits`] cannot be used; each names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheLimitsError {
    /// `max_bytes` is zero.
    #[error("max_bytes must be at least 1")]
    ZeroBytes,
    /// `max_entries` is zero.
    #[error("max_entries must be at least 1")]
    ZeroEntries,
    /// `max_entry_bytes` is zero or larger than `max_bytes`.
    #[error("max_entry_bytes must be between 1 and max_bytes ({0})")]
    EntryBytes(usize),
}

impl CacheLimits {
    /// Checks that the limits can hold at least one entry.
    pub fn validate(&self) -> Result<(), CacheLimitsError> {
        if self.max_bytes == 0 {
            return Err(CacheLimitsError::ZeroBytes);
        }
        if self.max_entries == 0 {
            return Err(CacheLimitsError::ZeroEntries);
        }
        if self.max_entry_bytes == 0 || self.max_entry_bytes > self.max_bytes {
            return Err(CacheLimitsError::EntryBytes(self.max_bytes));
        }
        Ok(())
    }
}

/// What the layer and its service share.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) store: CacheStore,
    /// Whether answers carry `x-cache: hit|miss`.
    pub(crate) x_cache: bool,
}
