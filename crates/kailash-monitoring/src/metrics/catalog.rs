//! Every metric kailash records, with its type, labels and meaning: the
//! `# HELP` lines of `/metrics`, and the list the shipped dashboards and
//! alert rules are checked against.
//!
//! Labels are bounded by configuration, never by clients: no user ids, raw
//! paths, tokens or tenant ids.
//!
//! ```
//! use kailash_monitoring::metrics::catalog::{METRICS, Kind};
//!
//! let logins = METRICS.iter().find(|m| m.name == "kailash_auth_logins_total").unwrap();
//! assert_eq!(logins.kind, Kind::Counter);
//! assert_eq!(logins.labels, &["outcome"]);
//! ```

/// A metric's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets (`_bucket`, `_sum`, `_count`).
    Histogram,
}

/// One metric family.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its label names.
    pub labels: &'static [&'static str],
    /// What it measures (the `# HELP` text).
    pub help: &'static str,
}

const fn m(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        labels,
        help,
    }
}

use Kind::{Counter, Gauge, Histogram};

/// Every metric recorded through the `metrics` facade by kailash's crates
/// (the realtime hub's and the process's figures are rendered at scrape
/// time and listed in [`SCRAPED`]).
pub const METRICS: &[Metric] = &[
    m(
        "http_requests_total",
        Counter,
        &["method", "route", "status"],
        "Requests answered, by method, route template and status class.",
    ),
    m(
        "http_request_duration_seconds",
        Histogram,
        &["method", "route", "status"],
        "Time to the response head, in seconds.",
    ),
    m(
        "http_requests_in_flight",
        Gauge,
        &[],
        "Requests being handled now.",
    ),
    m(
        "kailash_auth_logins_total",
        Counter,
        &["outcome"],
        "Logins by outcome: success, failure, locked, mfa_required, throttled, error.",
    ),
    m(
        "kailash_auth_lockouts_total",
        Counter,
        &[],
        "Accounts locked after repeated failed logins.",
    ),
    m(
        "kailash_auth_token_rejections_total",
        Counter,
        &["reason"],
        "Requests refused by the bearer-token check, by reason.",
    ),
    m(
        "kailash_auth_refresh_reuse_total",
        Counter,
        &[],
        "Rotated refresh tokens presented again (family and session revoked).",
    ),
    m(
        "kailash_auth_session_evictions_total",
        Counter,
        &[],
        "Sessions evicted by the concurrent-session limit.",
    ),
    m(
        "kailash_auth_token_cache_total",
        Counter,
        &["result"],
        "Verified-token cache lookups, by result (hit, miss).",
    ),
    m(
        "kailash_access_decisions_total",
        Counter,
        &["permission", "effect"],
        "Access decisions by permission and effect (allow, deny, deferred).",
    ),
    m(
        "kailash_tenancy_refusals_total",
        Counter,
        &["kind", "scope"],
        "Requests refused by a quota (scope: the quota) or a rate limit (scope: ip, user, tenant).",
    ),
    m(
        "kailash_security_ip_refusals_total",
        Counter,
        &["scope"],
        "Requests refused by an IP allow-list (scope: global, or the path prefix of [security] ip_allow_paths).",
    ),
    m(
        "kailash_security_https_refusals_total",
        Counter,
        &["outcome"],
        "Plain-HTTP requests under [security] require_ssl (outcome: redirected, refused).",
    ),
    m(
        "kailash_dlp_findings_total",
        Counter,
        &["kind", "action"],
        "Responses on [[security.dlp]] routes carrying personal data, by kind and action (redacted, blocked, allowed).",
    ),
    m(
        "kailash_security_anomalies_total",
        Counter,
        &["signal", "input"],
        "Anomalies detected ([security.anomaly]) by signal (burst, new_network, new_country, impossible_travel) and input (login_failures, access_denials, requests, logins).",
    ),
    m(
        "kailash_security_anomaly_dropped_total",
        Counter,
        &[],
        "Observations the anomaly detector dropped because its queue was full.",
    ),
    m(
        "kailash_security_anomaly_errors_total",
        Counter,
        &[],
        "Observations the anomaly detector could not judge (state backend errors) and anomalies it could not audit.",
    ),
    m(
        "kailash_state_backend_seconds",
        Histogram,
        &["backend"],
        "State-backend round trips, in seconds.",
    ),
    m(
        "kailash_state_backend_errors_total",
        Counter,
        &["backend"],
        "State-backend round trips that failed.",
    ),
    m(
        "kailash_audit_events_total",
        Counter,
        &["outcome"],
        "Audit events by outcome: written, failed (the write failed), refused (not queued: storage refusing, closed, or the queue full).",
    ),
    m(
        "kailash_workflow_runs_started_total",
        Counter,
        &[],
        "Workflow runs started on this instance.",
    ),
    m(
        "kailash_workflow_runs_total",
        Counter,
        &["status"],
        "Workflow runs ended on this instance, by final status.",
    ),
    m(
        super::business::WORKFLOWS_COMPLETED,
        Counter,
        &["department"],
        "Business: workflows completed, by department.",
    ),
    m(
        super::business::REVENUE,
        Histogram,
        &["workflow"],
        "Business: revenue generated per workflow run.",
    ),
    m(
        super::business::SATISFACTION,
        Gauge,
        &[],
        "Business: the latest user-satisfaction score.",
    ),
    m(
        super::business::SLA_COMPLIANCE,
        Histogram,
        &["workflow"],
        "Business: min(1, SLA limit / execution time) per run.",
    ),
    m(
        "kailash_health_check_up",
        Gauge,
        &["check"],
        "A health check's state after its thresholds: 1 passing, 0 failing.",
    ),
    m(
        "kailash_health_check_value",
        Gauge,
        &["check"],
        "The last value a measuring health check read (a fraction, a ratio).",
    ),
    m(
        "kailash_sessions_active",
        Gauge,
        &[],
        "Live sessions across every instance sharing the state, as the active_sessions check last counted them.",
    ),
    m(
        "kailash_health_workflow_runs_per_minute",
        Gauge,
        &[],
        "Workflow runs ended per minute over the last health interval.",
    ),
    m(
        "kailash_alert_firing",
        Gauge,
        &["rule"],
        "1 while an alert rule fires (on the evaluating instance).",
    ),
    m(
        "kailash_alert_leader",
        Gauge,
        &[],
        "1 on the instance that evaluates the alert rules (holds the lease).",
    ),
    m(
        "kailash_alert_notifications_total",
        Counter,
        &["channel", "outcome"],
        "Alert deliveries by channel and outcome: sent, retried, failed, dropped.",
    ),
    m(
        "kailash_audit_checkpoints_total",
        Counter,
        &[],
        "Signed checkpoints appended to the PostgreSQL audit trail.",
    ),
    m(
        "kailash_audit_database_up",
        Gauge,
        &[],
        "1 while the PostgreSQL audit sink reaches its database, 0 while it spools to disk.",
    ),
    m(
        "kailash_audit_partitions_dropped_total",
        Counter,
        &[],
        "Monthly audit partitions dropped by retention (audit.retention_days).",
    ),
    m(
        "kailash_auth_sso_total",
        Counter,
        &["provider", "outcome"],
        "Single sign-on attempts (OpenID Connect), by configured provider and outcome.",
    ),
    m(
        "kailash_billing_deliveries_total",
        Counter,
        &["outcome"],
        "billing.usage webhook attempts, delivered or failed.",
    ),
    m(
        "kailash_cache_requests_total",
        Counter,
        &["outcome"],
        "Requests through the response cache: hit, miss, bypass, revalidated.",
    ),
    m(
        "kailash_cache_evictions_total",
        Counter,
        &[],
        "Entries the response cache evicted to stay within its bounds.",
    ),
    m(
        "kailash_db_pool_connections",
        Gauge,
        &["pool", "state"],
        "PostgreSQL connections per pool (primary, replica), open or idle.",
    ),
    m(
        "kailash_db_pool_max",
        Gauge,
        &["pool"],
        "The most PostgreSQL connections each pool may open.",
    ),
    m(
        "kailash_db_pool_waiting",
        Gauge,
        &["pool"],
        "Callers waiting for a PostgreSQL connection, per pool.",
    ),
    m(
        "kailash_db_reads_total",
        Counter,
        &["target"],
        "Reads by where they went: replica, primary, fallback (the primary, no replica being usable) or analytics.",
    ),
    m(
        "kailash_db_replica_lag_bytes",
        Gauge,
        &[],
        "The replica's replay lag behind the primary, in WAL bytes.",
    ),
    m(
        "kailash_db_replica_lag_seconds",
        Gauge,
        &[],
        "The replica's replay lag behind the primary, in seconds.",
    ),
    m(
        "kailash_db_replica_up",
        Gauge,
        &[],
        "1 while the replica answers its lag check, 0 otherwise.",
    ),
    m(
        "kailash_db_tenant_pools",
        Gauge,
        &[],
        "Per-tenant database pools open ([database.tenants]).",
    ),
    m(
        "kailash_db_tenant_pools_evicted_total",
        Counter,
        &[],
        "Per-tenant database pools closed to stay within the pool limit.",
    ),
    m(
        "kailash_field_keys",
        Gauge,
        &[],
        "Field-encryption data keys held (current and superseded, not yet retired).",
    ),
    m(
        "kailash_field_key_failures_total",
        Counter,
        &["step"],
        "Field-key maintenance steps that failed: rotate or rewrap.",
    ),
    m(
        "kailash_field_reencrypted_total",
        Counter,
        &["target"],
        "Stored values re-sealed under the current field key, per target.",
    ),
    m(
        "kailash_field_reencrypt_failures_total",
        Counter,
        &["target"],
        "Stored values a re-encryption pass could not re-seal, per target.",
    ),
    m(
        "kailash_tenants",
        Gauge,
        &[],
        "Tenants in the PostgreSQL tenant registry.",
    ),
    m(
        "kailash_outbound_connections",
        Gauge,
        &["state"],
        "Outbound HTTP connections of the gateway's pool ([outbound]): open (busy and idle) and idle.",
    ),
    m(
        "kailash_outbound_pool_max",
        Gauge,
        &[],
        "The most outbound connections the pool may hold open (outbound.connection_pool_size).",
    ),
    m(
        "kailash_outbound_requests_total",
        Counter,
        &["connection"],
        "Outbound requests, on a new or a reused (kept-alive) connection.",
    ),
    m(
        "kailash_outbound_retries_total",
        Counter,
        &[],
        "Outbound requests sent again on a new connection after a kept-alive one failed.",
    ),
    m(
        "kailash_outbound_pool_waits_total",
        Counter,
        &[],
        "Outbound calls that found every pooled connection busy and waited (the pool is too small).",
    ),
];

