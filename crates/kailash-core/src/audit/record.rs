//! Handing an event to a sink from a layer: without waiting when the sink
//! allows it, otherwise awaited — and in both cases a refusal is logged,
//! never returned to the client and never silently dropped.

use std::sync::Arc;

use super::{AuditEvent, AuditSink};

/// Records `event`, awaiting the sink; a sink that refuses it is logged
/// with the event's action (never its contents, which may name a user).
///
/// The request is not failed: the refusal also shows in the sink's
/// [`health`](AuditSink::health), which readiness reports.
pub async fn record_or_log(sink: &dyn AuditSink, event: AuditEvent) {
    let action = event.action.clone();
    if let Err(error) = sink.record(event).await {
        tracing::error!(%error, %action, "could not record an audit event");
    }
}

/// Offers `event` to `sink` without waiting.
///
/// Returns `None` when the sink took it (or there is no sink), and the
/// [`PendingAudit`] to await when the sink needs the caller to wait. Guard
/// layers use it to stay on their unboxed path while the sink keeps up.
///
/// ```
/// use std::sync::Arc;
/// use kailash_core::audit::{offer, AuditDecision, AuditEvent, AuditSink, MemoryAuditSink};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let memory = Arc::new(MemoryAuditSink::new());
/// let sink: Arc<dyn AuditSink> = memory.clone();
/// let event = AuditEvent::new("access.check", AuditDecision::Allow);
/// if let Some(pending) = offer(Some(&sink), event) {
///     pending.record().await;
/// }
/// assert_eq!(memory.events().len(), 1);
/// # });
/// ```
#[must_use = "a pending event is lost unless recorded"]
pub fn offer(sink: Option<&Arc<dyn AuditSink>>, event: AuditEvent) -> Option<PendingAudit> {
    let sink = sink?;
    sink.try_record(event).map(|event| PendingAudit {
        sink: Arc::clone(sink),
        event,
    })
}

/// An event the sink could not take without waiting; see [`offer`].
#[must_use = "a pending event is lost unless recorded"]
pub struct PendingAudit {
    sink: Arc<dyn AuditSink>,
    event: AuditEvent,
}

impl std::fmt::Debug for PendingAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAudit")
            .field("action", &self.event.action)
            .finish_non_exhaustive()
    }
}

impl PendingAudit {
    /// Awaits the sink, logging a refusal like [`record_or_log`].
    pub async fn record(self) {
        record_or_log(self.sink.as_ref(), self.event).await;
    }
}
