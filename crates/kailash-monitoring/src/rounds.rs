//! The lifecycle both background loops share (the health runner, the
//! alert evaluator): started once, stopped once, counting completed rounds
//! so callers and tests can wait for one.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// Start/stop flags and a round counter.
#[derive(Debug)]
pub(crate) struct Rounds {
    done: watch::Sender<u64>,
    stop: watch::Sender<bool>,
    started: AtomicBool,
}

impl Rounds {
    pub(crate) fn new() -> Self {
        Self {
            done: watch::Sender::new(0),
            stop: watch::Sender::new(false),
            started: AtomicBool::new(false),
        }
    }

    /// `Some(first)` when the loop may run — `first` is `true` for the one
    /// call that should spawn it — or `None` once stopped.
    pub(crate) fn begin(&self) -> Option<bool> {
        if self.stopped() {
            return None;
        }
        Some(!self.started.swap(true, Ordering::AcqRel))
    }

    /// Asks the loop to end.
    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Whether [`stop`](Self::stop) was called.
    pub(crate) fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// A receiver that sees the stop (`wait_for(|s| *s)`).
    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Counts one completed round.
    pub(crate) fn finish(&self) {
        self.done.send_modify(|r| *r += 1);
    }

    /// Completed rounds.
    pub(crate) fn count(&self) -> u64 {
        *self.done.borrow()
    }

    /// Waits until at least `n` rounds have completed.
    pub(crate) async fn wait_for(&self, n: u64) {
        let mut rx = self.done.subscribe();
        // The sender lives in `self`, which the caller keeps alive.
        let _ = rx.wait_for(|r| *r >= n).await;
    }
}
