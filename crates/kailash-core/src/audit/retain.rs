use std::sync::Arc;

use async_trait::async_trait;

use super::{AuditError, AuditEvent, AuditSink, MemoryAuditSink};

/// Writes every event to a durable sink and keeps the newest ones in a
/// bounded [`MemoryAuditSink`] for queries (`GET /api/audit`), so reading the
/// trail never touches the file.
///
/// An event is kept only once the durable sink has accepted it, so the
/// in-memory view never shows what the trail does not hold. Every event
/// goes through the inner sink's boxed [`record`](AuditSink::record); for
/// the file sink, [`JsonLinesOptions::recent`](super::JsonLinesOptions)
/// does the same from the writer thread, without that cost.
///
/// ```
/// use std::sync::Arc;
/// use kailash_core::audit::{AuditDecision, AuditEvent, AuditSink, MemoryAuditSink, RetainingAuditSink};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let durable = Arc::new(MemoryAuditSink::new());
/// let sink = RetainingAuditSink::new(durable.clone(), 2);
/// for action in ["a.one", "a.two", "a.three"] {
///     sink.record(AuditEvent::new(action, AuditDecision::Success)).await?;
/// }
/// assert_eq!(durable.events().len(), 3);
/// assert_eq!(sink.recent().events().len(), 2);
/// # Ok::<(), kailash_core::audit::AuditError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct RetainingAuditSink<S> {
    inner: S,
    recent: Arc<MemoryAuditSink>,
}

impl<S: AuditSink> RetainingAuditSink<S> {
    /// Writes to `inner` and keeps the newest `keep` (at least 1) events.
    pub fn new(inner: S, keep: usize) -> Self {
        Self {
            inner,
            recent: Arc::new(MemoryAuditSink::with_capacity(keep)),
        }
    }

    /// The newest events, for queries.
    pub fn recent(&self) -> &Arc<MemoryAuditSink> {
        &self.recent
    }
}

#[async_trait]
impl<S: AuditSink> AuditSink for RetainingAuditSink<S> {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.inner.record(event.clone()).await?;
        self.recent.extend(std::iter::once(event));
        Ok(())
    }

    async fn flush(&self) -> Result<(), AuditError> {
        self.inner.flush().await
    }

    fn health(&self) -> Result<(), AuditError> {
        self.inner.health()
    }
}