/// Metrics rendered at scrape time rather than recorded: the process's
/// (Linux `/proc`) and the realtime hub's.
pub const SCRAPED: &[Metric] = &[
    m(
        "process_cpu_seconds_total",
        Counter,
        &[],
        "User and system CPU time spent, in seconds.",
    ),
    m(
        "process_resident_memory_bytes",
        Gauge,
        &[],
        "Resident memory size, in bytes.",
    ),
    m(
        "process_virtual_memory_bytes",
        Gauge,
        &[],
        "Virtual memory size, in bytes.",
    ),
    m("process_open_fds", Gauge, &[], "Open file descriptors."),
    m(
        "process_max_fds",
        Gauge,
        &[],
        "The soft limit on open file descriptors.",
    ),
    m(
        "process_start_time_seconds",
        Gauge,
        &[],
        "Start time of the process since the Unix epoch, in seconds.",
    ),
    m(
        "realtime_connections_open",
        Gauge,
        &[],
        "Realtime connections open on this instance.",
    ),
    m(
        "realtime_connections_accepted_total",
        Counter,
        &[],
        "Realtime connections welcomed.",
    ),
    m(
        "realtime_messages_sent_total",
        Counter,
        &[],
        "Event frames queued to connections.",
    ),
    m(
        "realtime_messages_filtered_total",
        Counter,
        &[],
        "Deliveries an event filter refused.",
    ),
    m(
        "realtime_messages_dropped_total",
        Counter,
        &[],
        "Events lost to a full send queue or a lagging bus subscriber.",
    ),
    m(
        "realtime_events_published_total",
        Counter,
        &[],
        "Events published through this instance.",
    ),
    m(
        "realtime_bus_errors_total",
        Counter,
        &[],
        "Errors of the realtime event bus.",
    ),
    m(
        "realtime_closes_total",
        Counter,
        &["reason"],
        "Connections the server closed, by reason.",
    ),
];

