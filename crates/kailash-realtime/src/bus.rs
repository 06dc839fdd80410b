//! [`EventBus`]: fan-out across instances and per-tenant history, and
//! [`StateBus`], its one implementation over kailash-core's
//! [`SharedState`] (so it runs embedded on memory and across instances on
//! Redis, unchanged).
//!
//! [`StateBus`] keeps, per tenant, one publish/subscribe topic (live
//! delivery to every instance with a connection of that tenant) and one
//! capped [`EventLog`](kailash_core::state::EventLog) (the history a
//! reconnecting client resumes from; `history_size` entries). Publishing
//! appends to the history first — the append assigns the id — then
//! publishes the event with its id. A global control topic carries
//! revocations ([`Control`]) to every instance.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use kailash_core::TenantId;
//! use kailash_core::clock::SystemClock;
//! use kailash_core::state::{LogId, SharedState};
//! use kailash_realtime::bus::{EventBus, StateBus};
//! use kailash_realtime::event::{Audience, Event};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let bus = StateBus::new(SharedState::memory(Arc::new(SystemClock)), 100, Duration::from_secs(3600));
//! let acme = TenantId::new("acme")?;
//! let mut live = bus.subscribe(&acme).await?;
//! let id = bus.publish(&Audience::Tenant, &Event::new(acme.clone(), "news", "hello")?).await?;
//!
//! let delivery = live.recv().await?;
//! assert_eq!((delivery.id, delivery.event.event.as_str()), (id, "hello"));
//! let replay = bus.replay(&acme, LogId::ZERO, 100).await?;
//! assert!(replay.recovered);
//! assert_eq!(replay.deliveries[0].id, id);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::ws::Utf8Bytes;
use bytes::{BufMut, Bytes, BytesMut};
use kailash_core::TenantId;
use kailash_core::state::log::MAX_LOG_READ;
use kailash_core::state::{Namespace, RecvError, SharedState, StateKey, Subscription};
use serde::{Deserialize, Serialize};

use crate::error::RealtimeError;
use crate::event::{Audience, Event, EventId, MAX_AUDIENCE_ID, frame_from_body};

const NS: Namespace = Namespace::new("realtime");

/// One event as it reaches an instance: decoded once, its client frame
/// built once and shared by every connection it is delivered to.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its position in the tenant's history.
    pub id: EventId,
    /// Which connections it is for.
    pub audience: Audience,
    /// The event.
    pub event: Event,
    /// `{"type":"event",…}`, ready to send.
    pub frame: Utf8Bytes,
}

/// A revocation every instance acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Control {
    /// Close every connection of `user` in `tenant` (account disabled,
    /// password changed, all sessions revoked).
    RevokeUser {
        /// The tenant.
        tenant: TenantId,
        /// The subject.
        user: String,
    },
    /// Close every connection authenticated by session `session` (logout,
    /// session evicted).
    RevokeSession {
        /// The session id.
        session: String,
    },
}

/// Why a bus subscription yielded nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BusRecvError {
    /// This many messages were missed (the subscriber fell behind).
    #[error("{0} bus messages missed")]
    Lagged(u64),
    /// A message could not be read (counted, skipped).
    #[error("unreadable bus message")]
    Corrupt,
    /// The subscription ended; subscribe again.
    #[error("bus subscription closed")]
    Closed,
}

/// A live subscription to one tenant's events.
#[async_trait]
pub trait EventReceiver: Send + 'static {
    /// The next event.
    async fn recv(&mut self) -> Result<Delivery, BusRecvError>;
}

/// A live subscription to revocations.
#[async_trait]
pub trait ControlReceiver: Send + 'static {
    /// The next revocation.
    async fn recv(&mut self) -> Result<Control, BusRecvError>;
}

/// The events after an id, and whether nothing between was lost.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The events after `since`, oldest first.
    pub deliveries: Vec<Delivery>,
    /// `false` when the history no longer holds everything after `since`
    /// (trimmed, expired, or an id this tenant's history never had).
    pub recovered: bool,
}

/// Publishes events to every instance, keeps each tenant's history, and
/// carries revocations. Implement it to use another transport.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes `event` (to its own tenant) for `audience`; returns its id.
    async fn publish(&self, audience: &Audience, event: &Event) -> Result<EventId, RealtimeError>;

    /// Subscribes to `tenant`'s events; those published after this returns
    /// are delivered.
    async fn subscribe(&self, tenant: &TenantId) -> Result<Box<dyn EventReceiver>, RealtimeError>;

    /// Up to `limit` of `tenant`'s events after `since`, and whether the
    /// history after `since` is complete. Never another tenant's.
    async fn replay(
        &self,
        tenant: &TenantId,
        since: EventId,
        limit: u32,
    ) -> Result<Replay, RealtimeError>;

    /// Sends a revocation to every instance.
    async fn publish_control(&self, control: &Control) -> Result<(), RealtimeError>;

    /// Subscribes to revocations.
    async fn subscribe_control(&self) -> Result<Box<dyn ControlReceiver>, RealtimeError>;
}

