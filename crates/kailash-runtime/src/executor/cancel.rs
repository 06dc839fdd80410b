//! A cancellation token the caller of a run holds.

use std::sync::Arc;

use tokio::sync::watch;

/// Cancels the runs it was handed to. Cheap to clone; every clone cancels
/// the same runs, and cancelling twice is harmless.
///
/// ```
/// use kailash_runtime::CancelToken;
///
/// let token = CancelToken::new();
/// let held = token.clone();
/// assert!(!held.is_cancelled());
/// token.cancel();
/// assert!(held.is_cancelled());
/// ```
#[derive(Debug, Clone)]
pub struct CancelToken {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for CancelToken {
    fn default() -> Self {
        Self::new()
    }
}

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Cancels: every run holding this token stops at its next await.
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }

    /// Completes once the token is cancelled.
    pub async fn cancelled(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so the channel cannot close.
        let _ = rx.wait_for(|c| *c).await;
    }
}
