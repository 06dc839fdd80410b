//! `[outbound]`: the one connection pool behind every outbound call (the
//! seed's `connection_pool_size`).

use kailash_core::outbound::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, MAX_MAX_CONNECTIONS, PoolConfig,
};
use kailash_core::spec::ConfigDuration;
use serde::{Deserialize, Serialize};

/// The longest `outbound.idle_timeout` accepted.
pub const MAX_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// `[outbound]`: the kept-alive HTTP/1.1 connections the gateway's own
/// calls share — JWKS and OpenID Connect fetches, alert and billing
/// webhooks, external-API health checks, trace export and the workflow
/// nodes' `[[integrations]]` (see [`kailash_core::outbound`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundSection {
    /// The most outbound connections open at once, busy and idle together
    /// (the seed's `connection_pool_size`), 1 to 10 000. When all are
    /// taken, the longest-idle one is closed for a new one; with none
    /// idle, a call waits for one within its own timeout. Default 100.
    pub connection_pool_size: usize,
    /// How long an unused connection is kept open for the next call to
    /// the same host; `0s` keeps none. At most one hour. Default `90s`.
    pub idle_timeout: ConfigDuration,
}

impl Default for OutboundSection {
    fn default() -> Self {
        Self {
            connection_pool_size: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: ConfigDuration(DEFAULT_IDLE_TIMEOUT),
        }
    }
}

impl OutboundSection {
    /// The pool's bounds.
    pub fn pool(&self) -> PoolConfig {
        PoolConfig::default()
            .max_connections(self.connection_pool_size)
            .idle_timeout(self.idle_timeout.0)
            .metrics(true)
    }

    /// `(key, message)` for the first value out of range.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(1..=MAX_MAX_CONNECTIONS).contains(&self.connection_pool_size) {
            return Err((
                "outbound.connection_pool_size",
                format!("must be from 1 to {MAX_MAX_CONNECTIONS}"),
            ));
        }
        if self.idle_timeout.0 > MAX_IDLE_TIMEOUT {
            return Err(("outbound.idle_timeout", "must be at most 1h".into()));
        }
        Ok(())
    }
}
