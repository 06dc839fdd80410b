//! Group commit: many requests wait on one batch, and the writer wakes them
//! all after the batch's single `write` returned.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use super::AuditError;

const PENDING: u8 = 0;
const WRITTEN: u8 = 1;
const REFUSED: u8 = 2;

/// One batch of events written together (group commit), shared by every
/// request whose event is in it.
///
/// A sink's writer creates a batch, hands a [`ticket`](Self::ticket) to
/// each request that adds an event to it, and calls
/// [`complete`](Self::complete) once the batch is written (or refused).
/// A request holds one reference count on the batch, not a channel: no
/// allocation per event. Sinks other than the file (a database) use the
/// same type so that every sink means the same by "accepted".
///
/// ```
/// use kailash_core::audit::AuditBatch;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let batch = AuditBatch::new();
/// let ticket = batch.ticket();
/// batch.complete(Ok(()));
/// assert_eq!(ticket.await, Ok(()));
/// # });
/// ```
#[derive(Debug, Default)]
pub struct AuditBatch {
    state: AtomicU8,
    error: OnceLock<AuditError>,
    wakers: Mutex<Vec<Waker>>,
}

impl AuditBatch {
    /// A batch not written yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            // Room for a typical batch's waiters without regrowing.
            wakers: Mutex::new(Vec::with_capacity(64)),
            ..Self::default()
        })
    }

    /// A ticket that completes when this batch does.
    pub fn ticket(self: &Arc<Self>) -> AuditTicket {
        AuditTicket {
            kind: TicketKind::Batch(Arc::clone(self)),
        }
    }

    /// Records the outcome of the batch's write and wakes every waiting
    /// request. Only the first call counts.
    pub fn complete(&self, result: Result<(), AuditError>) {
        let state = match result {
            Ok(()) => WRITTEN,
            Err(error) => {
                let _ = self.error.set(error);
                REFUSED
            }
        };
        if self
            .state
            .compare_exchange(PENDING, state, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let wakers = std::mem::take(&mut *self.lock());
        for waker in wakers {
            waker.wake();
        }
    }

    /// Whether [`complete`](Self::complete) was called.
    pub fn is_complete(&self) -> bool {
        self.state.load(Ordering::Acquire) != PENDING
    }

    fn outcome(&self) -> Option<Result<(), AuditError>> {
        match self.state.load(Ordering::Acquire) {
            PENDING => None,
            WRITTEN => Some(Ok(())),
            _ => Some(Err(self.error.get().cloned().unwrap_or(AuditError::Closed))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waker>> {
        self.wakers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Completes when the event it was given for is accepted — written by
/// the sink — or refused.
///
/// Cheap: a reference to the shared [`AuditBatch`], or an outcome known
/// at once. Dropping it does not withdraw the event.
#[derive(Debug)]
#[must_use = "a ticket tells whether the event was written"]
pub struct AuditTicket {
    kind: TicketKind,
}

#[derive(Debug)]
enum TicketKind {
    Batch(Arc<AuditBatch>),
    Ready(Option<Result<(), AuditError>>),
}

impl AuditTicket {
    /// A ticket whose outcome is already known (a sink that accepts in
    /// place, or refuses at once).
    pub fn ready(result: Result<(), AuditError>) -> Self {
        Self {
            kind: TicketKind::Ready(Some(result)),
        }
    }

    /// The outcome if it is known now, without waiting.
    pub fn outcome(&self) -> Option<Result<(), AuditError>> {
        match &self.kind {
            TicketKind::Batch(batch) => batch.outcome(),
            TicketKind::Ready(result) => result.clone(),
        }
    }
}

impl Future for AuditTicket {
    type Output = Result<(), AuditError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().kind {
            TicketKind::Ready(result) => match result.take() {
                Some(result) => Poll::Ready(result),
                // Polled after completion: a caller bug; never complete twice.
                None => Poll::Pending,
            },
            TicketKind::Batch(batch) => {
                if let Some(result) = batch.outcome() {
                    return Poll::Ready(result);
                }
                let mut wakers = batch.lock();
                // Checked again under the lock: `complete` takes the wakers
                // under it after setting the state.
                if let Some(result) = batch.outcome() {
                    return Poll::Ready(result);
                }
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// Hands `item` to `try_enqueue` until it takes it, waiting for `space`
/// (a sink's "room again" signal) between tries, for at most `timeout`;
/// then awaits the ticket. A sink's `record` with a bounded queue: `Err`
/// from `try_enqueue` gives the item back because the queue is full.
/// Past the timeout the answer is [`AuditError::Backpressure`], counted as
/// a refused event (`kailash_audit_events_total{outcome="refused"}`).
pub async fn enqueue_or_wait<T>(
    space: &tokio::sync::Notify,
    timeout: std::time::Duration,
    mut item: T,
    mut try_enqueue: impl FnMut(T) -> Result<AuditTicket, T>,
) -> Result<(), AuditError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let room = space.notified();
        tokio::pin!(room);
        room.as_mut().enable();
        match try_enqueue(item) {
            Ok(ticket) => return ticket.await,
            Err(back) => item = back,
        }
        if tokio::time::timeout_at(deadline, room).await.is_err() {
            metrics::counter!("kailash_audit_events_total", "outcome" => "refused").increment(1);
            return Err(AuditError::Backpressure);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_is_woken_with_the_outcome() {
        let batch = AuditBatch::new();
        let waiters: Vec<_> = (0..8)
            .map(|_| tokio::spawn(batch.ticket()))
            .collect::<Vec<_>>();
        tokio::task::yield_now().await;
        batch.complete(Err(AuditError::StorageFull));
        batch.complete(Ok(()));
        for w in waiters {
            assert_eq!(w.await.unwrap(), Err(AuditError::StorageFull));
        }
        assert_eq!(batch.ticket().await, Err(AuditError::StorageFull));
    }
}
