//! [`Conn`]: what the hub and a connection's task share of one socket.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use axum::extract::ws::Utf8Bytes;
use kailash_core::{Principal, TenantId};
use tokio::sync::{Notify, mpsc};

use crate::close::CloseReason;
use crate::event::EventId;
use crate::filter::ConnectionView;
use crate::stats::RealtimeStats;

/// What the hub queues for a connection's task to write.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// An event frame (shared by every connection it goes to).
    Event(EventId, Utf8Bytes),
    /// A heartbeat ping.
    Ping,
}

/// What [`Conn::offer`] did.
pub(crate) enum Offered {
    Queued,
    /// The queue was full: the connection is being closed as a slow consumer.
    Full,
    /// The connection's task is gone.
    Gone,
}

/// What kind of client holds the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnKind {
    /// A WebSocket: pongs prove it alive, so it has an idle timeout.
    WebSocket,
    /// An SSE stream: the client never sends, so only a failed write ends it.
    Sse,
}

pub(crate) struct Conn {
    pub(crate) id: Arc<str>,
    pub(crate) kind: ConnKind,
    pub(crate) tenant: TenantId,
    pub(crate) user: Arc<str>,
    principal: ArcSwap<Principal>,
    /// The access token's expiry, seconds since the epoch (`i64::MAX`: none).
    expires_at: AtomicI64,
    /// When anything last arrived from the client (ms since the hub started).
    last_seen: AtomicU64,
    /// When the last ping was queued (ms since the hub started).
    last_ping: AtomicU64,
    /// Up to when its open time was metered (ms since the hub started).
    metered: AtomicU64,
    tx: mpsc::Sender<Outbound>,
    close: OnceLock<CloseReason>,
    pub(crate) closing: Notify,
    subscriptions: Mutex<Vec<Box<str>>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

fn expiry(principal: &Principal) -> i64 {
    principal.expires_at().map_or(i64::MAX, |t| t.as_second())
}

impl Conn {
    pub(crate) fn new(
        id: Arc<str>,
        kind: ConnKind,
        tenant: TenantId,
        principal: Principal,
        now_ms: u64,
        tx: mpsc::Sender<Outbound>,
    ) -> Self {
        Self {
            id,
            kind,
            tenant,
            user: Arc::from(principal.subject()),
            expires_at: AtomicI64::new(expiry(&principal)),
            principal: ArcSwap::from_pointee(principal),
            last_seen: AtomicU64::new(now_ms),
            last_ping: AtomicU64::new(now_ms),
            metered: AtomicU64::new(now_ms),
            tx,
            close: OnceLock::new(),
            closing: Notify::new(),
            subscriptions: Mutex::new(Vec::new()),
        }
    }

    /// The milliseconds it was open since it was last metered, up to
    /// `now_ms` (each millisecond is metered once).
    pub(crate) fn meter(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.metered.swap(now_ms, Ordering::Relaxed))
    }

    /// The principal now (after any refresh).
    pub(crate) fn principal(&self) -> Arc<Principal> {
        self.principal.load_full()
    }

    /// Runs `f` with the filter view of this connection.
    pub(crate) fn with_view<R>(&self, f: impl FnOnce(&ConnectionView<'_>) -> R) -> R {
        let principal = self.principal.load();
        f(&ConnectionView {
            id: &self.id,
            principal: &principal,
            tenant: &self.tenant,
        })
    }

    /// Replaces the principal after a refresh of the same user.
    pub(crate) fn refresh(&self, principal: Principal) {
        self.expires_at.store(expiry(&principal), Ordering::Relaxed);
        self.principal.store(Arc::new(principal));
    }

    pub(crate) fn expires_at(&self) -> i64 {
        self.expires_at.load(Ordering::Relaxed)
    }

    pub(crate) fn seen(&self, now_ms: u64) {
        self.last_seen.store(now_ms, Ordering::Relaxed);
    }

    pub(crate) fn last_seen(&self) -> u64 {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// Marks a ping as due now; `true` when the previous one is at least
    /// `every_ms` old (then the caller queues one).
    pub(crate) fn ping_due(&self, now_ms: u64, every_ms: u64) -> bool {
        let last = self.last_ping.load(Ordering::Relaxed);
        now_ms.saturating_sub(last) >= every_ms
            && self
                .last_ping
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Queues `item` without waiting; a full queue closes the connection
    /// as a slow consumer.
    pub(crate) fn offer(&self, item: Outbound, stats: &RealtimeStats) -> Offered {
        match self.tx.try_send(item) {
            Ok(()) => Offered::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(CloseReason::SlowConsumer, stats);
                Offered::Full
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Offered::Gone,
        }
    }

    /// Asks the connection's task to close with `reason` (the first reason
    /// wins; counted once).
    pub(crate) fn close(&self, reason: CloseReason, stats: &RealtimeStats) {
        if self.close.set(reason).is_ok() {
            stats.closed(reason);
            // A stored permit: the task sees it even if it is not waiting now.
            self.closing.notify_one();
        }
    }

    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        self.close.get().copied()
    }

    fn subs(&self) -> std::sync::MutexGuard<'_, Vec<Box<str>>> {
        self.subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn is_subscribed(&self, channel: &str) -> bool {
        self.subs().iter().any(|c| &**c == channel)
    }

    /// Adds `channel`; `false` when already at `max` subscriptions.
    pub(crate) fn subscribe(&self, channel: &str, max: usize) -> bool {
        let mut subs = self.subs();
        if subs.iter().any(|c| &**c == channel) {
            return true;
        }
        if subs.len() >= max {
            return false;
        }
        subs.push(channel.into());
        true
    }

    pub(crate) fn unsubscribe(&self, channel: &str) {
        self.subs().retain(|c| &**c != channel);
    }
}
