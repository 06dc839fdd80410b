//! [`CloseReason`]: why the server closed a socket, with its close code.
//!
//! | code | reason text | when |
//! |---|---|---|
//! | 4001 | `Invalid token` | no credential, a malformed or unverifiable one, or several |
//! | 4001 | `Invalid session` | the token's session is revoked or expired (at connect, by a revocation event, or found by the liveness sweep) |
//! | 4001 | `Token expired` | the access token expired and no `refresh` frame replaced it |
//! | 4003 | `Tenant required` | the principal belongs to no tenant |
//! | 4008 | `Slow consumer` | the connection's send queue was full |
//! | 4029 | `Too many connections` | the user's or tenant's connection cap is reached |
//! | 4000 | `Idle timeout` | nothing (not even a pong) arrived within the idle timeout |
//! | 1009 | `Message too big` | a message over the maximum message size |
//! | 1011 | `Unavailable` | the event bus could not be subscribed in time |
//! | 1001 | `Going away` | [`Hub::close_all`](crate::Hub::close_all) (graceful shutdown) |

/// Why the server closed a connection (a bounded label set for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// 4001 `Invalid token`.
    InvalidToken,
    /// 4001 `Invalid session`.
    InvalidSession,
    /// 4001 `Token expired`.
    TokenExpired,
    /// 4003 `Tenant required`.
    TenantRequired,
    /// 4008 `Slow consumer`.
    SlowConsumer,
    /// 4029 `Too many connections`.
    TooManyConnections,
    /// 4000 `Idle timeout`.
    IdleTimeout,
    /// 1009 `Message too big`.
    MessageTooBig,
    /// 1011 `Unavailable`.
    Unavailable,
    /// 1001 `Going away`.
    GoingAway,
}

impl CloseReason {
    /// Every reason, in the order of [`index`](Self::index).
    pub const ALL: [CloseReason; 10] = [
        Self::InvalidToken,
        Self::InvalidSession,
        Self::TokenExpired,
        Self::TenantRequired,
        Self::SlowConsumer,
        Self::TooManyConnections,
        Self::IdleTimeout,
        Self::MessageTooBig,
        Self::Unavailable,
        Self::GoingAway,
    ];

    /// The WebSocket close code.
    pub fn code(self) -> u16 {
        match self {
            Self::InvalidToken | Self::InvalidSession | Self::TokenExpired => 4001,
            Self::TenantRequired => 4003,
            Self::SlowConsumer => 4008,
            Self::TooManyConnections => 4029,
            Self::IdleTimeout => 4000,
            Self::MessageTooBig => 1009,
            Self::Unavailable => 1011,
            Self::GoingAway => 1001,
        }
    }

    /// The close frame's reason text.
    pub fn text(self) -> &'static str {
        match self {
            Self::InvalidToken => "Invalid token",
            Self::InvalidSession => "Invalid session",
            Self::TokenExpired => "Token expired",
            Self::TenantRequired => "Tenant required",
            Self::SlowConsumer => "Slow consumer",
            Self::TooManyConnections => "Too many connections",
            Self::IdleTimeout => "Idle timeout",
            Self::MessageTooBig => "Message too big",
            Self::Unavailable => "Unavailable",
            Self::GoingAway => "Going away",
        }
    }

    /// A metrics label (`invalid_token`, `slow_consumer`, …).
    pub fn label(self) -> &'static str {
        match self {
            Self::InvalidToken => "invalid_token",
            Self::InvalidSession => "invalid_session",
            Self::TokenExpired => "token_expired",
            Self::TenantRequired => "tenant_required",
            Self::SlowConsumer => "slow_consumer",
            Self::TooManyConnections => "too_many_connections",
            Self::IdleTimeout => "idle_timeout",
            Self::MessageTooBig => "message_too_big",
            Self::Unavailable => "unavailable",
            Self::GoingAway => "going_away",
        }
    }

    /// The position in [`ALL`](Self::ALL).
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}
