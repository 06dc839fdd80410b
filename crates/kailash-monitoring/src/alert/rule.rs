//! Alert rules and what a notification carries.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::condition::{Condition, ConditionError};
use crate::signal::SignalValue;

/// How urgent an alert is; channels take the severities they are
/// configured for (the seed's `severity_levels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; no action needed now.
    Info,
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// `info`, `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    /// Every severity, least urgent first.
    pub const ALL: [Severity; 3] = [Self::Info, Self::Warning, Self::Critical];
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "info" => Ok(Self::Info),
            "warning" => Ok(Self::Warning),
            "critical" => Ok(Self::Critical),
            _ => Err(RuleError::Severity(s.chars().take(32).collect())),
        }
    }
}

/// The longest rule name, in bytes.
pub const MAX_RULE_NAME_BYTES: usize = 64;
/// The longest rule summary, in bytes.
pub const MAX_SUMMARY_BYTES: usize = 512;
/// The longest `duration` a rule may wait before firing.
pub const MAX_RULE_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The name is empty, too long or has characters outside `[a-z0-9_-]`.
    #[error("a rule name is 1 to {MAX_RULE_NAME_BYTES} characters of a-z, 0-9, _ and -")]
    Name,
    /// The condition does not parse.
    #[error("condition: {0}")]
    Condition(#[from] ConditionError),
    /// Unknown severity.
    #[error("unknown severity `{0}` (info, warning or critical)")]
    Severity(String),
    /// The summary is too long.
    #[error("the summary is longer than {MAX_SUMMARY_BYTES} bytes")]
    Summary,
    /// The duration is longer than [`MAX_RULE_DURATION`].
    #[error("the duration is longer than 7 days")]
    Duration,
}

/// One alert rule: a [`Condition`] that must hold for `duration` before
/// the alert fires (it is *pending* meanwhile), with a severity and a
/// human summary.
///
/// ```
/// use std::time::Duration;
/// use kailash_monitoring::alert::{AlertRule, Severity};
///
/// let rule = AlertRule::new("high_failure_rate", "workflow_failure_rate > 0.05", Severity::Critical)
///     .unwrap()
///     .for_duration(Duration::from_secs(300))
///     .unwrap()
///     .summary("More than 5% of workflow runs fail")
///     .unwrap();
/// assert_eq!(rule.name(), "high_failure_rate");
/// assert!(AlertRule::new("Bad Name", "x > 1", Severity::Info).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    name: String,
    condition: Condition,
    duration: Duration,
    severity: Severity,
    summary: Option<String>,
}

impl AlertRule {
    /// A rule firing as soon as `condition` holds (see
    /// [`for_duration`](Self::for_duration)).
    pub fn new(name: &str, condition: &str, severity: Severity) -> Result<Self, RuleError> {
        let valid = !name.is_empty()
            && name.len() <= MAX_RULE_NAME_BYTES
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            return Err(RuleError::Name);
        }
        Ok(Self {
            name: name.to_owned(),
            condition: Condition::parse(condition)?,
            duration: Duration::ZERO,
            severity,
            summary: None,
        })
    }

    /// How long the condition must hold before the alert fires.
    pub fn for_duration(mut self, duration: Duration) -> Result<Self, RuleError> {
        if duration > MAX_RULE_DURATION {
            return Err(RuleError::Duration);
        }
        self.duration = duration;
        Ok(self)
    }

    /// The text notifications lead with (default: the condition).
    pub fn summary(mut self, summary: &str) -> Result<Self, RuleError> {
        if summary.len() > MAX_SUMMARY_BYTES {
            return Err(RuleError::Summary);
        }
        self.summary = Some(summary.to_owned());
        Ok(self)
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its condition.
    pub fn condition(&self) -> &Condition {
        &self.condition
    }

    /// How long the condition must hold before firing.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Its severity.
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// The summary, or the condition's text.
    pub fn summary_text(&self) -> String {
        self.summary
            .clone()
            .unwrap_or_else(|| self.condition.to_string())
    }
}

/// Whether a notification reports an alert firing or its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The condition has held for the rule's duration (sent again every
    /// repeat interval while it lasts).
    Firing,
    /// The condition no longer holds.
    Resolved,
}

impl AlertStatus {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// One alert in a notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Firing or resolved.
    pub status: AlertStatus,
    /// The rule's name.
    pub rule: String,
    /// The rule's severity.
    pub severity: Severity,
    /// The rule's summary (or condition).
    pub summary: String,
    /// The condition, as text.
    pub condition: String,
    /// The signal's value when the notification was made (absent when no
    /// source reported it).
    pub value: Option<SignalValue>,
    /// When the condition started to hold.
    pub starts_at: Timestamp,
    /// When it stopped holding (resolved notifications).
    pub ends_at: Option<Timestamp>,
    /// The same for every notification about this rule, on every instance
    /// and across restarts: `kailash/<rule>` (PagerDuty's `dedup_key`).
    pub dedup_key: String,
    /// The service reporting it (the alerting's `source`, e.g. the
    /// gateway's name).
    pub source: String,
}

impl Notification {
    /// The value as text (`0.93`, `false`, or `absent`).
    pub fn value_text(&self) -> String {
        match self.value {
            Some(SignalValue::Number(n)) => format!("{n}"),
            Some(SignalValue::Flag(b)) => b.to_string(),
            None => "absent".to_owned(),
        }
    }

    /// One line: `[FIRING] rule (severity): summary — value 0.93`.
    pub fn one_line(&self) -> String {
        format!(
            "[{}] {} ({}): {} — {} = {}",
            self.status.as_str().to_uppercase(),
            self.rule,
            self.severity,
            self.summary,
            self.condition_signal(),
            self.value_text()
        )
    }

    fn condition_signal(&self) -> &str {
        self.condition
            .split_whitespace()
            .next()
            .unwrap_or(&self.condition)
    }
}
