//! `[alerting]`: rules over the gateway's signals, and where their
//! notifications go.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use kailash_core::spec::ConfigDuration;
use kailash_monitoring::alert::{AlertRule, Severity, SmtpSecurity};

/// The most `[[alerting.rules]]`.
pub const MAX_ALERT_RULES: usize = 256;
/// The most `[[alerting.channels]]`.
pub const MAX_ALERT_CHANNELS: usize = 16;

/// `[alerting]`: the seed's `AlertManager`. Off unless it has rules.
///
/// ```toml
/// [alerting]
/// interval = "15s"
/// repeat_interval = "4h"
///
/// [[alerting.rules]]
/// name = "workflow_failures"
/// condition = "workflow_failure_rate > 0.05"
/// duration = "5m"
/// severity = "critical"
///
/// [[alerting.channels]]
/// name = "oncall"
/// type = "pagerduty"
/// severity_levels = ["critical"]
/// routing_key_file = "/run/secrets/pagerduty-routing-key"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// How often the rules are evaluated. Default `15s`.
    pub interval: ConfigDuration,
    /// How often a still-firing alert is sent again. Default `4h`.
    pub repeat_interval: ConfigDuration,
    /// Delivery attempts per notification before it counts as failed
    /// (backoff 1 s, doubling, at most 60 s). Default 6.
    pub attempts: u32,
    /// Notification groups waiting per channel before new ones are
    /// dropped (counted). Default 256.
    pub queue: usize,
    /// The service named in notifications. Default: `gateway.title`.
    pub source: Option<String>,
    /// The rules.
    pub rules: Vec<AlertRuleConfig>,
    /// The channels.
    pub channels: Vec<AlertChannelConfig>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        Self {
            interval: ConfigDuration(std::time::Duration::from_secs(15)),
            repeat_interval: ConfigDuration(std::time::Duration::from_secs(4 * 3600)),
            attempts: 6,
            queue: 256,
            source: None,
            rules: Vec::new(),
            channels: Vec::new(),
        }
    }
}

/// One `[[alerting.rules]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleConfig {
    /// `[a-z0-9_-]`, up to 64 characters; unique.
    pub name: String,
    /// `<signal> <op> <literal>`: `memory_usage > 0.8`,
    /// `state_health == false`.
    pub condition: String,
    /// How long the condition must hold before the alert fires. Default 0.
    #[serde(default)]
    pub duration: Option<ConfigDuration>,
    /// `info`, `warning` or `critical`.
    pub severity: Severity,
    /// The text notifications lead with (default: the condition).
    #[serde(default)]
    pub summary: Option<String>,
}

impl AlertRuleConfig {
    /// The rule, or why it was refused.
    pub fn rule(&self) -> Result<AlertRule, kailash_monitoring::alert::RuleError> {
        let mut rule = AlertRule::new(&self.name, &self.condition, self.severity)?;
        if let Some(d) = self.duration {
            rule = rule.for_duration(d.0)?;
        }
        if let Some(s) = &self.summary {
            rule = rule.summary(s)?;
        }
        Ok(rule)
    }
}

/// A channel's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelType {
    /// A Slack incoming webhook (`webhook_url_env` or `webhook_url_file`).
    Slack,
    /// PagerDuty Events API v2 (`routing_key_env` or `routing_key_file`).
    Pagerduty,
    /// SMTP (`host`, `port`, `security`, `from`, `to`, and optionally
    /// `username` with `password_env` or `password_file`).
    Email,
}

