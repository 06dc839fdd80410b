//! Time, injectable.
//!
//! Everything in kailash-rs that depends on the time of day or on expiry asks a
//! [`Clock`]. Production uses [`SystemClock`]; tests use [`ManualClock`] and
//! move it forward instead of sleeping.
//!
//! ```
//! use std::time::Duration;
//! use kailash_core::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::new(jiff::Timestamp::from_second(1_700_000_000).unwrap());
//! let before = clock.now();
//! clock.advance(Duration::from_secs(90));
//! assert_eq!(clock.now().as_second() - before.as_second(), 90);
//! ```

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use jiff::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current instant (UTC).
    fn now(&self) -> Timestamp;

    /// The current instant in milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64 {
        self.now().as_millisecond()
    }
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until it is moved; for tests.
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicI64,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            micros: AtomicI64::new(start.as_microsecond()),
        }
    }

    /// A clock showing the current system time (so state stored with it also
    /// expires sensibly in a real backend).
    pub fn starting_now() -> Self {
        Self::new(Timestamp::now())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.micros.fetch_add(micros, Ordering::SeqCst);
    }

    /// Sets the clock to `to` (which may be in the past).
    pub fn set(&self, to: Timestamp) {
        self.micros.store(to.as_microsecond(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        // A stored value always came from a valid Timestamp plus a bounded
        // advance; clamp rather than panic if a test advanced it absurdly.
        let micros = self.micros.load(Ordering::SeqCst);
        Timestamp::from_microsecond(micros).unwrap_or(Timestamp::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp::UNIX_EPOCH);
        assert_eq!(c.now_millis(), 0);
        c.advance(Duration::from_millis(1500));
        assert_eq!(c.now_millis(), 1500);
        c.set(Timestamp::from_second(10).unwrap());
        assert_eq!(c.now_millis(), 10_000);
    }
}
