//! [`RealtimeStats`]: counters the monitoring side reads (plain atomics,
//! bounded labels: the close reasons are [`CloseReason::ALL`]).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::close::CloseReason;

/// Live counters of one hub. Cheap to read at any time.
#[derive(Debug, Default)]
pub struct RealtimeStats {
    pub(crate) open: AtomicU64,
    pub(crate) accepted: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) filtered: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) bus_errors: AtomicU64,
    pub(crate) closes: [AtomicU64; CloseReason::ALL.len()],
}

/// A copy of [`RealtimeStats`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Connections open now.
    pub open: u64,
    /// Connections accepted (welcomed) so far.
    pub accepted: u64,
    /// Event frames queued to connections.
    pub sent: u64,
    /// Deliveries an [`EventFilter`](crate::filter::EventFilter) refused.
    pub filtered: u64,
    /// Events lost: a full send queue (the connection is then closed as a
    /// slow consumer) or a bus subscriber that lagged behind.
    pub dropped: u64,
    /// Events published through this hub.
    pub published: u64,
    /// Bus failures (publish, subscribe, history) seen by this hub.
    pub bus_errors: u64,
    /// Server-side closes per reason, in the order of [`CloseReason::ALL`].
    pub closes: [u64; CloseReason::ALL.len()],
}

impl StatsSnapshot {
    /// Closes for `reason`.
    pub fn closes(&self, reason: CloseReason) -> u64 {
        self.closes[reason.index()]
    }
}

impl RealtimeStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self, reason: CloseReason) {
        Self::add(&self.closes[reason.index()], 1);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            open: get(&self.open),
            accepted: get(&self.accepted),
            sent: get(&self.sent),
            filtered: get(&self.filtered),
            dropped: get(&self.dropped),
            published: get(&self.published),
            bus_errors: get(&self.bus_errors),
            closes: std::array::from_fn(|i| get(&self.closes[i])),
        }
    }
}
