//! [`RealtimeConfig`]: the `[realtime]` section of a gateway config file.

use std::time::Duration;

use kailash_core::spec::ConfigDuration;
use kailash_core::state::log::MAX_LOG_CAP;
use serde::{Deserialize, Serialize};

use crate::channel::ChannelRule;
use crate::error::RealtimeError;

/// Settings of the realtime endpoint and hub; every field has a default, so
/// an empty `[realtime]` section is a working one.
///
/// ```
/// use kailash_realtime::RealtimeConfig;
///
/// let config: RealtimeConfig = toml::from_str(r#"
///     max_connections_per_user = 4
///     heartbeat = "20s"
///     origins = ["https://app.example"]
///     [[channels]]
///     pattern = "workflows.*"
///     permission = "workflow:view"
/// "#).unwrap();
/// config.validate().unwrap();
/// assert_eq!(config.ws_path, "/ws");
/// assert_eq!(config.read_buffer_size, 4096);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeConfig {
    /// The WebSocket route (`/ws`).
    pub ws_path: String,
    /// The server-sent events route (`/events`).
    pub sse_path: String,
    /// Allowed `Origin`s of browser upgrades (`https://app.example`, or
    /// `*`). `None` (the gateway fills in `[cors] origins`) and an empty
    /// list allow only the request's own host. Requests without `Origin`
    /// (non-browser clients) are not affected.
    pub origins: Option<Vec<String>>,
    /// Open connections per user on this instance (4029 beyond).
    pub max_connections_per_user: usize,
    /// Open connections per tenant on this instance (4029 beyond).
    pub max_connections_per_tenant: usize,
    /// How often the server pings.
    pub heartbeat: ConfigDuration,
    /// A connection from which nothing (not even a pong) arrived for this
    /// long is closed (4000).
    pub idle_timeout: ConfigDuration,
    /// The socket read buffer (bytes).
    pub read_buffer_size: usize,
    /// The socket write buffer (bytes).
    pub write_buffer_size: usize,
    /// The largest message a client may send (bytes; 1009 beyond).
    pub max_message_size: usize,
    /// Frames queued per connection before it counts as a slow consumer (4008).
    pub send_queue: usize,
    /// Channels one connection may subscribe to.
    pub max_subscriptions: usize,
    /// Events kept per tenant for `resume` (at most 100 000).
    pub history_size: u32,
    /// How long a tenant's history is kept after its last event.
    pub history_ttl: ConfigDuration,
    /// Which permission subscribing to a channel needs; see
    /// [`ChannelRules`](crate::channel::ChannelRules).
    pub channels: Vec<ChannelRule>,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            ws_path: "/ws".into(),
            sse_path: "/events".into(),
            origins: None,
            max_connections_per_user: 16,
            max_connections_per_tenant: 10_000,
            heartbeat: ConfigDuration(Duration::from_secs(25)),
            idle_timeout: ConfigDuration(Duration::from_secs(60)),
            read_buffer_size: 4096,
            write_buffer_size: 4096,
            max_message_size: 16 * 1024,
            send_queue: 64,
            max_subscriptions: 32,
            history_size: 1000,
            history_ttl: ConfigDuration(Duration::from_secs(24 * 3600)),
            channels: Vec::new(),
        }
    }
}

impl RealtimeConfig {
    /// Checks every value's range.
    pub fn validate(&self) -> Result<(), RealtimeError> {
        let fail = |m| Err(RealtimeError::Config(m));
        if !self.ws_path.starts_with('/') || !self.sse_path.starts_with('/') {
            return fail("ws_path and sse_path must start with `/`");
        }
        if self.ws_path == self.sse_path {
            return fail("ws_path and sse_path must differ");
        }
        if self.max_connections_per_user == 0 || self.max_connections_per_tenant == 0 {
            return fail("connection caps must be positive");
        }
        if self.heartbeat.0 < Duration::from_secs(1) || self.idle_timeout.0 <= self.heartbeat.0 {
            return fail("heartbeat must be at least 1s and shorter than idle_timeout");
        }
        if !(1024..=1 << 20).contains(&self.read_buffer_size)
            || !(1024..=1 << 20).contains(&self.write_buffer_size)
        {
            return fail("buffer sizes must be 1 KiB to 1 MiB");
        }
        if !(256..=1 << 20).contains(&self.max_message_size) {
            return fail("max_message_size must be 256 bytes to 1 MiB");
        }
        if !(1..=65_536).contains(&self.send_queue) || !(1..=1024).contains(&self.max_subscriptions)
        {
            return fail("send_queue must be 1-65536 and max_subscriptions 1-1024");
        }
        if !(1..=MAX_LOG_CAP).contains(&self.history_size) {
            return fail("history_size must be 1-100000");
        }
        if let Some(origins) = &self.origins
            && origins
                .iter()
                .any(|o| o != "*" && http::Uri::try_from(o.as_str()).is_err())
        {
            return fail("an origin is not a URL");
        }
        for rule in &self.channels {
            rule.validate()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_nonsense_is_refused() {
        RealtimeConfig::default().validate().unwrap();
        let bad = [
            RealtimeConfig {
                history_size: 100_001,
                ..RealtimeConfig::default()
            },
            RealtimeConfig {
                heartbeat: ConfigDuration(Duration::from_secs(60)),
                ..RealtimeConfig::default()
            },
            RealtimeConfig {
                read_buffer_size: 128 * 1024 * 1024,
                ..RealtimeConfig::default()
            },
            RealtimeConfig {
                sse_path: "/ws".into(),
                ..RealtimeConfig::default()
            },
            RealtimeConfig {
                origins: Some(vec!["not a url".into()]),
                ..RealtimeConfig::default()
            },
            RealtimeConfig {
                max_connections_per_user: 0,
                ..RealtimeConfig::default()
            },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }
}
