//! Handing an event to a sink from a layer: the request is answered only
//! once the event is accepted, and fails closed (503) when it is refused.

use std::sync::Arc;

use super::{AuditError, AuditEvent, AuditSink, AuditTicket};

/// Records `event`, awaiting the sink; a refusal is logged with the
/// event's action (never its contents, which may name a user).
///
/// For events that answer no request (the gateway's own start and stop):
/// a request that needs its audit uses [`offer`] and fails on a refusal.
pub async fn record_or_log(sink: &dyn AuditSink, event: AuditEvent) {
    let action = event.action.clone();
    if let Err(error) = sink.record(event).await {
        tracing::error!(%error, %action, "could not record an audit event");
    }
}

/// Offers `event` to `sink` (`None`: nothing to record).
///
/// The answer tells a guard layer how to go on without boxing while the
/// sink keeps up: [`Offer::Done`] when the outcome is known at once,
/// [`Offer::Ticket`] to await (a cheap, unboxed future), [`Offer::Wait`]
/// when the sink's buffer is full and the caller must wait for room.
/// Whatever the path, the request is answered only after acceptance, and
/// with [`AuditError::problem`] (503) on a refusal.
///
/// ```
/// use std::sync::Arc;
/// use kailash_core::audit::{offer, AuditDecision, AuditEvent, AuditSink, MemoryAuditSink};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let memory = Arc::new(MemoryAuditSink::new());
/// let sink: Arc<dyn AuditSink> = memory.clone();
/// let event = AuditEvent::new("access.check", AuditDecision::Allow);
/// offer(Some(&sink), event).settle().await?;
/// assert_eq!(memory.events().len(), 1);
/// # Ok::<(), kailash_core::audit::AuditError>(())
/// # }).unwrap();
/// ```
pub fn offer(sink: Option<&Arc<dyn AuditSink>>, event: AuditEvent) -> Offer {
    let Some(sink) = sink else {
        return Offer::Done(Ok(()));
    };
    match sink.try_record(event) {
        Ok(ticket) => match ticket.outcome() {
            Some(result) => Offer::Done(result),
            None => Offer::Ticket(ticket),
        },
        Err(event) => Offer::Wait(PendingAudit {
            sink: Arc::clone(sink),
            event,
        }),
    }
}

/// What became of an offered event; see [`offer`].
#[derive(Debug)]
#[must_use = "the request must wait for the event to be accepted"]
pub enum Offer {
    /// Known at once: accepted (or there is no sink), or refused.
    Done(Result<(), AuditError>),
    /// Taken: await the ticket before answering.
    Ticket(AuditTicket),
    /// The sink is full: await [`PendingAudit::record`].
    Wait(PendingAudit),
}

impl Offer {
    /// Waits for the outcome, whatever the path.
    pub async fn settle(self) -> Result<(), AuditError> {
        match self {
            Offer::Done(result) => result,
            Offer::Ticket(ticket) => ticket.await,
            Offer::Wait(pending) => pending.record().await,
        }
    }
}

/// An event the sink could not take without waiting for room; see [`offer`].
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
    /// Awaits room in the sink and the write.
    pub async fn record(self) -> Result<(), AuditError> {
        self.sink.record(self.event).await
    }
}
