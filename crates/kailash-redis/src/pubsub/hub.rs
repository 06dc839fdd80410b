//! The subscription hub: one dedicated RESP3 connection per [`RedisState`](crate::RedisState)
//! and one local broadcast channel per subscribed topic.
//!
//! * The connection is opened by the first `subscribe` and closed again when
//!   no topic has a subscriber left.
//! * A background task forwards Redis messages to the topics' broadcast
//!   senders, pings the connection every [`PING_EVERY`] and drops topics
//!   whose last local subscriber is gone (`UNSUBSCRIBE`).
//! * When the connection is lost it logs a warning, reconnects with backoff
//!   and re-subscribes every topic that still has subscribers, then logs the
//!   recovery. Subscriptions survive the outage; messages published while it
//!   lasted are lost (pub/sub is fire-and-forget).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use kailash_core::state::{StateError, Subscription};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::sync::{broadcast, watch};

use crate::connection::Sentinel;
use crate::error;
use crate::options::RedisOptions;

/// How often the background task checks the connection and drops unused topics.
pub(crate) const PING_EVERY: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The state of the pub/sub connection, readable without a round trip
/// ([`RedisState::pubsub_state`](crate::RedisState::pubsub_state)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PubSubState {
    /// No connection, because no topic has a subscriber on this instance.
    Idle,
    /// Connected: subscribers receive what is published.
    Connected,
    /// The connection was lost and is being re-established; subscribers
    /// miss what is published until it is back.
    Reconnecting,
}

impl PubSubState {
    fn code(self) -> u8 {
        match self {
            PubSubState::Idle => 0,
            PubSubState::Connected => 1,
            PubSubState::Reconnecting => 2,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            1 => PubSubState::Connected,
            2 => PubSubState::Reconnecting,
            _ => PubSubState::Idle,
        }
    }
}

enum Conn {
    /// No connection and no background task (nobody subscribed yet, or any more).
    Idle,
    /// Connected; the background task reads its messages.
    Connected(MultiplexedConnection),
    /// The connection was lost; the background task is re-establishing it.
    Reconnecting,
}

pub(crate) struct Hub {
    /// Where to subscribe: tried in turn, starting after the last one used.
    clients: Vec<redis::Client>,
    /// The client the next connection attempt starts with.
    next_client: AtomicUsize,
    /// Where the primary is, when Redis Sentinel says.
    sentinel: Option<Arc<Sentinel>>,
    config: AsyncConnectionConfig,
    capacity: usize,
    /// Channel name to the sender of its local subscribers.
    topics: Mutex<HashMap<String, broadcast::Sender<Bytes>>>,
    /// The connection state; held across the (un)subscribe round trips so
    /// those never interleave and the topic map matches Redis's view.
    conn: tokio::sync::Mutex<Conn>,
    /// `conn`'s variant as a [`PubSubState`] code, for lock-free reads.
    state: AtomicU8,
    /// Times a lost connection was re-established.
    reconnects: AtomicU64,
    shutdown: watch::Receiver<()>,
}

enum Pumped {
    /// The backend was dropped.
    Shutdown,
    /// No topic has subscribers; the connection was closed.
    Idle,
    /// The connection failed.
    Lost,
}

