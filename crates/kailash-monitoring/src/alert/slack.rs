//! Slack incoming webhooks.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::channel::{Channel, DeliveryError};
use super::http::post_json;
use super::rule::{AlertStatus, Notification};
use crate::outbound::Target;

/// The most alerts listed in one Slack message (the rest are counted).
pub const MAX_SLACK_ALERTS: usize = 20;

/// Posts a group of notifications as one message to a Slack [incoming
/// webhook](https://api.slack.com/messaging/webhooks): a plain `text`
/// (what notifications and old clients show) plus `blocks`, one section
/// per alert.
///
/// ```
/// use std::time::Duration;
/// use kailash_monitoring::alert::SlackChannel;
///
/// assert!(SlackChannel::new("https://hooks.slack.com/services/T0/B0/x", Duration::from_secs(10)).is_ok());
/// // The error never repeats the URL: it is a secret.
/// let e = SlackChannel::new("hooks.slack.com/services/T0/B0/secret", Duration::from_secs(10)).unwrap_err();
/// assert!(!e.contains("secret"));
/// ```
#[derive(Debug, Clone)]
pub struct SlackChannel {
    target: Target,
}

impl SlackChannel {
    /// Posts to `webhook_url`, each attempt bounded by `timeout`.
    pub fn new(webhook_url: &str, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            target: Target::new(webhook_url, timeout)?,
        })
    }

    /// The same channel drawing its connections from `pool` (a gateway's
    /// outbound pool).
    #[must_use]
    pub fn with_pool(mut self, pool: &kailash_core::outbound::ConnectionPool) -> Self {
        self.target = self.target.with_pool(pool);
        self
    }

    /// The JSON body for `group`.
    pub fn payload(group: &[Notification]) -> Value {
        let firing = group
            .iter()
            .filter(|n| n.status == AlertStatus::Firing)
            .count();
        let resolved = group.len() - firing;
        let source = group.first().map_or("", |n| n.source.as_str());
        let mut head = Vec::new();
        if firing > 0 {
            head.push(format!("{firing} firing"));
        }
        if resolved > 0 {
            head.push(format!("{resolved} resolved"));
        }
        let headline = format!("{source}: {}", head.join(", "));
        let mut text = headline.clone();
        let mut blocks = vec![json!({
            "type": "header",
            "text": { "type": "plain_text", "text": truncate(&headline, 150) }
        })];
        for n in group.iter().take(MAX_SLACK_ALERTS) {
            text.push('\n');
            text.push_str(&n.one_line());
            let icon = match n.status {
                AlertStatus::Firing => ":rotating_light:",
                AlertStatus::Resolved => ":white_check_mark:",
            };
            let mut lines = format!(
                "{icon} *{}* `{}` ({}) — {}\n`{}` is {}\nsince {}",
                n.status.as_str().to_uppercase(),
                escape(&n.rule),
                n.severity,
                escape(&n.summary),
                escape(&n.condition),
                n.value_text(),
                n.starts_at
            );
            if let Some(end) = n.ends_at {
                lines.push_str(&format!(", until {end}"));
            }
            blocks.push(json!({
                "type": "section",
                "text": { "type": "mrkdwn", "text": truncate(&lines, 3000) }
            }));
        }
        if group.len() > MAX_SLACK_ALERTS {
            let more = format!("… and {} more", group.len() - MAX_SLACK_ALERTS);
            text.push('\n');
            text.push_str(&more);
            blocks.push(json!({
                "type": "context",
                "elements": [{ "type": "mrkdwn", "text": more }]
            }));
        }
        json!({ "text": text, "blocks": blocks })
    }
}

/// Slack's three control characters in mrkdwn.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max.saturating_sub(1)) {
        Some((i, _)) if s.chars().count() > max => format!("{}…", &s[..i]),
        _ => s.to_owned(),
    }
}

#[async_trait]
impl Channel for SlackChannel {
    fn kind(&self) -> &'static str {
        "slack"
    }

    async fn deliver(&self, group: &[Notification]) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(&Self::payload(group))
            .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        post_json(&self.target, body).await
    }
}
