//! Argument checks shared by every backend, so all of them refuse the same
//! input with the same [`StateError`].

use std::time::Duration;

use jiff::Timestamp;

use super::StateError;

/// A time to live in whole milliseconds (at least 1), or
/// `InvalidArgument("ttl must be positive")` for zero.
pub fn ttl_millis(ttl: Duration) -> Result<i64, StateError> {
    if ttl.is_zero() {
        return Err(StateError::InvalidArgument("ttl must be positive"));
    }
    Ok(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1))
}

/// Checks a [`BoundedSetStore::insert`](super::BoundedSetStore::insert) and
/// returns the member's expiry in milliseconds.
pub fn set_insert(cap: usize, expires_at: Timestamp, now_ms: i64) -> Result<i64, StateError> {
    if cap == 0 {
        return Err(StateError::InvalidArgument("set cap must be at least 1"));
    }
    let at = expires_at.as_millisecond();
    if at <= now_ms {
        return Err(StateError::InvalidArgument(
            "member expiry must be in the future",
        ));
    }
    Ok(at)
}