impl Hub {
    /// A hub that subscribes on one of `clients` (the one server, or a
    /// cluster's seed nodes: cluster-wide `PUBLISH` reaches every node, so
    /// any one of them serves all topics). Each (re)connect tries the next
    /// client first, so a lost node is replaced by another.
    ///
    /// With `sentinel`, `clients` is ignored: each (re)connect subscribes on
    /// the server the sentinels name as the primary then.
    pub(crate) fn new(
        clients: Vec<redis::Client>,
        sentinel: Option<Arc<Sentinel>>,
        options: &RedisOptions,
        shutdown: watch::Receiver<()>,
    ) -> Arc<Self> {
        let clients = clients.into_iter().map(resp3).collect();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.connection_timeout))
            .set_response_timeout(Some(options.response_timeout));
        Arc::new(Self {
            clients,
            sentinel,
            next_client: AtomicUsize::new(0),
            config,
            capacity: options.pubsub_capacity,
            topics: Mutex::new(HashMap::new()),
            conn: tokio::sync::Mutex::new(Conn::Idle),
            state: AtomicU8::new(PubSubState::Idle.code()),
            reconnects: AtomicU64::new(0),
            shutdown,
        })
    }

    /// The connection's state.
    pub(crate) fn state(&self) -> PubSubState {
        PubSubState::from_code(self.state.load(Ordering::Relaxed))
    }

    /// Times a lost connection was re-established since the backend was created.
    pub(crate) fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Moves the connection (under its lock) to `next`, keeping [`state`](Self::state) in step.
    fn set(&self, conn: &mut Conn, next: Conn) {
        let state = match &next {
            Conn::Idle => PubSubState::Idle,
            Conn::Connected(_) => PubSubState::Connected,
            Conn::Reconnecting => PubSubState::Reconnecting,
        };
        *conn = next;
        self.state.store(state.code(), Ordering::Relaxed);
    }

    fn topics(&self) -> MutexGuard<'_, HashMap<String, broadcast::Sender<Bytes>>> {
        // Plain data, consistent per entry: keep serving after a panic elsewhere.
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes to `channel`, returning once Redis confirmed the subscription.
    pub(crate) async fn subscribe(
        self: &Arc<Self>,
        channel: String,
    ) -> Result<Subscription, StateError> {
        let mut conn = self.conn.lock().await;
        let mut c = match &*conn {
            Conn::Connected(c) => c.clone(),
            Conn::Reconnecting => {
                return Err(StateError::Unavailable(
                    "redis: the pub/sub connection is being re-established".to_owned(),
                ));
            }
            Conn::Idle => {
                let (c, pushes) = self.open().await?;
                tokio::spawn(drive(self.clone(), pushes));
                self.set(&mut conn, Conn::Connected(c.clone()));
                c
            }
        };
        self.drop_unused(&mut c, HashSet::new()).await;
        if let Some(sender) = self.topics().get(&channel) {
            // Already subscribed on Redis (unsubscribing needs this lock).
            return Ok(Subscription::from_receiver(sender.subscribe()));
        }
        let (sender, receiver) = broadcast::channel(self.capacity);
        self.topics().insert(channel.clone(), sender);
        match c.subscribe(&channel).await {
            Ok(()) => Ok(Subscription::from_receiver(receiver)),
            Err(e) => {
                self.topics().remove(&channel);
                Err(error::map(&e))
            }
        }
    }

    /// Opens a connection whose pushes arrive on the returned receiver.
    async fn open(
        &self,
    ) -> Result<(MultiplexedConnection, UnboundedReceiver<PushInfo>), StateError> {
        if let Some(sentinel) = &self.sentinel {
            let (tx, rx) = unbounded_channel();
            let config = self.config.clone().set_push_sender(tx);
            let client = resp3(
                sentinel
                    .primary_client()
                    .await
                    .map_err(|e| error::map(&e))?,
            );
            let conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| error::map(&e))?;
            return Ok((conn, rx));
        }
        let start = self.next_client.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..self.clients.len() {
            let at = (start + i) % self.clients.len();
            let (tx, rx) = unbounded_channel();
            let config = self.config.clone().set_push_sender(tx);
            match self.clients[at]
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(conn) => {
                    // The next connection (after this one is lost) starts
                    // with another node.
                    self.next_client
                        .store((at + 1) % self.clients.len(), Ordering::Relaxed);
                    return Ok((conn, rx));
                }
                Err(e) => last = Some(error::map(&e)),
            }
        }
        Err(last.unwrap_or_else(|| {
            StateError::Unavailable("redis: no server to subscribe on".to_owned())
        }))
    }

    /// Removes topics without local subscribers and unsubscribes them, plus
    /// `stray` channels that received messages but have no topic. Call with
    /// the connection lock held.
    async fn drop_unused(&self, c: &mut MultiplexedConnection, stray: HashSet<String>) {
        let unused: Vec<String> = {
            let mut topics = self.topics();
            let mut unused: Vec<String> = topics
                .iter()
                .filter(|(_, sender)| sender.receiver_count() == 0)
                .map(|(channel, _)| channel.clone())
                .collect();
            for channel in &unused {
                topics.remove(channel);
            }
            unused.extend(stray.into_iter().filter(|ch| !topics.contains_key(ch)));
            unused
        };
        if unused.is_empty() {
            return;
        }
        if let Err(e) = c.unsubscribe(&unused).await {
            tracing::debug!(target: "kailash_redis", error = %e, "redis pub/sub unsubscribe failed");
        }
    }

    /// Forgets topics without local subscribers (no connection to tell).
    fn forget_unused(&self) -> usize {
        let mut topics = self.topics();
        topics.retain(|_, sender| sender.receiver_count() > 0);
        topics.len()
    }

    /// Delivers one push; returns the channel when nobody here listens to it.
    fn deliver(&self, push: PushInfo) -> Option<String> {
        if push.kind != PushKind::Message {
            return None;
        }
        let mut data = push.data.into_iter();
        let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
            return None;
        };
        let channel = match channel {
            Value::BulkString(b) => String::from_utf8(b).ok()?,
            Value::SimpleString(s) => s,
            _ => return None,
        };
        let payload = match payload {
            Value::BulkString(b) => Bytes::from(b),
            Value::SimpleString(s) => Bytes::from(s),
            _ => return None,
        };
        let topics = self.topics();
        match topics.get(&channel) {
            // A send error only means no receiver is left; the periodic sweep unsubscribes.
            Some(sender) => {
                let _ = sender.send(payload);
                None
            }
            None => Some(channel),
        }
    }

    /// Reads pushes until the connection fails, the backend is dropped or no
    /// topic is left.
    async fn pump(
        &self,
        pushes: &mut UnboundedReceiver<PushInfo>,
        shutdown: &mut watch::Receiver<()>,
    ) -> Pumped {
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stray = HashSet::new();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return Pumped::Shutdown,
                push = pushes.recv() => match push {
                    None => return Pumped::Lost,
                    Some(push) if push.kind == PushKind::Disconnection => return Pumped::Lost,
                    Some(push) => {
                        if let Some(channel) = self.deliver(push) {
                            stray.insert(channel);
                        }
                    }
                },
                _ = tick.tick() => {
                    let mut conn = self.conn.lock().await;
                    let Conn::Connected(c) = &*conn else { return Pumped::Lost };
                    let mut c = c.clone();
                    if c.send_packed_command(&redis::cmd("PING")).await.is_err() {
                        self.set(&mut conn, Conn::Reconnecting);
                        return Pumped::Lost;
                    }
                    self.drop_unused(&mut c, std::mem::take(&mut stray)).await;
                    if self.topics().is_empty() {
                        self.set(&mut conn, Conn::Idle);
                        return Pumped::Idle;
                    }
                }
            }
        }
    }

    /// Re-establishes the connection and re-subscribes every topic that still
    /// has subscribers. `None` when the backend was dropped or no topic is left.
    async fn reconnect(
        &self,
        shutdown: &mut watch::Receiver<()>,
    ) -> Option<UnboundedReceiver<PushInfo>> {
        let mut delay = BACKOFF_MIN;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return None,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(BACKOFF_MAX);
            if self.forget_unused() == 0 {
                let mut conn = self.conn.lock().await;
                if self.forget_unused() == 0 {
                    self.set(&mut conn, Conn::Idle);
                    return None;
                }
            }
            let (mut c, pushes) = match self.open().await {
                Ok(opened) => opened,
                Err(e) => {
                    tracing::debug!(target: "kailash_redis", error = %e, "redis pub/sub reconnect attempt failed");
                    continue;
                }
            };
            let mut conn = self.conn.lock().await;
            let channels: Vec<String> = {
                self.forget_unused();
                self.topics().keys().cloned().collect()
            };
            if channels.is_empty() {
                self.set(&mut conn, Conn::Idle);
                return None;
            }
            match c.subscribe(&channels).await {
                Ok(()) => {
                    self.set(&mut conn, Conn::Connected(c));
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        target: "kailash_redis",
                        topics = channels.len(),
                        "redis pub/sub connection re-established; topics re-subscribed"
                    );
                    return Some(pushes);
                }
                Err(e) => {
                    tracing::debug!(target: "kailash_redis", error = %e, "redis pub/sub re-subscribe failed");
                }
            }
        }
    }
}