/// Histograms with buckets of their own (the rest use
/// [`DURATION_BUCKETS`](super::DURATION_BUCKETS)).
pub const BUCKETS: &[(&str, &[f64])] = &[
    (
        "kailash_state_backend_seconds",
        &[
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ],
    ),
    (
        super::business::REVENUE,
        &[
            10.0,
            50.0,
            100.0,
            500.0,
            1_000.0,
            5_000.0,
            10_000.0,
            50_000.0,
            100_000.0,
            1_000_000.0,
        ],
    ),
    (
        super::business::SLA_COMPLIANCE,
        &[0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0],
    ),
];

/// Registers every recorded metric's help text with the global recorder.
pub(crate) fn describe() {
    for metric in METRICS {
        let unit = metric
            .name
            .ends_with("_seconds")
            .then_some(metrics::Unit::Seconds);
        match metric.kind {
            Counter => metrics::describe_counter!(
                metric.name,
                unit.unwrap_or(metrics::Unit::Count),
                metric.help
            ),
            Gauge => metrics::describe_gauge!(metric.name, metric.help),
            Histogram => match unit {
                Some(u) => metrics::describe_histogram!(metric.name, u, metric.help),
                None => metrics::describe_histogram!(metric.name, metric.help),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::METRICS;

    /// Every metric a crate of the workspace records under a literal name
    /// is in the catalog, so none is scraped without its `# HELP` line or
    /// left out of the list the dashboards and rules are checked against.
    #[test]
    fn every_recorded_metric_is_catalogued() {
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut missing = Vec::new();
        let mut seen = 0;
        let mut dirs = vec![crates];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if path.is_dir() {
                    if !matches!(name.as_str(), "target" | "tests" | "fuzz" | "benches") {
                        dirs.push(path);
                    }
                    continue;
                }
                if !name.ends_with(".rs") {
                    continue;
                }
                if name == "catalog.rs" {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for macro_name in ["counter!(", "gauge!(", "histogram!("] {
                    for (i, _) in text.match_indices(macro_name) {
                        let line = text[..i].rsplit('\n').next().unwrap_or_default();
                        if line.trim_start().starts_with("//") {
                            continue; // documentation
                        }
                        let rest = text[i + macro_name.len()..].trim_start();
                        let Some(quoted) = rest.strip_prefix('"') else {
                            continue; // a name from a constant or variable
                        };
                        let metric = &quoted[..quoted.find('"').unwrap()];
                        seen += 1;
                        if !METRICS.iter().any(|m| m.name == metric) {
                            missing.push(format!("{metric} ({})", path.display()));
                        }
                    }
                }
            }
        }
        assert!(
            seen > 50,
            "the scan found only {seen} metrics: is the path right?"
        );
        assert!(missing.is_empty(), "not in the catalog: {missing:#?}");
    }
}
