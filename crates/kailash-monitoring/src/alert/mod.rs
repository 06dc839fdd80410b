//! Alerting: rules over named [signals](crate::signal), notifications to
//! Slack, PagerDuty and e-mail (the seed's `AlertManager`).
//!
//! A rule is the seed's condition string (`workflow_failure_rate > 0.05`,
//! `database_health == false`, `memory_usage > 0.8`), a `duration` it must
//! hold before the alert fires, and a [`Severity`]. An [`Alerting`]
//! evaluates its rules every interval over the signals of its sources (the
//! gateway's health checks, the workflow runtime, your own), and sends a
//! notification when an alert fires, again every repeat interval while it
//! fires, and when it resolves — grouped per channel, queued, retried with
//! backoff, counted. With several instances sharing a state backend, a
//! lease lets exactly one of them evaluate and notify.
//!
//! Channels (each with the severities it takes, the seed's
//! `severity_levels`): [`SlackChannel`] (incoming webhook) and
//! [`PagerDutyChannel`] (Events API v2) with the `alert-http` feature,
//! [`EmailChannel`] (SMTP through `lettre`, rustls) with `alert-email`,
//! or any [`Channel`] of your own.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use async_trait::async_trait;
//! use kailash_monitoring::alert::*;
//! use kailash_monitoring::signal::Signals;
//!
//! /// A channel that keeps what it was sent.
//! #[derive(Default, Clone)]
//! struct Inbox(Arc<Mutex<Vec<String>>>);
//! #[async_trait]
//! impl Channel for Inbox {
//!     fn kind(&self) -> &'static str { "inbox" }
//!     async fn deliver(&self, group: &[Notification]) -> Result<(), DeliveryError> {
//!         self.0.lock().unwrap().extend(group.iter().map(Notification::one_line));
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let inbox = Inbox::default();
//! let alerting = Alerting::builder("billing")
//!     .rule(AlertRule::new("memory_high", "memory_usage > 0.8", Severity::Warning).unwrap())
//!     .signals(|out: &mut Signals| out.number("memory_usage", 0.93))
//!     .route(Route::new("ops", &[Severity::Warning, Severity::Critical], inbox.clone()))
//!     .build()
//!     .unwrap();
//! alerting.start();
//! alerting.wait_for_round(1).await;
//! alerting.shutdown(Duration::from_secs(5)).await;
//! assert_eq!(
//!     inbox.0.lock().unwrap()[0],
//!     "[FIRING] memory_high (warning): memory_usage > 0.8 — memory_usage = 0.93"
//! );
//! # });
//! ```

mod channel;
mod condition;
#[cfg(feature = "alert-email")]
mod email;
mod engine;
#[cfg(feature = "alert-http")]
mod http;
#[cfg(feature = "alert-http")]
mod pagerduty;
mod rule;
#[cfg(feature = "alert-http")]
mod slack;

pub use channel::{Channel, DeliveryError, RetryPolicy, Route};
pub use condition::{
    Condition, ConditionError, Literal, MAX_CONDITION_BYTES, MAX_SIGNAL_NAME_BYTES, Op,
};
#[cfg(feature = "alert-email")]
pub use email::{EmailChannel, MAX_RECIPIENTS, SmtpSecurity, SmtpSettings};
pub use engine::{AlertPolicy, Alerting, AlertingBuilder, AlertingError, Phase, RuleState};
#[cfg(feature = "alert-http")]
pub use pagerduty::{PAGERDUTY_EVENTS_URL, PagerDutyChannel};
pub use rule::{
    AlertRule, AlertStatus, MAX_RULE_DURATION, MAX_RULE_NAME_BYTES, MAX_SUMMARY_BYTES,
    Notification, RuleError, Severity,
};
#[cfg(feature = "alert-http")]
pub use slack::{MAX_SLACK_ALERTS, SlackChannel};
