//! [`RealtimeError`]: what went wrong in this crate, as an enum.

use kailash_core::state::StateError;

/// Why a realtime operation failed. Messages are fixed phrases: never a
/// token, never another tenant's data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RealtimeError {
    /// A channel name outside `[A-Za-z0-9._:-]{1,128}`.
    #[error("invalid channel name")]
    InvalidChannel,
    /// An event type that is empty, too long or holds control characters.
    #[error("invalid event type")]
    InvalidEventType,
    /// A required permission that is not `resource:action`.
    #[error("invalid required permission")]
    InvalidPermission,
    /// A user or connection id that is empty or too long.
    #[error("invalid audience")]
    InvalidAudience,
    /// The serialised event exceeds the size limit.
    #[error("event too large")]
    EventTooLarge,
    /// A stored or received event that cannot be read.
    #[error("corrupt event")]
    CorruptEvent,
    /// A configuration value out of range.
    #[error("invalid realtime configuration: {0}")]
    Config(&'static str),
    /// The state backend (bus, history) failed.
    #[error(transparent)]
    State(#[from] StateError),
}