/// The [`EventBus`] over [`SharedState`]'s `pubsub` and `log`; see the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct StateBus {
    state: SharedState,
    history_size: u32,
    history_ttl: Duration,
}

impl StateBus {
    /// A bus keeping `history_size` events per tenant, each tenant's
    /// history expiring `history_ttl` after its last event.
    pub fn new(state: SharedState, history_size: u32, history_ttl: Duration) -> Self {
        Self {
            state,
            history_size: history_size.max(1),
            history_ttl: history_ttl.max(Duration::from_secs(1)),
        }
    }

    /// Shared as a trait object.
    pub fn shared(self) -> Arc<dyn EventBus> {
        Arc::new(self)
    }
}

fn topic(tenant: &TenantId) -> StateKey {
    StateKey::tenant(tenant, NS, "events")
}

fn history(tenant: &TenantId) -> StateKey {
    StateKey::tenant(tenant, NS, "history")
}

fn control_topic() -> StateKey {
    StateKey::global(NS, "control")
}

/// `<audience json>\n<event body>`: what the history keeps. Neither part
/// holds a raw newline (compact JSON escapes them).
fn encode_entry(audience: &Audience, body: &[u8]) -> Result<Bytes, RealtimeError> {
    if let Audience::User(id) | Audience::Connection(id) = audience
        && (id.is_empty() || id.len() > MAX_AUDIENCE_ID)
    {
        return Err(RealtimeError::InvalidAudience);
    }
    let mut out = BytesMut::with_capacity(body.len() + 32).writer();
    serde_json::to_writer(&mut out, audience).map_err(|_| RealtimeError::CorruptEvent)?;
    let mut out = out.into_inner();
    out.put_u8(b'\n');
    out.put_slice(body);
    Ok(out.freeze())
}

/// Reads a history entry of `tenant` under `id`; an event of another
/// tenant is corrupt (never delivered).
fn decode_entry(tenant: &TenantId, id: EventId, entry: &[u8]) -> Result<Delivery, RealtimeError> {
    let split = entry
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(RealtimeError::CorruptEvent)?;
    let audience: Audience =
        serde_json::from_slice(&entry[..split]).map_err(|_| RealtimeError::CorruptEvent)?;
    let body = &entry[split + 1..];
    let event = Event::from_body(body)?;
    if &event.tenant_id != tenant {
        return Err(RealtimeError::CorruptEvent);
    }
    Ok(Delivery {
        id,
        audience,
        frame: frame_from_body(id, body)?,
        event,
    })
}

/// `<id>\n<entry>`: what the topic carries.
fn decode_message(tenant: &TenantId, message: &[u8]) -> Result<Delivery, RealtimeError> {
    let split = message
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(RealtimeError::CorruptEvent)?;
    let id = std::str::from_utf8(&message[..split])
        .ok()
        .and_then(|s| s.parse::<EventId>().ok())
        .ok_or(RealtimeError::CorruptEvent)?;
    decode_entry(tenant, id, &message[split + 1..])
}

fn lagged(e: RecvError) -> BusRecvError {
    match e {
        RecvError::Lagged(n) => BusRecvError::Lagged(n),
        RecvError::Closed => BusRecvError::Closed,
    }
}

struct StateEvents {
    tenant: TenantId,
    sub: Subscription,
}

#[async_trait]
impl EventReceiver for StateEvents {
    async fn recv(&mut self) -> Result<Delivery, BusRecvError> {
        let message = self.sub.recv().await.map_err(lagged)?;
        decode_message(&self.tenant, &message).map_err(|_| BusRecvError::Corrupt)
    }
}

struct StateControl {
    sub: Subscription,
}

#[async_trait]
impl ControlReceiver for StateControl {
    async fn recv(&mut self) -> Result<Control, BusRecvError> {
        let message = self.sub.recv().await.map_err(lagged)?;
        if message.len() > 4096 {
            return Err(BusRecvError::Corrupt);
        }
        serde_json::from_slice(&message).map_err(|_| BusRecvError::Corrupt)
    }
}

