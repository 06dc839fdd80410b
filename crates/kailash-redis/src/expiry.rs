//! Logical deadlines and Redis garbage-collection expiry.
//!
//! Expiry follows the injected [`Clock`](kailash_core::clock::Clock): the
//! scripts get `now` and the deadline computed here, and Redis's own expiry
//! (set relative, with [`GC_GRACE_MS`] on top) only collects garbage.

use std::time::Duration;

use kailash_core::state::{StateError, validate};

/// Extra time Redis keeps a key past its logical deadline before collecting
/// it, so a clock step on the application host can never make Redis drop a
/// value that is still live by the injected clock.
pub(crate) const GC_GRACE_MS: i64 = 1000;

/// A relative time to live as whole milliseconds (at least 1) and the
/// deadline it gives from `now_ms`; zero is refused like the memory backend.
pub(crate) fn ttl_deadline(now_ms: i64, ttl: Duration) -> Result<(i64, i64), StateError> {
    let ms = validate::ttl_millis(ttl)?;
    Ok((ms, now_ms.saturating_add(ms)))
}

/// Deadline and garbage-collection arguments for an optional ttl.
pub(crate) fn expiry_args(
    now_ms: i64,
    ttl: Option<Duration>,
) -> Result<(String, String), StateError> {
    match ttl {
        None => Ok((String::new(), String::new())),
        Some(ttl) => {
            let (ms, deadline) = ttl_deadline(now_ms, ttl)?;
            Ok((
                deadline.to_string(),
                ms.saturating_add(GC_GRACE_MS).to_string(),
            ))
        }
    }
}

/// The time left until `deadline_ms`; zero once it has passed.
pub(crate) fn remaining(deadline_ms: i64, now_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(deadline_ms.saturating_sub(now_ms)).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_positive_whole_milliseconds() {
        assert_eq!(
            ttl_deadline(1_000, Duration::ZERO),
            Err(StateError::InvalidArgument("ttl must be positive"))
        );
        assert_eq!(
            ttl_deadline(1_000, Duration::from_micros(10)),
            Ok((1, 1_001))
        );
        assert_eq!(
            ttl_deadline(1_000, Duration::from_secs(2)),
            Ok((2_000, 3_000))
        );
        assert_eq!(
            expiry_args(1_000, Some(Duration::from_secs(60))),
            Ok(("61000".to_owned(), (60_000 + GC_GRACE_MS).to_string()))
        );
        assert_eq!(expiry_args(1_000, None), Ok((String::new(), String::new())));
    }

    #[test]
    fn a_passed_deadline_leaves_nothing() {
        assert_eq!(remaining(900, 1_000), Duration::ZERO);
    }
}
