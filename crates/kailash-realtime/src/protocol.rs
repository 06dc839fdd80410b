//! The client protocol: the frames a client may send, the frames the
//! server answers with, and the closed set of error codes.
//!
//! Client frames are JSON text messages of at most [`MAX_CLIENT_FRAME`]
//! bytes, parsed strictly (an unknown `type` or an unknown field is an
//! error, never ignored):
//!
//! | frame | what |
//! |---|---|
//! | `{"type":"subscribe","channel":"…"}` | receive the channel's events (permission checked per channel pattern) |
//! | `{"type":"unsubscribe","channel":"…"}` | stop receiving them |
//! | `{"type":"refresh","token":"…"}` | a fresh access token of the **same** user; postpones the `Token expired` close |
//! | `{"type":"resume","since":"ms-seq"}` | replay the tenant's events after `since`, then `{"type":"resumed","recovered":bool}` |
//!
//! Errors are `{"type":"error","code":"…","detail":"…"}` with a code of
//! [`ErrorCode`]; the connection stays open and unchanged.
//!
//! ```
//! use kailash_realtime::protocol::{ClientFrame, ErrorCode, parse_client_frame};
//!
//! let frame = parse_client_frame(br#"{"type":"subscribe","channel":"workflows"}"#).unwrap();
//! assert_eq!(frame, ClientFrame::Subscribe { channel: "workflows".into() });
//!
//! let err = parse_client_frame(br#"{"type":"subscribe","channel":"x","extra":1}"#).unwrap_err();
//! assert_eq!(err, ErrorCode::MalformedFrame);
//! let err = parse_client_frame(br#"{"type":"dance"}"#).unwrap_err();
//! assert_eq!(err, ErrorCode::UnknownType);
//! ```

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};

use crate::event::{EventId, valid_channel};

/// The largest client frame, in bytes (a refresh frame carries a token).
pub const MAX_CLIENT_FRAME: usize = 8 * 1024;

/// A frame a client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// Receive `channel`'s events.
    Subscribe {
        /// A valid channel name.
        channel: String,
    },
    /// Stop receiving `channel`'s events.
    Unsubscribe {
        /// A valid channel name.
        channel: String,
    },
    /// Replace the connection's access token with `token`.
    Refresh {
        /// The new access token (verified like the first one).
        token: String,
    },
    /// Replay the tenant's events after `since`.
    Resume {
        /// The last event id the client saw.
        since: EventId,
    },
}

/// The wire shape, with the tag; kept apart so [`ClientFrame`] holds
/// validated values only.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Wire {
    Subscribe { channel: String },
    Unsubscribe { channel: String },
    Refresh { token: String },
    Resume { since: String },
}

#[derive(Deserialize)]
struct Tag<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
}

const KNOWN_TYPES: [&str; 4] = ["subscribe", "unsubscribe", "refresh", "resume"];

/// Parses one client frame, bounded by [`MAX_CLIENT_FRAME`].
pub fn parse_client_frame(bytes: &[u8]) -> Result<ClientFrame, ErrorCode> {
    if bytes.len() > MAX_CLIENT_FRAME {
        return Err(ErrorCode::FrameTooLarge);
    }
    let wire: Wire = match serde_json::from_slice(bytes) {
        Ok(w) => w,
        Err(_) => {
            // Tell an unknown type from a malformed known one, so a client
            // of a newer protocol learns what this server does not speak.
            return Err(match serde_json::from_slice::<Tag<'_>>(bytes) {
                Ok(Tag { kind: Some(k) }) if !KNOWN_TYPES.contains(&k.as_ref()) => {
                    ErrorCode::UnknownType
                }
                _ => ErrorCode::MalformedFrame,
            });
        }
    };
    Ok(match wire {
        Wire::Subscribe { channel } | Wire::Unsubscribe { channel } if !valid_channel(&channel) => {
            return Err(ErrorCode::InvalidChannel);
        }
        Wire::Subscribe { channel } => ClientFrame::Subscribe { channel },
        Wire::Unsubscribe { channel } => ClientFrame::Unsubscribe { channel },
        Wire::Refresh { token } if token.is_empty() => return Err(ErrorCode::MalformedFrame),
        Wire::Refresh { token } => ClientFrame::Refresh { token },
        Wire::Resume { since } => ClientFrame::Resume {
            since: since.parse().map_err(|_| ErrorCode::InvalidSince)?,
        },
    })
}

/// The code of an error frame: a closed set, documented here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not JSON, not an object, a missing or extra field, a wrong type.
    MalformedFrame,
    /// A `type` this server does not know.
    UnknownType,
    /// A text frame over [`MAX_CLIENT_FRAME`] bytes.
    FrameTooLarge,
    /// A binary frame: the protocol is JSON text only.
    BinaryNotSupported,
    /// A channel name outside `[A-Za-z0-9._:-]{1,128}`.
    InvalidChannel,
    /// The channel exists for nobody here, or the connection lacks the
    /// permission its pattern requires (the two are not told apart).
    Forbidden,
    /// The connection already has the most subscriptions allowed.
    TooManySubscriptions,
    /// A `since` that is not an event id `ms-seq`.
    InvalidSince,
    /// A refresh token that does not verify, or whose session is not live.
    InvalidToken,
    /// A refresh token of another user or tenant.
    WrongUser,
    /// The backend (history, bus) cannot answer now; try again later.
    Unavailable,
}

