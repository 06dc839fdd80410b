//! The event model: what is published, how it is classified, and the
//! stable frame a client receives.
//!
//! An [`Event`] belongs to exactly one tenant, names a `channel` and an
//! `event` type, carries JSON `data`, and says in its [`Metadata`] how
//! sensitive it is ([`Classification`]) and which permission a connection
//! needs to see it. Its frame on the wire never changes shape:
//!
//! ```
//! use kailash_realtime::event::{Classification, Event, EventId};
//! use kailash_core::TenantId;
//!
//! let event = Event::new(TenantId::new("acme").unwrap(), "workflows", "workflow.created")
//!     .unwrap()
//!     .data(serde_json::json!({"id": "wf-1"}))
//!     .classification(Classification::Internal)
//!     .required_permission("workflow:view")
//!     .unwrap();
//! let frame = event.frame(EventId::new(1_700_000_000_000, 0)).unwrap();
//! assert_eq!(
//!     frame.as_str(),
//!     r#"{"type":"event","id":"1700000000000-0","channel":"workflows","event":"workflow.created","tenant_id":"acme","data":{"id":"wf-1"},"metadata":{"classification":"internal","required_permission":"workflow:view"}}"#
//! );
//! ```

use std::fmt;

use axum::extract::ws::Utf8Bytes;
use bytes::{BufMut, Bytes, BytesMut};
use kailash_access::permission::Permission;
use kailash_core::TenantId;
use kailash_core::state::LogId;
use serde::{Deserialize, Serialize};

use crate::error::RealtimeError;

/// The longest channel name, in bytes.
pub const MAX_CHANNEL_LEN: usize = 128;
/// The longest event type, in characters (as its published schema counts).
pub const MAX_EVENT_TYPE_LEN: usize = 128;
/// The largest serialised event (its `data` included), in bytes: with its
/// audience it stays within one history entry
/// ([`MAX_LOG_PAYLOAD`](kailash_core::state::log::MAX_LOG_PAYLOAD), 64 KiB).
pub const MAX_EVENT_BYTES: usize = 63 * 1024;
/// The longest user id or connection id an [`Audience`] may name, in bytes.
pub const MAX_AUDIENCE_ID: usize = 256;

/// How sensitive an event is, lowest first: `public < internal <
/// confidential < secret`.
///
/// A label this crate does not know reads as [`Secret`](Self::Secret), the
/// highest: an event whose sensitivity cannot be told is shown only to the
/// highest clearance, never to everyone.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[schema(as = EventClassification)]
pub enum Classification {
    /// Anyone in the tenant may see it.
    #[default]
    Public,
    /// Staff of the tenant.
    Internal,
    /// A need to know.
    Confidential,
    /// The highest clearance only.
    Secret,
}

impl Classification {
    /// The label (`public`, `internal`, `confidential`, `secret`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Internal => "internal",
            Self::Confidential => "confidential",
            Self::Secret => "secret",
        }
    }

    /// The classification of `label` (ASCII case-insensitive); an unknown
    /// label is [`Secret`](Self::Secret).
    pub fn from_label(label: &str) -> Self {
        [
            Self::Public,
            Self::Internal,
            Self::Confidential,
            Self::Secret,
        ]
        .into_iter()
        .find(|c| c.as_str().eq_ignore_ascii_case(label))
        .unwrap_or(Self::Secret)
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Classification {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let label = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Self::from_label(&label))
    }
}

/// Who may see an event, beyond its tenant.
///
/// Its published schema admits the four lower-case classification labels
/// (deserialisation also reads other spellings, as [`Classification`]
/// says, for events already stored) and a `required_permission` in the
/// grammar of [`Permission::parse`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = EventMetadata)]
pub struct Metadata {
    /// How sensitive the event is.
    #[serde(default)]
    pub classification: Classification,
    /// The permission a connection's principal needs (decided by
    /// `kailash-access`); `None` for none.
    #[serde(default)]
    #[schema(
        value_type = Option<String>,
        max_length = 128,
        pattern = "^([*]|([*]|[a-z0-9_.-]{1,64}):([*]|[a-z0-9_.-]{1,64})|[a-z0-9_.-]{1,64}:[a-z0-9_.-]{1,64}:([*]|[a-z0-9_.-]{1,64}))$"
    )]
    pub required_permission: Option<Permission>,
}

