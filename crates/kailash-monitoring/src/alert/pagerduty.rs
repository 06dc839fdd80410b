//! PagerDuty Events API v2.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::channel::{Channel, DeliveryError};
use super::http::post_json;
use super::rule::{AlertStatus, Notification, Severity};
use crate::outbound::Target;

/// PagerDuty's Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Sends each notification as a PagerDuty [Events API
/// v2](https://developer.pagerduty.com/docs/events-api-v2/trigger-events/)
/// event: `trigger` when firing, `resolve` when resolved, both with the
/// rule's stable `dedup_key` (`kailash/<rule>`), so repeats and copies
/// from several instances fold into one incident and the resolve closes it.
///
/// ```
/// use std::time::Duration;
/// use kailash_monitoring::alert::PagerDutyChannel;
///
/// let pd = PagerDutyChannel::new("R0UT1NGKEY0000000000000000000000", Duration::from_secs(10)).unwrap();
/// assert!(!format!("{pd:?}").contains("R0UT1NG"));
/// ```
#[derive(Clone)]
pub struct PagerDutyChannel {
    routing_key: String,
    target: Target,
}

impl std::fmt::Debug for PagerDutyChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagerDutyChannel")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PagerDutyChannel {
    /// Sends to PagerDuty's endpoint with `routing_key` (the integration key).
    pub fn new(routing_key: &str, timeout: Duration) -> Result<Self, String> {
        Self::with_endpoint(routing_key, PAGERDUTY_EVENTS_URL, timeout)
    }

    /// Sends to another endpoint (a proxy, a test receiver).
    pub fn with_endpoint(
        routing_key: &str,
        endpoint: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        if routing_key.is_empty()
            || routing_key.len() > 128
            || !routing_key.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err("the routing key must be 1 to 128 printable characters".to_owned());
        }
        Ok(Self {
            routing_key: routing_key.to_owned(),
            target: Target::new(endpoint, timeout)?,
        })
    }

    /// The same channel drawing its connections from `pool` (a gateway's
    /// outbound pool).
    #[must_use]
    pub fn with_pool(mut self, pool: &kailash_core::outbound::ConnectionPool) -> Self {
        self.target = self.target.with_pool(pool);
        self
    }

    /// The event for `n`.
    pub fn event(&self, n: &Notification) -> Value {
        let action = match n.status {
            AlertStatus::Firing => "trigger",
            AlertStatus::Resolved => "resolve",
        };
        if n.status == AlertStatus::Resolved {
            return json!({
                "routing_key": self.routing_key,
                "event_action": action,
                "dedup_key": n.dedup_key,
            });
        }
        let severity = match n.severity {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        let summary: String = format!("{}: {}", n.rule, n.summary)
            .chars()
            .take(1024)
            .collect();
        json!({
            "routing_key": self.routing_key,
            "event_action": action,
            "dedup_key": n.dedup_key,
            "payload": {
                "summary": summary,
                "source": n.source,
                "severity": severity,
                "timestamp": n.starts_at.to_string(),
                "component": n.rule,
                "class": "kailash-alert",
                "custom_details": {
                    "condition": n.condition,
                    "value": n.value_text(),
                },
            },
        })
    }
}

#[async_trait]
impl Channel for PagerDutyChannel {
    fn kind(&self) -> &'static str {
        "pagerduty"
    }

    async fn deliver(&self, group: &[Notification]) -> Result<(), DeliveryError> {
        // One event per alert; a retry sends them all again, which the
        // dedup key makes harmless.
        for n in group {
            let body = serde_json::to_vec(&self.event(n))
                .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
            post_json(&self.target, body).await?;
        }
        Ok(())
    }
}
