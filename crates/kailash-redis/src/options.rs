//! Connection settings of [`RedisState`](crate::RedisState).

use std::time::Duration;

/// Settings of a [`RedisState`](crate::RedisState).
///
/// Built from [`RedisOptions::default`] and the `with_*` methods:
///
/// ```
/// use std::time::Duration;
/// use kailash_redis::RedisOptions;
///
/// let options = RedisOptions::default()
///     .with_key_prefix("gateway-eu:")
///     .with_response_timeout(Duration::from_millis(250));
/// assert_eq!(options.key_prefix, "gateway-eu:");
/// assert_eq!(options.connection_timeout, Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Prepended to every Redis key and pub/sub channel this backend uses
    /// (default `"kailash:"`), so several applications or environments can
    /// share one Redis. Instances that must see each other's state need the
    /// same prefix.
    pub key_prefix: String,
    /// How long one attempt to open a connection may take (default 1 s).
    pub connection_timeout: Duration,
    /// How long Redis may take to answer one command once connected
    /// (default 500 ms).
    ///
    /// Every operation is bounded by `connection_timeout + response_timeout`;
    /// past that it fails with
    /// [`StateError::Unavailable`](kailash_core::state::StateError::Unavailable).
    pub response_timeout: Duration,
    /// Messages buffered per topic and instance for a slow subscriber before
    /// it sees [`RecvError::Lagged`](kailash_core::state::RecvError::Lagged)
    /// (default 1024).
    pub pubsub_capacity: usize,
    /// When `true`, [`RedisState::connect`](crate::RedisState::connect) fails
    /// with `StateError::Unavailable` if Redis does not answer a `PING`.
    /// When `false` (the default) it logs a warning and returns a backend
    /// whose operations fail with `Unavailable` until Redis is reachable.
    pub require_connection: bool,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            key_prefix: "kailash:".to_owned(),
            connection_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_millis(500),
            pubsub_capacity: 1024,
            require_connection: false,
        }
    }
}

impl RedisOptions {
    /// Sets [`key_prefix`](Self::key_prefix).
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets [`connection_timeout`](Self::connection_timeout).
    #[must_use]
    pub fn with_connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Sets [`response_timeout`](Self::response_timeout).
    #[must_use]
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Sets [`pubsub_capacity`](Self::pubsub_capacity).
    #[must_use]
    pub fn with_pubsub_capacity(mut self, capacity: usize) -> Self {
        self.pubsub_capacity = capacity;
        self
    }

    /// Sets [`require_connection`](Self::require_connection).
    #[must_use]
    pub fn with_require_connection(mut self, require: bool) -> Self {
        self.require_connection = require;
        self
    }

    /// The options with zero durations and capacities raised to their minimum.
    pub(crate) fn normalized(mut self) -> Self {
        const MIN: Duration = Duration::from_millis(1);
        self.connection_timeout = self.connection_timeout.max(MIN);
        self.response_timeout = self.response_timeout.max(MIN);
        self.pubsub_capacity = self.pubsub_capacity.max(1);
        self
    }

    /// The longest any one operation may take.
    pub(crate) fn operation_timeout(&self) -> Duration {
        self.connection_timeout
            .saturating_add(self.response_timeout)
    }
}
