//! Timestamp arithmetic that saturates instead of failing.

use std::time::Duration;

use jiff::Timestamp;

/// `at + d`, saturating at the end of representable time.
pub(crate) fn add(at: Timestamp, d: Duration) -> Timestamp {
    let micros = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    Timestamp::from_microsecond(at.as_microsecond().saturating_add(micros))
        .unwrap_or(Timestamp::MAX)
}

/// The time from `from` to `to`, or `None` when `to` is not after `from`.
pub(crate) fn until(from: Timestamp, to: Timestamp) -> Option<Duration> {
    let micros = to.as_microsecond().checked_sub(from.as_microsecond())?;
    u64::try_from(micros)
        .ok()
        .filter(|m| *m > 0)
        .map(Duration::from_micros)
}
