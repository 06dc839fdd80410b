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
//! **Accepted means written.** A sink accepts an event when it has handed
//! it to durable storage — for [`JsonLinesAuditSink`], when the `write` of
//! the batch holding it returned (group commit: one `write` for the events
//! of many concurrent requests). Layers that audit a decision answer the
//! request only after that, and answer `503` (problem+json, see
//! [`AuditError::problem`]) when the sink refuses: an action is never taken
//! without its audit entry. A sink hands out an [`AuditTicket`] per event
//! ([`AuditSink::try_record`]): a reference to the shared [`AuditBatch`],
//! completed by the writer — no channel or allocation per event.
//!
//! Sinks: [`MemoryAuditSink`] (tests, embedded queries) and
//! [`JsonLinesAuditSink`] (hash-chained [compact lines](entry), rotated,
//! compressed and expired files; [`verify_dir`] checks the chain).
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

mod chain;
pub mod entry;
mod event;
mod file;
mod files;
mod memory;
mod query;
mod record;
mod replay;
mod retain;
mod ticket;

use async_trait::async_trait;

pub use chain::{BreakKind, ChainBreak, VerifyError, VerifyReport, verify_dir, verify_files};
pub use event::{AuditDecision, AuditEvent, AuditSeverity, MAX_FIELD_BYTES};
pub use file::{FsyncPolicy, JsonLinesAuditSink, JsonLinesOptions, StorageStatus};
pub use memory::MemoryAuditSink;
pub use query::{AuditErasure, AuditPage, AuditQuery, MAX_PAGE};
pub use record::{Offer, PendingAudit, offer, record_or_log};
pub use replay::read_entries;
pub use retain::RetainingAuditSink;
pub use ticket::{AuditBatch, AuditTicket, enqueue_or_wait};

/// Why an event could not be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The sink's buffer stayed full for longer than its enqueue timeout.
    #[error("audit sink is overloaded")]
    Backpressure,
    /// The sink is closed or its writer has stopped.
    #[error("audit sink is closed")]
    Closed,
    /// The storage is full: the disk (`ENOSPC`) or the sink's hard cap.
    #[error("audit storage is full")]
    StorageFull,
    /// Storage is running out (soft cap or free space): events are still
    /// written, [`health`](AuditSink::health) reports it.
    #[error("audit storage is running out: {0}")]
    StorageLow(&'static str),
    /// Writing failed; the events of the failed batch were not accepted.
    #[error("audit write failed: {0}")]
    Io(String),
}

impl AuditError {
    /// The answer to a request whose audit event was refused: `503`
    /// problem+json, with `Retry-After` when waiting may help. No detail
    /// of the storage leaks.
    pub fn problem(&self) -> crate::problem::Problem {
        let problem = crate::problem::Problem::service_unavailable(
            "the audit trail cannot record this request",
        );
        match self {
            AuditError::Backpressure => problem.with_retry_after(std::time::Duration::from_secs(1)),
            _ => problem,
        }
    }
}

/// Where audit events go.
///
/// `record` returns once the sink has accepted the event: it is in durable
/// storage (for a file, its `write` returned), so a crash of the process
/// never loses it.
#[async_trait]
pub trait AuditSink: Send + Sync + 'static {
    /// Accepts one event, waiting for room (up to the sink's enqueue
    /// timeout) and for the write.
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError>;

    /// Hands one event over without waiting for room: `Ok` with the ticket
    /// that completes when it is accepted (or refused), or the event back
    /// when the sink is full and the caller must await
    /// [`record`](Self::record).
    ///
    /// Layers that audit every request use it to stay off the boxed-future
    /// path. The default always gives the event back.
    #[allow(
        clippy::result_large_err,
        reason = "the event goes back by value: boxing it would cost the allocation this path avoids"
    )]
    fn try_record(&self, event: AuditEvent) -> Result<AuditTicket, AuditEvent> {
        Err(event)
    }

    /// Waits until every accepted event is synced to the disk.
    async fn flush(&self) -> Result<(), AuditError>;

    /// Whether the sink is able to write and has room (for readiness).
    fn health(&self) -> Result<(), AuditError> {
        Ok(())
    }
}

#[async_trait]
impl<T: AuditSink + ?Sized> AuditSink for std::sync::Arc<T> {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        (**self).record(event).await
    }
    fn try_record(&self, event: AuditEvent) -> Result<AuditTicket, AuditEvent> {
        (**self).try_record(event)
    }
    async fn flush(&self) -> Result<(), AuditError> {
        (**self).flush().await
    }
    fn health(&self) -> Result<(), AuditError> {
        (**self).health()
    }
}
