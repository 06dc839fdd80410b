//! Where notifications go, and how they get there: a bounded queue per
//! channel, a delivery task, retries with backoff, counted outcomes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::rule::{Notification, Severity};

/// A notification channel: Slack, PagerDuty, e-mail or your own.
///
/// One call delivers one *group*: every notification for this channel
/// from one evaluation round (a channel whose API takes one alert at a
/// time, like PagerDuty, sends them one by one).
#[async_trait]
pub trait Channel: Send + Sync + 'static {
    /// The kind, for logs (`slack`, `pagerduty`, `email`).
    fn kind(&self) -> &'static str;

    /// Delivers `group` (never empty). Keep secrets (webhook URLs,
    /// integration keys, passwords) out of the error text.
    async fn deliver(&self, group: &[Notification]) -> Result<(), DeliveryError>;
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// Worth trying again (connection refused, timeout, 5xx, 429).
    #[error("{0}")]
    Retry(String),
    /// Trying again will not help (4xx: a revoked webhook, a bad key).
    #[error("{0}")]
    Permanent(String),
}

/// Retries of a failed delivery: `attempts` in all, waiting
/// `first_backoff`, then twice as long each time, at most `max_backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// The wait after the first failure.
    pub first_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Six attempts over about a minute: 1, 2, 4, 8, 16 s between them.
    fn default() -> Self {
        Self {
            attempts: 6,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `n` (1-based).
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(16);
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// A channel with its name (the `channel` label of
/// `kailash_alert_notifications_total`) and the severities it takes.
#[derive(Clone)]
pub struct Route {
    pub(crate) name: String,
    pub(crate) severities: Vec<Severity>,
    pub(crate) channel: Arc<dyn Channel>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("kind", &self.channel.kind())
            .field("severities", &self.severities)
            .finish()
    }
}

impl Route {
    /// `channel` named `name`, taking `severities` (all when empty).
    pub fn new(name: &str, severities: &[Severity], channel: impl Channel) -> Self {
        Self::shared(name, severities, Arc::new(channel))
    }

    /// [`new`](Self::new) with a shared channel.
    pub fn shared(name: &str, severities: &[Severity], channel: Arc<dyn Channel>) -> Self {
        let severities = if severities.is_empty() {
            Severity::ALL.to_vec()
        } else {
            severities.to_vec()
        };
        Self {
            name: name.to_owned(),
            severities,
            channel,
        }
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the route takes `severity`.
    pub fn takes(&self, severity: Severity) -> bool {
        self.severities.contains(&severity)
    }
}

fn count(channel: &str, outcome: &'static str) {
    metrics::counter!(
        "kailash_alert_notifications_total",
        "channel" => channel.to_owned(),
        "outcome" => outcome
    )
    .increment(1);
}

/// Enqueues without waiting; a full queue counts the group as dropped.
pub(crate) fn enqueue(
    route: &Route,
    tx: &mpsc::Sender<Vec<Notification>>,
    group: Vec<Notification>,
) {
    match tx.try_send(group) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(group)) => {
            count(&route.name, "dropped");
            tracing::error!(
                channel = %route.name,
                alerts = group.len(),
                "alert channel queue full: notification dropped (the receiver is down or slow)"
            );
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            count(&route.name, "dropped");
            tracing::error!(channel = %route.name, "alert channel stopped: notification dropped");
        }
    }
}

/// Delivers queued groups one after another, with retries, until the
/// queue closes.
pub(crate) async fn deliver_queue(
    route: Route,
    mut rx: mpsc::Receiver<Vec<Notification>>,
    retry: RetryPolicy,
) {
    while let Some(group) = rx.recv().await {
        deliver_one(&route, &group, retry).await;
    }
}

async fn deliver_one(route: &Route, group: &[Notification], retry: RetryPolicy) {
    let attempts = retry.attempts.max(1);
    for attempt in 1..=attempts {
        match route.channel.deliver(group).await {
            Ok(()) => {
                count(&route.name, "sent");
                if attempt > 1 {
                    tracing::info!(channel = %route.name, attempt, "alert notification delivered after retries");
                }
                return;
            }
            Err(DeliveryError::Permanent(error)) => {
                count(&route.name, "failed");
                tracing::error!(channel = %route.name, kind = route.channel.kind(), %error, "alert notification refused; not retried");
                return;
            }
            Err(DeliveryError::Retry(error)) if attempt < attempts => {
                count(&route.name, "retried");
                let wait = retry.backoff(attempt);
                tracing::warn!(channel = %route.name, kind = route.channel.kind(), %error, attempt, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "alert notification failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(DeliveryError::Retry(error)) => {
                count(&route.name, "failed");
                tracing::error!(channel = %route.name, kind = route.channel.kind(), %error, attempts, "alert notification failed after every retry");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let r = RetryPolicy::default();
        let waits: Vec<u64> = (1..=8).map(|n| r.backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(r.backoff(u32::MAX), Duration::from_secs(60));
    }
}
