//! Mapping Redis failures onto [`StateError`].

use kailash_core::state::StateError;
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// The error code the scripts use for stored data they cannot read.
pub(crate) const CORRUPT_CODE: &str = "KAILASH_CORRUPT";

/// Classifies a Redis error. Messages carry the error category and the
/// server's error text, never a stored value or an argument.
pub(crate) fn map(err: &RedisError) -> StateError {
    if is_unavailable(err) {
        return StateError::Unavailable(format!("redis: {err}"));
    }
    match err.code() {
        Some(CORRUPT_CODE) => StateError::Corrupt(format!(
            "redis: {}",
            err.detail().unwrap_or("unreadable value")
        )),
        Some("WRONGTYPE") => {
            StateError::Corrupt("redis: a key holds a value of another type".to_owned())
        }
        _ => StateError::Backend(format!("redis: {err}")),
    }
}

/// Whether the error means Redis cannot be reached or cannot serve right now.
pub(crate) fn is_unavailable(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || matches!(
            err.kind(),
            ErrorKind::ClusterConnectionNotFound
                // Sentinel: no sentinel names a primary that answers as one
                // (during a failover, before the replica is promoted).
                | ErrorKind::MasterNameNotFoundBySentinel
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                )
        )
}

/// Stored data the backend cannot decode.
pub(crate) fn corrupt(what: &'static str) -> StateError {
    StateError::Corrupt(format!("redis: {what}"))
}

/// The operation did not finish within the configured timeouts.
pub(crate) fn timed_out() -> StateError {
    StateError::Unavailable("redis: operation timed out".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_state_error_kinds() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(map(&io), StateError::Unavailable(_)));
        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(matches!(map(&timeout), StateError::Unavailable(_)));
        let client = RedisError::from((redis::ErrorKind::Client, "bad"));
        assert!(matches!(map(&client), StateError::Backend(_)));
    }
}
