//! Alerting in the gateway: `[alerting]` mapped onto rules and channels
//! (secrets read from the environment or files), and the evaluator built
//! over the gateway's signals, with a lease in the state backend so one
//! instance of many notifies.

use std::sync::Arc;
use std::time::Duration;

use kailash_core::clock::Clock;
use kailash_core::state::SharedState;
use kailash_monitoring::alert::{
    AlertPolicy, Alerting, EmailChannel, PagerDutyChannel, RetryPolicy, Route, SlackChannel,
    SmtpSecurity, SmtpSettings,
};
use kailash_monitoring::health::HealthRunner;

use crate::GatewayError;
use crate::builder::{AlertingSetup, GatewayBuilder};
use crate::config::alerting::{AlertChannelConfig, AlertingConfig, ChannelType};

/// The default bound on one delivery attempt.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl GatewayBuilder {
    /// Applies `[alerting]`: its rules, policy and channels (reading each
    /// channel's secret now, so a missing one stops the start).
    pub(crate) fn apply_alerting(mut self, config: &AlertingConfig) -> Result<Self, GatewayError> {
        let policy = AlertPolicy {
            interval: config.interval.0,
            repeat_interval: config.repeat_interval.0,
            retry: RetryPolicy {
                attempts: config.attempts,
                ..RetryPolicy::default()
            },
            queue: config.queue,
        };
        self = self.alert_policy(policy);
        if let Some(source) = &config.source {
            self = self.alert_source(source);
        }
        for (i, r) in config.rules.iter().enumerate() {
            let rule = r
                .rule()
                .map_err(|e| GatewayError::Alerting(format!("alerting.rules[{i}]: {e}")))?;
            self = self.alert_rule(rule);
        }
        for (i, c) in config.channels.iter().enumerate() {
            let route = channel(c, &self.outbound).map_err(|e| {
                GatewayError::Alerting(format!("alerting.channels[{i}] ({}): {e}", c.name))
            })?;
            self = self.alert_route(route);
        }
        Ok(self)
    }
}

fn secret(
    env: &Option<String>,
    file: &Option<std::path::PathBuf>,
    what: &str,
) -> Result<Option<String>, String> {
    AlertChannelConfig::secret(env, file, what)?
        .map(|s| s.read().map_err(|e| format!("{what}: {e}")))
        .transpose()
}

/// One configured channel, its secret read.
fn channel(
    c: &AlertChannelConfig,
    pool: &kailash_core::outbound::ConnectionPool,
) -> Result<Route, String> {
    let timeout = c.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
    match c.kind {
        ChannelType::Slack => {
            let url = secret(&c.webhook_url_env, &c.webhook_url_file, "webhook_url")?
                .ok_or("no webhook URL")?;
            let ch = SlackChannel::new(&url, timeout)
                .map_err(|e| format!("webhook URL: {e}"))?
                .with_pool(pool);
            Ok(Route::new(&c.name, &c.severity_levels, ch))
        }
        ChannelType::Pagerduty => {
            let key = secret(&c.routing_key_env, &c.routing_key_file, "routing_key")?
                .ok_or("no routing key")?;
            let ch = match &c.endpoint {
                Some(endpoint) => PagerDutyChannel::with_endpoint(&key, endpoint, timeout),
                None => PagerDutyChannel::new(&key, timeout),
            }?
            .with_pool(pool);
            Ok(Route::new(&c.name, &c.severity_levels, ch))
        }
        ChannelType::Email => {
            let password = secret(&c.password_env, &c.password_file, "password")?;
            let security = c.security.unwrap_or(SmtpSecurity::StartTls);
            let port = c.port.unwrap_or(match security {
                SmtpSecurity::Tls => 465,
                _ => 587,
            });
            let settings = SmtpSettings {
                host: c.host.clone().unwrap_or_default(),
                port,
                security,
                credentials: c.username.clone().zip(password),
                from: c.from.clone().unwrap_or_default(),
                to: c.to.clone(),
                timeout,
            };
            Ok(Route::new(
                &c.name,
                &c.severity_levels,
                EmailChannel::new(settings)?,
            ))
        }
    }
}

/// The evaluator over the gateway's signals, or `None` without rules.
/// Refuses a rule whose signal no source reports.
pub(crate) fn build(
    setup: AlertingSetup,
    health: &HealthRunner,
    state: &SharedState,
    clock: Arc<dyn Clock>,
    title: &str,
) -> Result<Option<Alerting>, GatewayError> {
    if setup.rules.is_empty() {
        if !setup.routes.is_empty() {
            tracing::warn!("alert channels are configured but no rule: nothing will be sent");
        }
        return Ok(None);
    }
    let registry = health.registry();
    let mut known: Vec<String> = registry
        .names()
        .iter()
        .map(|n| format!("{n}_health"))
        .collect();
    known.extend(registry.measuring().iter().map(|n| (*n).to_owned()));
    for (names, _) in &setup.sources {
        known.extend(names.iter().cloned());
    }
    for rule in &setup.rules {
        let signal = rule.condition().signal();
        if !known.iter().any(|k| k == signal) {
            known.sort();
            return Err(GatewayError::Alerting(format!(
                "rule `{}`: no source reports the signal `{signal}` (known: {})",
                rule.name(),
                known.join(", ")
            )));
        }
    }
    let mut builder = Alerting::builder(setup.source.as_deref().unwrap_or(title))
        .policy(setup.policy)
        .clock(clock)
        .signals(health.clone())
        .lease(state.clone(), &instance_id());
    for rule in setup.rules {
        builder = builder.rule(rule);
    }
    for route in setup.routes {
        builder = builder.route(route);
    }
    for (_, source) in setup.sources {
        builder = builder.shared_signals(source);
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| GatewayError::Alerting(e.to_string()))
}

/// This process's name in the lease: the host name (a pod's name) and a
/// random suffix, so two processes on one host differ.
fn instance_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(64)
        .collect();
    let mut bytes = [0u8; 8];
    // Without randomness the process id still separates local processes.
    let suffix = match aws_lc_rs::rand::fill(&mut bytes) {
        Ok(()) => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        Err(_) => format!("pid{}", std::process::id()),
    };
    if host.is_empty() {
        suffix
    } else {
        format!("{host}-{suffix}")
    }
}
