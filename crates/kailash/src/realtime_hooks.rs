//! What the gateway wires between its realtime hub and the rest: sessions
//! that end close their sockets at once, on every instance; the hub's
//! counters are series of `/metrics`.

use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use kailash_auth::session::SessionListener;
use kailash_core::TenantId;
use kailash_monitoring::metrics::Collector;
use kailash_realtime::close::CloseReason;
use kailash_realtime::{Hub, RealtimeStats};

/// Closes the sockets of ended sessions (close code 4001) through the hub's
/// control topic, which reaches every instance sharing the state.
pub(crate) struct CloseSockets(pub(crate) Hub);

#[async_trait]
impl SessionListener for CloseSockets {
    async fn ended(&self, _tenant: Option<&TenantId>, _subject: &str, sessions: &[String]) {
        for session in sessions {
            if let Err(error) = self.0.revoke_session(session).await {
                // The sweep still closes them within a second.
                tracing::warn!(%error, "could not announce an ended session to realtime");
            }
        }
    }
}

/// The hub's counters as Prometheus series (bounded labels: the close
/// reasons are a fixed set).
pub(crate) struct RealtimeMetrics(pub(crate) Arc<RealtimeStats>);

impl Collector for RealtimeMetrics {
    fn collect(&self, out: &mut String) {
        let s = self.0.snapshot();
        let mut family = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        family(
            "realtime_connections_open",
            "gauge",
            "Realtime connections open on this instance.",
            s.open,
        );
        family(
            "realtime_connections_accepted_total",
            "counter",
            "Realtime connections welcomed.",
            s.accepted,
        );
        family(
            "realtime_messages_sent_total",
            "counter",
            "Event frames queued to connections.",
            s.sent,
        );
        family(
            "realtime_messages_filtered_total",
            "counter",
            "Deliveries an event filter refused.",
            s.filtered,
        );
        family(
            "realtime_messages_dropped_total",
            "counter",
            "Events lost to a full send queue or a lagging bus subscriber.",
            s.dropped,
        );
        family(
            "realtime_events_published_total",
            "counter",
            "Events published through this instance.",
            s.published,
        );
        family(
            "realtime_bus_errors_total",
            "counter",
            "Event bus failures (publish, subscribe, history).",
            s.bus_errors,
        );
        out.push_str("# HELP realtime_closes_total Connections the server closed, by reason.\n# TYPE realtime_closes_total counter\n");
        for reason in CloseReason::ALL {
            let _ = writeln!(
                out,
                "realtime_closes_total{{reason=\"{}\"}} {}",
                reason.label(),
                s.closes(reason)
            );
        }
    }
}