#[async_trait]
impl EventBus for StateBus {
    async fn publish(&self, audience: &Audience, event: &Event) -> Result<EventId, RealtimeError> {
        let entry = encode_entry(audience, &event.to_body()?)?;
        let id = self
            .state
            .log
            .append(
                &history(&event.tenant_id),
                entry.clone(),
                self.history_size,
                self.history_ttl,
            )
            .await?;
        let mut message = BytesMut::with_capacity(entry.len() + 24);
        message.put_slice(id.to_string().as_bytes());
        message.put_u8(b'\n');
        message.put_slice(&entry);
        self.state
            .pubsub
            .publish(&topic(&event.tenant_id), message.freeze())
            .await?;
        Ok(id)
    }

    async fn subscribe(&self, tenant: &TenantId) -> Result<Box<dyn EventReceiver>, RealtimeError> {
        let sub = self.state.pubsub.subscribe(&topic(tenant)).await?;
        Ok(Box::new(StateEvents {
            tenant: tenant.clone(),
            sub,
        }))
    }

    async fn replay(
        &self,
        tenant: &TenantId,
        since: EventId,
        limit: u32,
    ) -> Result<Replay, RealtimeError> {
        let limit = limit.clamp(1, self.history_size);
        let key = history(tenant);
        let mut deliveries = Vec::new();
        let mut after = since;
        let mut recovered = None;
        loop {
            let want = (limit - u32::try_from(deliveries.len()).unwrap_or(limit)).min(MAX_LOG_READ);
            if want == 0 {
                break;
            }
            let read = self.state.log.read_after(&key, after, want).await?;
            // Completeness is about `since`, answered by the first page.
            recovered.get_or_insert(read.complete);
            let n = read.entries.len();
            for entry in read.entries {
                after = entry.id;
                match decode_entry(tenant, entry.id, &entry.payload) {
                    Ok(d) => deliveries.push(d),
                    Err(e) => tracing::warn!(error = %e, "skipped an unreadable history entry"),
                }
            }
            if n < usize::try_from(want).unwrap_or(usize::MAX) {
                break;
            }
        }
        Ok(Replay {
            deliveries,
            recovered: recovered.unwrap_or(false),
        })
    }

    async fn publish_control(&self, control: &Control) -> Result<(), RealtimeError> {
        let bytes = serde_json::to_vec(control).map_err(|_| RealtimeError::CorruptEvent)?;
        self.state
            .pubsub
            .publish(&control_topic(), Bytes::from(bytes))
            .await?;
        Ok(())
    }

    async fn subscribe_control(&self) -> Result<Box<dyn ControlReceiver>, RealtimeError> {
        let sub = self.state.pubsub.subscribe(&control_topic()).await?;
        Ok(Box::new(StateControl { sub }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_largest_event_with_the_longest_audience_fits_the_history() {
        use kailash_core::clock::SystemClock;
        let bus = StateBus::new(
            SharedState::memory(Arc::new(SystemClock)),
            10,
            Duration::from_secs(60),
        );
        let acme = TenantId::new("acme").unwrap();
        let mut event = Event::new(acme, "c", "e").unwrap();
        // `null` (4 bytes) becomes a string of n bytes plus 2 quotes.
        let envelope = event.to_body().unwrap().len() - 2;
        event.data =
            serde_json::Value::String("x".repeat(crate::event::MAX_EVENT_BYTES - envelope));
        assert_eq!(
            event.to_body().unwrap().len(),
            crate::event::MAX_EVENT_BYTES
        );
        let user = Audience::User("u".repeat(MAX_AUDIENCE_ID));
        bus.publish(&user, &event).await.unwrap();
        event.data = serde_json::Value::String("x".repeat(crate::event::MAX_EVENT_BYTES));
        assert_eq!(
            bus.publish(&user, &event).await,
            Err(RealtimeError::EventTooLarge)
        );
        let too_long = Audience::User("u".repeat(MAX_AUDIENCE_ID + 1));
        event.data = serde_json::Value::Null;
        assert_eq!(
            bus.publish(&too_long, &event).await,
            Err(RealtimeError::InvalidAudience)
        );
    }

    #[test]
    fn entries_of_another_tenant_are_refused() {
        let acme = TenantId::new("acme").unwrap();
        let globex = TenantId::new("globex").unwrap();
        let body = Event::new(globex, "c", "e").unwrap().to_body().unwrap();
        let entry = encode_entry(&Audience::Tenant, &body).unwrap();
        assert!(decode_entry(&acme, EventId::new(1, 0), &entry).is_err());
        assert!(decode_message(&acme, b"garbage").is_err());
        assert!(decode_message(&acme, b"1-0\n\"tenant\"\n{}").is_err());
    }
}