/// `client` speaking RESP3: messages arrive as pushes on an ordinary
/// multiplexed connection, which also answers PING while subscribed.
fn resp3(client: redis::Client) -> redis::Client {
    let info = client.get_connection_info().clone();
    let redis_settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    let info = info.set_redis_settings(redis_settings);
    redis::Client::open(info).unwrap_or(client)
}

/// The background task of one pub/sub connection (and its successors).
async fn drive(hub: Arc<Hub>, mut pushes: UnboundedReceiver<PushInfo>) {
    let mut shutdown = hub.shutdown.clone();
    loop {
        match hub.pump(&mut pushes, &mut shutdown).await {
            Pumped::Shutdown | Pumped::Idle => return,
            Pumped::Lost => {}
        }
        drop(pushes);
        let topics = {
            let mut conn = hub.conn.lock().await;
            let left = hub.forget_unused();
            let next = if left == 0 {
                Conn::Idle
            } else {
                Conn::Reconnecting
            };
            hub.set(&mut conn, next);
            left
        };
        if topics == 0 {
            return;
        }
        tracing::warn!(
            target: "kailash_redis",
            topics,
            "redis pub/sub connection lost; subscribers miss messages until it is re-established"
        );
        match hub.reconnect(&mut shutdown).await {
            Some(next) => pushes = next,
            None => return,
        }
    }
}