/// The grammar of [`Permission::parse`] as a pattern: `*`,
/// `resource:action` (each part `*` or 1-64 of `[a-z0-9_.-]`), or
/// `kind:name:action` (`kind` and `name` not `*`); the schema of
/// [`Metadata::required_permission`] states the same.
pub const PERMISSION_PATTERN: &str = "^([*]|([*]|[a-z0-9_.-]{1,64}):([*]|[a-z0-9_.-]{1,64})|[a-z0-9_.-]{1,64}:[a-z0-9_.-]{1,64}:([*]|[a-z0-9_.-]{1,64}))$";

/// One event of one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// The channel it is published on (`[A-Za-z0-9._:-]`, at most
    /// [`MAX_CHANNEL_LEN`] bytes).
    pub channel: String,
    /// Its type, e.g. `workflow.created` (at most [`MAX_EVENT_TYPE_LEN`]
    /// characters, no control characters).
    pub event: String,
    /// The tenant it belongs to; it never reaches another tenant.
    pub tenant_id: TenantId,
    /// The payload.
    #[serde(default)]
    pub data: serde_json::Value,
    /// Classification and required permission.
    #[serde(default)]
    pub metadata: Metadata,
}

/// Whether `name` is a valid channel name.
pub fn valid_channel(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CHANNEL_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn valid_event_type(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_EVENT_TYPE_LEN
        && !name.chars().any(char::is_control)
}

impl Event {
    /// A public event of `tenant` on `channel` with type `event` and `null` data.
    pub fn new(
        tenant: TenantId,
        channel: impl Into<String>,
        event: impl Into<String>,
    ) -> Result<Self, RealtimeError> {
        let event = Self {
            channel: channel.into(),
            event: event.into(),
            tenant_id: tenant,
            data: serde_json::Value::Null,
            metadata: Metadata::default(),
        };
        event.validate()?;
        Ok(event)
    }

    /// Sets the payload.
    #[must_use]
    pub fn data(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }

    /// Sets the classification.
    #[must_use]
    pub fn classification(mut self, classification: Classification) -> Self {
        self.metadata.classification = classification;
        self
    }

    /// Requires `permission` (`resource:action`) of every receiving connection.
    pub fn required_permission(mut self, permission: &str) -> Result<Self, RealtimeError> {
        let p = Permission::parse(permission).map_err(|_| RealtimeError::InvalidPermission)?;
        self.metadata.required_permission = Some(p);
        Ok(self)
    }

    /// Checks the channel and event names (the data size is checked when
    /// the event is serialised).
    pub fn validate(&self) -> Result<(), RealtimeError> {
        if !valid_channel(&self.channel) {
            return Err(RealtimeError::InvalidChannel);
        }
        if !valid_event_type(&self.event) {
            return Err(RealtimeError::InvalidEventType);
        }
        Ok(())
    }

    /// The event as JSON without `type` and `id` (what the bus carries and
    /// the history keeps), bounded by [`MAX_EVENT_BYTES`].
    pub fn to_body(&self) -> Result<Bytes, RealtimeError> {
        self.validate()?;
        let mut out = BytesMut::with_capacity(256).writer();
        serde_json::to_writer(&mut out, self).map_err(|_| RealtimeError::EventTooLarge)?;
        let body = out.into_inner().freeze();
        if body.len() > MAX_EVENT_BYTES {
            return Err(RealtimeError::EventTooLarge);
        }
        Ok(body)
    }

    /// The event read back from [`to_body`](Self::to_body)'s output.
    pub fn from_body(body: &[u8]) -> Result<Self, RealtimeError> {
        if body.len() > MAX_EVENT_BYTES {
            return Err(RealtimeError::EventTooLarge);
        }
        let event: Self = serde_json::from_slice(body).map_err(|_| RealtimeError::CorruptEvent)?;
        event.validate()?;
        Ok(event)
    }

    /// The client frame of this event under `id`:
    /// `{"type":"event","id",…,"metadata":{…}}`.
    pub fn frame(&self, id: EventId) -> Result<Utf8Bytes, RealtimeError> {
        frame_from_body(id, &self.to_body()?)
    }
}

/// The client frame of the serialised event `body` (a JSON object from
/// [`Event::to_body`]) under `id`, built without parsing it again.
pub(crate) fn frame_from_body(id: EventId, body: &[u8]) -> Result<Utf8Bytes, RealtimeError> {
    let rest = body.strip_prefix(b"{").ok_or(RealtimeError::CorruptEvent)?;
    let mut frame = String::with_capacity(body.len() + 48);
    frame.push_str(r#"{"type":"event","id":""#);
    frame.push_str(&id.to_string());
    frame.push_str("\",");
    frame.push_str(std::str::from_utf8(rest).map_err(|_| RealtimeError::CorruptEvent)?);
    Ok(Utf8Bytes::from(frame))
}

/// The position of an event in its tenant's history, `ms-seq` (the
/// state primitives' [`LogId`]; Redis stream ids have the same shape). Ids
/// of one tenant only grow.
pub type EventId = LogId;

/// Which connections of the event's tenant an event is for (the filters
/// then decide per connection). A user or connection id is at most
/// [`MAX_AUDIENCE_ID`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Audience {
    /// Every connection of the tenant.
    Tenant,
    /// The tenant's connections subscribed to the event's channel.
    Channel,
    /// The connections of one user (a subject) of the tenant.
    User(String),
    /// One connection, by its id.
    Connection(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_orders_and_unknown_is_highest() {
        use Classification::*;
        assert!(Public < Internal && Internal < Confidential && Confidential < Secret);
        assert_eq!(Classification::from_label("INTERNAL"), Internal);
        assert_eq!(Classification::from_label("top-secret"), Secret);
        assert_eq!(Classification::from_label(""), Secret);
        let m: Metadata = serde_json::from_str(r#"{"classification":"cosmic"}"#).unwrap();
        assert_eq!(m.classification, Secret);
    }

    #[test]
    fn bodies_round_trip_and_frames_keep_the_shape() {
        let acme = TenantId::new("acme").unwrap();
        let e = Event::new(acme, "c.1", "x")
            .unwrap()
            .data(serde_json::json!({"n": 1}));
        let body = e.to_body().unwrap();
        assert_eq!(Event::from_body(&body).unwrap(), e);
        let frame = frame_from_body(EventId::new(5, 6), &body).unwrap();
        let v: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(v["type"], "event");
        assert_eq!(v["id"], "5-6");
        assert_eq!(v["metadata"]["classification"], "public");
        assert!(v["metadata"]["required_permission"].is_null());
        assert!(Event::new(TenantId::new("acme").unwrap(), "bad channel", "x").is_err());
        assert!(
            Event::from_body(br#"{"channel":"c","event":"x","tenant_id":"acme","extra":1}"#)
                .is_err()
        );
    }

    #[test]
    fn the_published_permission_pattern_is_the_parsers_grammar() {
        let validator = kailash_core::schema::body_validator::<Metadata>().unwrap();
        let long = format!("{}:read", "a".repeat(64));
        let too_long = format!("{}:read", "a".repeat(65));
        for text in [
            "data:read",
            "node:http_request:*",
            "*",
            "*:*",
            "*:read",
            "data:*",
            "a.b-c_d:x",
            "",
            "data",
            "data:",
            ":read",
            "a:b:c:d",
            "a::c",
            "a:*:c",
            "*:b:c",
            "Data:read",
            "data:re ad",
            "da*:read",
            "data:*x",
            long.as_str(),
            too_long.as_str(),
        ] {
            let mut value = serde_json::json!({ "required_permission": text });
            let published = validator.validate(&mut value).is_ok();
            let parsed = Permission::parse(text).is_ok();
            assert_eq!(published, parsed, "{text:?}");
        }
    }
}