impl ErrorCode {
    /// The code as sent (`malformed_frame`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedFrame => "malformed_frame",
            Self::UnknownType => "unknown_type",
            Self::FrameTooLarge => "frame_too_large",
            Self::BinaryNotSupported => "binary_not_supported",
            Self::InvalidChannel => "invalid_channel",
            Self::Forbidden => "forbidden",
            Self::TooManySubscriptions => "too_many_subscriptions",
            Self::InvalidSince => "invalid_since",
            Self::InvalidToken => "invalid_token",
            Self::WrongUser => "wrong_user",
            Self::Unavailable => "unavailable",
        }
    }

    /// A fixed, human-readable detail (never echoes client input).
    pub fn detail(self) -> &'static str {
        match self {
            Self::MalformedFrame => "the frame is not a valid client frame",
            Self::UnknownType => "unknown frame type",
            Self::FrameTooLarge => "the frame is too large",
            Self::BinaryNotSupported => "binary frames are not supported",
            Self::InvalidChannel => "invalid channel name",
            Self::Forbidden => "not allowed",
            Self::TooManySubscriptions => "too many subscriptions",
            Self::InvalidSince => "`since` is not an event id",
            Self::InvalidToken => "the token is not valid",
            Self::WrongUser => "the token belongs to another user",
            Self::Unavailable => "temporarily unavailable",
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerWire<'a> {
    Welcome {
        connection_id: &'a str,
        user_id: &'a str,
        tenant_id: &'a str,
    },
    Error {
        code: ErrorCode,
        detail: &'static str,
    },
    Subscribed {
        channel: &'a str,
    },
    Unsubscribed {
        channel: &'a str,
    },
    Refreshed {
        expires_at: Option<i64>,
    },
    Resumed {
        recovered: bool,
    },
}

fn encode(frame: &ServerWire<'_>) -> Utf8Bytes {
    // Serialising these plain structs cannot fail; an empty frame would be
    // a bug, not a panic.
    Utf8Bytes::from(serde_json::to_string(frame).unwrap_or_default())
}

/// `{"type":"welcome","connection_id","user_id","tenant_id"}`.
pub fn welcome(connection_id: &str, user_id: &str, tenant_id: &str) -> Utf8Bytes {
    encode(&ServerWire::Welcome {
        connection_id,
        user_id,
        tenant_id,
    })
}

/// `{"type":"error","code","detail"}`.
pub fn error(code: ErrorCode) -> Utf8Bytes {
    encode(&ServerWire::Error {
        code,
        detail: code.detail(),
    })
}

/// `{"type":"subscribed","channel"}`.
pub fn subscribed(channel: &str) -> Utf8Bytes {
    encode(&ServerWire::Subscribed { channel })
}

/// `{"type":"unsubscribed","channel"}`.
pub fn unsubscribed(channel: &str) -> Utf8Bytes {
    encode(&ServerWire::Unsubscribed { channel })
}

/// `{"type":"refreshed","expires_at"}` (seconds since the epoch, or `null`).
pub fn refreshed(expires_at: Option<i64>) -> Utf8Bytes {
    encode(&ServerWire::Refreshed { expires_at })
}

/// `{"type":"resumed","recovered"}`.
pub fn resumed(recovered: bool) -> Utf8Bytes {
    encode(&ServerWire::Resumed { recovered })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_strictly() {
        assert_eq!(
            parse_client_frame(br#"{"type":"resume","since":"1-2"}"#),
            Ok(ClientFrame::Resume {
                since: EventId::new(1, 2)
            })
        );
        let cases: [(&[u8], ErrorCode); 9] = [
            (b"", ErrorCode::MalformedFrame),
            (b"[]", ErrorCode::MalformedFrame),
            (br#"{"channel":"x"}"#, ErrorCode::MalformedFrame),
            (br#"{"type":7}"#, ErrorCode::MalformedFrame),
            (br#"{"type":"subscribe"}"#, ErrorCode::MalformedFrame),
            (
                br#"{"type":"publish","channel":"x"}"#,
                ErrorCode::UnknownType,
            ),
            (
                br#"{"type":"subscribe","channel":"a b"}"#,
                ErrorCode::InvalidChannel,
            ),
            (
                br#"{"type":"resume","since":"yesterday"}"#,
                ErrorCode::InvalidSince,
            ),
            (
                br#"{"type":"refresh","token":""}"#,
                ErrorCode::MalformedFrame,
            ),
        ];
        for (bytes, code) in cases {
            assert_eq!(parse_client_frame(bytes), Err(code), "{bytes:?}");
        }
        let big = vec![b' '; MAX_CLIENT_FRAME + 1];
        assert_eq!(parse_client_frame(&big), Err(ErrorCode::FrameTooLarge));
    }

    #[test]
    fn server_frames_have_their_shape() {
        let v: serde_json::Value = serde_json::from_str(&welcome("c1", "alice", "acme")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"welcome","connection_id":"c1","user_id":"alice","tenant_id":"acme"})
        );
        let v: serde_json::Value = serde_json::from_str(&error(ErrorCode::WrongUser)).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "wrong_user");
        assert_eq!(v["code"], ErrorCode::WrongUser.as_str());
    }
}
