//! The audit trail.
//!
//! Security-relevant outcomes — logins, token refreshes, access decisions,
//! tenant mismatches, rate-limit refusals — are recorded as [`AuditEvent`]s
//! through an [`AuditSink`]. An event names who (actor, tenant), what
//! (action, resource), the decision and its reason, and where from (request
//! id, client IP). It never carries a credential: events are built from
//! identifiers, and `reason` is a fixed phrase chosen by the code that
//! decided, never user input.
//!
//! Sinks: [`MemoryAuditSink`] (tests, embedded queries) and
//! [`JsonLinesAuditSink`] (an append-only file written by a dedicated thread,
//! so the request path never waits on the disk). PostgreSQL and a
//! tamper-evident chain come later behind the same trait.
//!
//! ```
//! use kailash_core::audit::{AuditDecision, AuditEvent, AuditSink, MemoryAuditSink};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let sink = MemoryAuditSink::new();
//! sink.record(
//!     AuditEvent::new("auth.login", AuditDecision::Failure)
//!         .actor("alice")
//!         .reason("invalid credentials"),
//! ).await?;
//! assert_eq!(sink.events()[0].action, "auth.login");
//! # Ok::<(), kailash_core::audit::AuditError>(())
//! # }).unwrap();
//! ```

mod event;
mod file;
mod memory;
mod record;
mod retain;

use async_trait::async_trait;

pub use event::{AuditDecision, AuditEvent, AuditSeverity, MAX_FIELD_BYTES};
pub use file::{JsonLinesAuditSink, JsonLinesOptions};
pub use memory::MemoryAuditSink;
pub use record::{PendingAudit, offer, record_or_log};
pub use retain::RetainingAuditSink;

/// Why an event could not be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The sink's queue stayed full for longer than its enqueue timeout.
    #[error("audit sink is overloaded")]
    Backpressure,
    /// The sink is closed or its writer has stopped.
    #[error("audit sink is closed")]
    Closed,
    /// Writing failed; the events stay queued and are retried.
    #[error("audit write failed: {0}")]
    Io(String),
}

/// Where audit events go.
///
/// `record` returns once the sink has accepted the event; an accepted event
/// is written even if the process is asked to stop, as long as
/// [`flush`](AuditSink::flush) is awaited during shutdown.
#[async_trait]
pub trait AuditSink: Send + Sync + 'static {
    /// Accepts one event.
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError>;

    /// Accepts one event if that needs no waiting, returning `None`; gives
    /// it back otherwise, and the caller awaits [`record`](Self::record).
    ///
    /// Layers that audit every request use it to stay off the boxed-future
    /// path while the sink keeps up. The default always gives the event back.
    fn try_record(&self, event: AuditEvent) -> Option<AuditEvent> {
        Some(event)
    }

    /// Waits until every accepted event is durably written.
    async fn flush(&self) -> Result<(), AuditError>;

    /// Whether the sink is currently able to write (for readiness checks).
    fn health(&self) -> Result<(), AuditError> {
        Ok(())
    }
}

#[async_trait]
impl<T: AuditSink + ?Sized> AuditSink for std::sync::Arc<T> {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        (**self).record(event).await
    }
    fn try_record(&self, event: AuditEvent) -> Option<AuditEvent> {
        (**self).try_record(event)
    }
    async fn flush(&self) -> Result<(), AuditError> {
        (**self).flush().await
    }
    fn health(&self) -> Result<(), AuditError> {
        (**self).health()
    }
}