/// One `[[alerting.channels]]` entry. Secrets (webhook URLs, routing
/// keys, SMTP passwords) are never written in the file: each is read from
/// an environment variable (`*_env`) or a file (`*_file`, e.g. a mounted
/// Kubernetes secret) when the gateway starts.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertChannelConfig {
    /// `[a-z0-9_-]`, up to 64 characters; unique. The `channel` label of
    /// `kailash_alert_notifications_total`.
    pub name: String,
    /// `slack`, `pagerduty` or `email`.
    #[serde(rename = "type")]
    pub kind: ChannelType,
    /// The severities sent here (default: all).
    #[serde(default)]
    pub severity_levels: Vec<Severity>,
    /// Bound on each delivery attempt. Default `10s`.
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
    /// Slack: the variable holding the webhook URL.
    #[serde(default)]
    pub webhook_url_env: Option<String>,
    /// Slack: the file holding the webhook URL.
    #[serde(default)]
    pub webhook_url_file: Option<PathBuf>,
    /// PagerDuty: the variable holding the routing (integration) key.
    #[serde(default)]
    pub routing_key_env: Option<String>,
    /// PagerDuty: the file holding the routing key.
    #[serde(default)]
    pub routing_key_file: Option<PathBuf>,
    /// PagerDuty: another Events API endpoint (a proxy). Default
    /// `https://events.pagerduty.com/v2/enqueue`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// E-mail: the SMTP server.
    #[serde(default)]
    pub host: Option<String>,
    /// E-mail: its port. Default 587 (465 with `security = "tls"`).
    #[serde(default)]
    pub port: Option<u16>,
    /// E-mail: `starttls` (default), `tls` or `none`.
    #[serde(default)]
    pub security: Option<SmtpSecurity>,
    /// E-mail: the SMTP user, when the server wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// E-mail: the variable holding the SMTP password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// E-mail: the file holding the SMTP password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// E-mail: the sender.
    #[serde(default)]
    pub from: Option<String>,
    /// E-mail: the recipients.
    #[serde(default)]
    pub to: Vec<String>,
}

impl std::fmt::Debug for AlertChannelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only references to secrets live here, but keep Debug short.
        f.debug_struct("AlertChannelConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("severity_levels", &self.severity_levels)
            .finish_non_exhaustive()
    }
}

/// Where a secret comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SecretSource<'a> {
    Env(&'a str),
    File(&'a std::path::Path),
}

/// The most bytes read from a secret file.
const MAX_SECRET_BYTES: u64 = 4096;

impl SecretSource<'_> {
    /// Reads the secret (trimmed); the error names the source, never the value.
    pub(crate) fn read(self) -> Result<String, String> {
        let value = match self {
            Self::Env(name) => std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set (or not UTF-8)"))?,
            Self::File(path) => {
                use std::io::Read;
                let mut text = String::new();
                std::fs::File::open(path)
                    .and_then(|f| f.take(MAX_SECRET_BYTES).read_to_string(&mut text))
                    .map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?;
                text
            }
        };
        let value = value.trim().to_owned();
        if value.is_empty() {
            return Err(match self {
                Self::Env(name) => format!("environment variable {name} is empty"),
                Self::File(path) => format!("{} is empty", path.display()),
            });
        }
        Ok(value)
    }
}

impl AlertChannelConfig {
    /// The one secret source of a pair, or why there is not exactly one.
    pub(crate) fn secret<'a>(
        env: &'a Option<String>,
        file: &'a Option<PathBuf>,
        what: &str,
    ) -> Result<Option<SecretSource<'a>>, String> {
        match (env, file) {
            (Some(_), Some(_)) => Err(format!("set `{what}_env` or `{what}_file`, not both")),
            (Some(e), None) => Ok(Some(SecretSource::Env(e))),
            (None, Some(f)) => Ok(Some(SecretSource::File(f))),
            (None, None) => Ok(None),
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl AlertingConfig {
    /// Checks values that parse but make no sense; `(key, message)`.
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        let e = |k: &str, m: &str| Err((format!("alerting.{k}"), m.to_owned()));
        if self.interval.0.is_zero() {
            return e("interval", "must be positive");
        }
        if self.repeat_interval.0 < self.interval.0 {
            return e(
                "repeat_interval",
                "must not be shorter than alerting.interval",
            );
        }
        if self.attempts == 0 || self.attempts > 20 {
            return e("attempts", "must be between 1 and 20");
        }
        if self.queue == 0 || self.queue > 65_536 {
            return e("queue", "must be between 1 and 65536");
        }
        if self
            .source
            .as_ref()
            .is_some_and(|s| s.is_empty() || s.len() > 128)
        {
            return e("source", "must be 1 to 128 characters");
        }
        if self.rules.len() > MAX_ALERT_RULES {
            return e("rules", &format!("at most {MAX_ALERT_RULES} rules"));
        }
        if self.channels.len() > MAX_ALERT_CHANNELS {
            return e(
                "channels",
                &format!("at most {MAX_ALERT_CHANNELS} channels"),
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            if let Err(error) = r.rule() {
                use kailash_monitoring::alert::RuleError;
                let field = match error {
                    RuleError::Name => "name",
                    RuleError::Condition(_) => "condition",
                    RuleError::Summary => "summary",
                    RuleError::Duration => "duration",
                    _ => "severity",
                };
                return Err((format!("alerting.rules[{i}].{field}"), error.to_string()));
            }
            if !names.insert(&r.name) {
                return e(
                    &format!("rules[{i}].name"),
                    &format!("a second rule named `{}`", r.name),
                );
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, c) in self.channels.iter().enumerate() {
            let key = |field: &str| format!("alerting.channels[{i}].{field}");
            let bad = |field: &str, m: String| Err((key(field), m));
            if !valid_name(&c.name) {
                return bad(
                    "name",
                    "must be 1 to 64 characters of a-z, 0-9, _ and -".into(),
                );
            }
            if !names.insert(&c.name) {
                return bad("name", format!("a second channel named `{}`", c.name));
            }
            if c.timeout
                .is_some_and(|t| t.0.is_zero() || t.0.as_secs() > 120)
            {
                return bad("timeout", "must be positive and at most 2m".into());
            }
            // Fields of another type are refused, not ignored.
            let present: Vec<&str> = [
                ("webhook_url_env", c.webhook_url_env.is_some()),
                ("webhook_url_file", c.webhook_url_file.is_some()),
                ("routing_key_env", c.routing_key_env.is_some()),
                ("routing_key_file", c.routing_key_file.is_some()),
                ("endpoint", c.endpoint.is_some()),
                ("host", c.host.is_some()),
                ("port", c.port.is_some()),
                ("security", c.security.is_some()),
                ("username", c.username.is_some()),
                ("password_env", c.password_env.is_some()),
                ("password_file", c.password_file.is_some()),
                ("from", c.from.is_some()),
                ("to", !c.to.is_empty()),
            ]
            .into_iter()
            .filter_map(|(k, set)| set.then_some(k))
            .collect();
            let allowed: &[&str] = match c.kind {
                ChannelType::Slack => &["webhook_url_env", "webhook_url_file"],
                ChannelType::Pagerduty => &["routing_key_env", "routing_key_file", "endpoint"],
                ChannelType::Email => &[
                    "host",
                    "port",
                    "security",
                    "username",
                    "password_env",
                    "password_file",
                    "from",
                    "to",
                ],
            };
            if let Some(field) = present.iter().find(|f| !allowed.contains(f)) {
                return bad(
                    field,
                    format!("not a setting of a `{}` channel", kind_name(c.kind)),
                );
            }
            let one = |env: &Option<String>, file: &Option<PathBuf>, what: &str| {
                match AlertChannelConfig::secret(env, file, what) {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err((
                        key(&format!("{what}_env")),
                        format!("set `{what}_env` or `{what}_file`"),
                    )),
                    Err(m) => Err((key(&format!("{what}_env")), m)),
                }
            };
            match c.kind {
                ChannelType::Slack => one(&c.webhook_url_env, &c.webhook_url_file, "webhook_url")?,
                ChannelType::Pagerduty => {
                    one(&c.routing_key_env, &c.routing_key_file, "routing_key")?;
                    if let Some(endpoint) = &c.endpoint
                        && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
                    {
                        return bad("endpoint", "must be an http(s) URL".into());
                    }
                }
                ChannelType::Email => {
                    if c.host.as_ref().is_none_or(|h| h.is_empty()) {
                        return bad("host", "an e-mail channel needs the SMTP host".into());
                    }
                    if c.from.is_none() {
                        return bad("from", "an e-mail channel needs a sender".into());
                    }
                    if c.to.is_empty() {
                        return bad(
                            "to",
                            "an e-mail channel needs at least one recipient".into(),
                        );
                    }
                    let password =
                        AlertChannelConfig::secret(&c.password_env, &c.password_file, "password")
                            .map_err(|m| (key("password_env"), m))?;
                    if password.is_some() != c.username.is_some() {
                        return bad(
                            "username",
                            "set `username` together with `password_env` or `password_file`".into(),
                        );
                    }
                    if c.security == Some(SmtpSecurity::None) && c.username.is_some() {
                        return bad(
                            "security",
                            "a password is never sent without TLS: use `starttls` or `tls`".into(),
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

/// The type's name in the file.
pub(crate) fn kind_name(kind: ChannelType) -> &'static str {
    match kind {
        ChannelType::Slack => "slack",
        ChannelType::Pagerduty => "pagerduty",
        ChannelType::Email => "email",
    }
}
