//! [`Hub`]: the connection registry of one instance, and how events reach
//! its sockets.
//!
//! The hub registers every authenticated connection (refusing beyond the
//! per-user and per-tenant caps: close 4029), subscribes to a tenant's
//! [`EventBus`] topic on the tenant's first connection and drops it on the
//! last, and delivers each event it receives — decoded once, its frame
//! shared — to the connections its [`Audience`] selects and every
//! [`EventFilter`](crate::filter::EventFilter) allows, through a bounded
//! queue per connection: a full queue closes that connection (4008, slow
//! consumer) instead of growing memory.
//!
//! One background sweep per hub (not a timer per socket) runs every
//! second: it closes connections whose access token expired (4001 `Token
//! expired`) or that went idle (4000), queues heartbeat pings, and asks the
//! session check once per live session, closing the connections of dead
//! ones (4001 `Invalid session`) — so a revocation whose bus message was
//! lost still closes its sockets within about a second. Revocations sent
//! with [`Hub::revoke_session`] / [`Hub::revoke_user`] reach every instance
//! at once through the bus's control topic.
//!
//! ```
//! use std::sync::Arc;
//! use kailash_auth::jwt::{Algorithm, KeySet, SigningKey, Verifier};
//! use kailash_auth::layer::JwtAuthLayer;
//! use kailash_core::TenantId;
//! use kailash_core::clock::SystemClock;
//! use kailash_core::state::SharedState;
//! use kailash_realtime::{Hub, RealtimeConfig};
//! use kailash_realtime::event::{Classification, Event};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let clock = Arc::new(SystemClock);
//! let keys = Arc::new(KeySet::new(SigningKey::generate(Algorithm::ES256, "k1")?, clock.clone()));
//! let auth = JwtAuthLayer::new(Verifier::builder(keys, "https://id.example", "api").build());
//! let state = SharedState::memory(clock);
//! let hub = Hub::builder(state, auth, RealtimeConfig::default()).build()?;
//!
//! let acme = TenantId::new("acme")?;
//! let event = Event::new(acme, "workflows", "workflow.created")?
//!     .classification(Classification::Internal);
//! let id = hub.send_to_tenant(&event).await?;
//! assert_eq!(hub.stats().published, 1);
//! # let _ = id;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod conn;
mod sweep;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use kailash_access::AccessControl;
use kailash_auth::layer::JwtAuthLayer;
use kailash_core::clock::Clock;
use kailash_core::state::SharedState;
use kailash_core::usage::UsageSink;
use kailash_core::{Principal, TenantId};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

pub(crate) use conn::{Conn, ConnKind, Offered, Outbound};

use crate::bus::{BusRecvError, Control, Delivery, EventBus, StateBus};
use crate::channel::ChannelRules;
use crate::close::CloseReason;
use crate::config::RealtimeConfig;
use crate::error::RealtimeError;
use crate::event::{Audience, Event, EventId};
use crate::filter::Filters;
use crate::stats::{RealtimeStats, StatsSnapshot};

/// How often the sweep runs: the bound on how long a revoked session whose
/// bus message was lost keeps its sockets.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The registry and delivery of one instance; cheap to clone. See the
/// [module docs](self).
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<HubInner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("stats", &self.inner.stats.snapshot())
            .finish_non_exhaustive()
    }
}

pub(crate) struct HubInner {
    pub(crate) config: RealtimeConfig,
    pub(crate) bus: Arc<dyn EventBus>,
    pub(crate) auth: JwtAuthLayer,
    pub(crate) access: Option<AccessControl>,
    pub(crate) filters: Filters,
    pub(crate) channels: ChannelRules,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) stats: Arc<RealtimeStats>,
    registry: RwLock<Registry>,
    background: OnceLock<[AbortHandle; 2]>,
    started: Instant,
    /// Where open-socket time is metered, with what is not yet recorded
    /// (milliseconds per tenant) and when it last was.
    pub(crate) usage: Option<Usage>,
}

/// Open-socket time waiting to be recorded.
pub(crate) struct Usage {
    pub(crate) sink: Arc<dyn UsageSink>,
    pub(crate) pending: Mutex<HashMap<TenantId, u64>>,
    pub(crate) flushed_ms: AtomicU64,
    /// How often it is recorded, ms.
    pub(crate) every_ms: u64,
}

impl Usage {
    fn add(&self, tenant: &TenantId, ms: u64) {
        if ms == 0 {
            return;
        }
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *pending.entry(tenant.clone()).or_default() += ms;
    }
}

impl Drop for HubInner {
    fn drop(&mut self) {
        if let Some(tasks) = self.background.get() {
            tasks.iter().for_each(AbortHandle::abort);
        }
        let registry = self
            .registry
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for tenant in registry.tenants.values() {
            tenant.listener.abort();
        }
    }
}

#[derive(Default)]
struct Registry {
    conns: HashMap<Arc<str>, Arc<Conn>>,
    tenants: HashMap<TenantId, TenantEntry>,
    users: HashMap<(TenantId, Arc<str>), usize>,
}

struct TenantEntry {
    conns: Vec<Arc<Conn>>,
    listener: AbortHandle,
    ready: watch::Receiver<bool>,
}

/// Builds a [`Hub`].
#[must_use]
pub struct HubBuilder {
    config: RealtimeConfig,
    bus: Arc<dyn EventBus>,
    auth: JwtAuthLayer,
    access: Option<AccessControl>,
    filters: Option<Filters>,
    clock: Arc<dyn Clock>,
    usage: Option<Arc<dyn UsageSink>>,
    usage_every: Duration,
}

impl std::fmt::Debug for HubBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubBuilder").finish_non_exhaustive()
    }
}

impl HubBuilder {
    /// Decides required permissions (event filter, channel rules) with
    /// `access`. Without it, nothing that requires a permission is allowed.
    pub fn access(mut self, access: AccessControl) -> Self {
        self.access = Some(access);
        self
    }

    /// Replaces the default filters ([`Filters::defaults`] with this
    /// builder's access control).
    pub fn filters(mut self, filters: Filters) -> Self {
        self.filters = Some(filters);
        self
    }

    /// Uses another bus than the [`StateBus`] over the state given to
    /// [`Hub::builder`].
    pub fn bus(mut self, bus: Arc<dyn EventBus>) -> Self {
        self.bus = bus;
        self
    }

    /// The clock token expiry is judged by (the state's clock by default).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Meters the seconds sockets are open, per tenant, into `sink`
    /// ([`UsageMetric::RealtimeConnectionSeconds`](kailash_core::usage::UsageMetric::RealtimeConnectionSeconds)):
    /// whole seconds per tenant, recorded by the sweep every
    /// [`usage_every`](Self::usage_every) (the time of sockets closed
    /// meanwhile included), so each second counts for the UTC day it passed
    /// in, give or take that interval. Up to one interval of time is not
    /// recorded when the process ends.
    pub fn usage(mut self, sink: Arc<dyn UsageSink>) -> Self {
        self.usage = Some(sink);
        self
    }

    /// How often metered socket time is recorded (default one minute; at
    /// least the one-second sweep).
    pub fn usage_every(mut self, every: Duration) -> Self {
        self.usage_every = every;
        self
    }

    /// The hub; fails on an invalid configuration.
    pub fn build(self) -> Result<Hub, RealtimeError> {
        self.config.validate()?;
        let filters = self
            .filters
            .unwrap_or_else(|| Filters::defaults(self.access.clone()));
        Ok(Hub {
            inner: Arc::new(HubInner {
                channels: ChannelRules::new(self.config.channels.clone()),
                config: self.config,
                bus: self.bus,
                auth: self.auth,
                access: self.access,
                filters,
                clock: self.clock,
                stats: Arc::new(RealtimeStats::default()),
                registry: RwLock::new(Registry::default()),
                background: OnceLock::new(),
                started: Instant::now(),
                usage: self.usage.map(|sink| Usage {
                    sink,
                    pending: Mutex::new(HashMap::new()),
                    flushed_ms: AtomicU64::new(0),
                    every_ms: u64::try_from(self.usage_every.as_millis()).unwrap_or(u64::MAX),
                }),
            }),
        })
    }
}

/// Why [`Hub`] refused to register a connection.
pub(crate) type Refused = CloseReason;

/// A registered connection: the shared part, the receiving end of its
/// queue, and a watch that turns `true` once its tenant's bus subscription
/// is live.
pub(crate) type Registration = (Arc<Conn>, mpsc::Receiver<Outbound>, watch::Receiver<bool>);

impl Hub {
    /// A hub over `state` (a [`StateBus`] with the config's history size),
    /// authenticating refreshes and re-checking sessions with `auth` (the
    /// same layer, cache and session check the HTTP routes use).
    pub fn builder(state: SharedState, auth: JwtAuthLayer, config: RealtimeConfig) -> HubBuilder {
        let bus = StateBus::new(state.clone(), config.history_size, config.history_ttl.0).shared();
        HubBuilder {
            config,
            bus,
            auth,
            access: None,
            filters: None,
            clock: state.clock.clone(),
            usage: None,
            usage_every: Duration::from_secs(60),
        }
    }

    /// The counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// The live counters, for a metrics exporter to read.
    pub fn stats_handle(&self) -> Arc<RealtimeStats> {
        self.inner.stats.clone()
    }

    /// The configuration in force.
    pub fn config(&self) -> &RealtimeConfig {
        &self.inner.config
    }

    async fn publish(&self, audience: Audience, event: &Event) -> Result<EventId, RealtimeError> {
        match self.inner.bus.publish(&audience, event).await {
            Ok(id) => {
                RealtimeStats::add(&self.inner.stats.published, 1);
                Ok(id)
            }
            Err(e) => {
                RealtimeStats::add(&self.inner.stats.bus_errors, 1);
                Err(e)
            }
        }
    }

    /// Sends `event` to every connection of its tenant (on every instance)
    /// that the filters allow. Returns its id.
    pub async fn send_to_tenant(&self, event: &Event) -> Result<EventId, RealtimeError> {
        self.publish(Audience::Tenant, event).await
    }

    /// Sends `event` to the connections of `user` in the event's tenant.
    pub async fn send_to_user(&self, user: &str, event: &Event) -> Result<EventId, RealtimeError> {
        self.publish(Audience::User(user.to_owned()), event).await
    }

    /// Sends `event` to one connection (of the event's tenant), wherever it is.
    pub async fn send_to_connection(
        &self,
        connection_id: &str,
        event: &Event,
    ) -> Result<EventId, RealtimeError> {
        self.publish(Audience::Connection(connection_id.to_owned()), event)
            .await
    }

    /// Publishes `event` on its channel: the connections of its tenant
    /// subscribed to the channel receive it.
    pub async fn publish_to_channel(&self, event: &Event) -> Result<EventId, RealtimeError> {
        self.publish(Audience::Channel, event).await
    }

    /// Closes every connection of session `session` on every instance
    /// (4001 `Invalid session`): call it on logout and session eviction.
    /// This instance's connections close even if the bus fails.
    pub async fn revoke_session(&self, session: &str) -> Result<(), RealtimeError> {
        let control = Control::RevokeSession {
            session: session.to_owned(),
        };
        self.inner.apply(&control);
        self.inner.bus.publish_control(&control).await
    }

    /// Closes every connection of `user` in `tenant` on every instance
    /// (4001 `Invalid session`): call it on password change, account
    /// disable and "revoke all sessions".
    pub async fn revoke_user(&self, tenant: &TenantId, user: &str) -> Result<(), RealtimeError> {
        let control = Control::RevokeUser {
            tenant: tenant.clone(),
            user: user.to_owned(),
        };
        self.inner.apply(&control);
        self.inner.bus.publish_control(&control).await
    }

    /// Closes every connection of this instance with 1001 `Going away`
    /// (call it on graceful shutdown, before the server stops); new
    /// connections are still accepted until then.
    pub fn close_all(&self) {
        for conn in self.inner.snapshot() {
            conn.close(CloseReason::GoingAway, &self.inner.stats);
        }
    }

    /// Records the open-socket time not metered yet — of the sockets open
    /// now and of those closed since the last interval — at once, instead
    /// of at the next [`usage_every`](HubBuilder::usage_every) (call it on
    /// shutdown, after [`close_all`](Self::close_all), so a stopping
    /// instance loses no more than a fraction of a second per tenant). A
    /// failed record is kept and logged, as in the sweep. Nothing without
    /// [`HubBuilder::usage`].
    pub async fn flush_usage(&self) {
        let conns = self.inner.snapshot();
        sweep::meter(&self.inner, &conns, self.inner.now_ms(), true).await;
    }

    /// Connections open on this instance.
    pub fn connection_count(&self) -> usize {
        self.inner.read().conns.len()
    }

    /// Registers a connection of `principal` under `id`.
    pub(crate) fn register(
        &self,
        id: Arc<str>,
        kind: ConnKind,
        principal: Principal,
    ) -> Result<Registration, Refused> {
        let Some(tenant) = principal.tenant().cloned() else {
            return Err(CloseReason::TenantRequired);
        };
        self.inner.start_background();
        let inner = &self.inner;
        let (tx, rx) = mpsc::channel(inner.config.send_queue);
        let conn = Arc::new(Conn::new(
            id,
            kind,
            tenant.clone(),
            principal,
            inner.now_ms(),
            tx,
        ));
        let mut registry = inner.write();
        let user_key = (tenant.clone(), conn.user.clone());
        let users = registry.users.get(&user_key).copied().unwrap_or(0);
        let in_tenant = registry.tenants.get(&tenant).map_or(0, |t| t.conns.len());
        if users >= inner.config.max_connections_per_user
            || in_tenant >= inner.config.max_connections_per_tenant
        {
            return Err(CloseReason::TooManyConnections);
        }
        *registry.users.entry(user_key).or_insert(0) += 1;
        registry.conns.insert(conn.id.clone(), conn.clone());
        let ready = match registry.tenants.entry(tenant.clone()) {
            Entry::Occupied(mut e) => {
                e.get_mut().conns.push(conn.clone());
                e.get().ready.clone()
            }
            Entry::Vacant(e) => {
                let (ready_tx, ready) = watch::channel(false);
                let listener = tokio::spawn(listen(Arc::downgrade(&self.inner), tenant, ready_tx))
                    .abort_handle();
                e.insert(TenantEntry {
                    conns: vec![conn.clone()],
                    listener,
                    ready: ready.clone(),
                })
                .ready
                .clone()
            }
        };
        drop(registry);
        RealtimeStats::add(&inner.stats.open, 1);
        RealtimeStats::add(&inner.stats.accepted, 1);
        Ok((conn, rx, ready))
    }

    /// Forgets `conn`; the tenant's bus subscription ends with its last
    /// connection here.
    pub(crate) fn unregister(&self, conn: &Conn) {
        let mut registry = self.inner.write();
        if registry.conns.remove(&conn.id).is_none() {
            return;
        }
        if let Some(usage) = &self.inner.usage {
            usage.add(&conn.tenant, conn.meter(self.inner.now_ms()));
        }
        let user_key = (conn.tenant.clone(), conn.user.clone());
        if let Some(n) = registry.users.get_mut(&user_key) {
            *n -= 1;
            if *n == 0 {
                registry.users.remove(&user_key);
            }
        }
        if let Some(t) = registry.tenants.get_mut(&conn.tenant) {
            t.conns.retain(|c| c.id != conn.id);
            if t.conns.is_empty()
                && let Some(t) = registry.tenants.remove(&conn.tenant)
            {
                t.listener.abort();
            }
        }
        drop(registry);
        self.inner
            .stats
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Milliseconds since this hub started (the heartbeat's clock).
    pub(crate) fn now_ms(&self) -> u64 {
        self.inner.now_ms()
    }
}

impl HubInner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Every connection open now (a snapshot; no lock held after).
    pub(crate) fn snapshot(&self) -> Vec<Arc<Conn>> {
        self.read().conns.values().cloned().collect()
    }

    /// Whether `delivery` may reach `conn`: its audience selects it and
    /// every filter allows (a refusal is counted).
    pub(crate) fn admits(&self, conn: &Conn, delivery: &Delivery) -> bool {
        let selected = match &delivery.audience {
            Audience::Tenant => true,
            Audience::Channel => conn.is_subscribed(&delivery.event.channel),
            Audience::User(u) => *conn.user == **u,
            Audience::Connection(id) => *conn.id == **id,
        };
        if !selected || conn.tenant != delivery.event.tenant_id {
            return false;
        }
        let allowed = conn.with_view(|view| self.filters.allows(view, &delivery.event));
        if !allowed {
            RealtimeStats::add(&self.stats.filtered, 1);
        }
        allowed
    }

    /// Hands `delivery` to this instance's connections of its tenant.
    fn dispatch(&self, delivery: &Delivery) {
        let registry = self.read();
        let Some(tenant) = registry.tenants.get(&delivery.event.tenant_id) else {
            return;
        };
        let one;
        let targets: &[Arc<Conn>] = match &delivery.audience {
            Audience::Connection(id) => match registry.conns.get(id.as_str()) {
                Some(c) => {
                    one = [c.clone()];
                    &one
                }
                None => return,
            },
            _ => &tenant.conns,
        };
        for conn in targets {
            if !self.admits(conn, delivery) {
                continue;
            }
            match conn.offer(
                Outbound::Event(delivery.id, delivery.frame.clone()),
                &self.stats,
            ) {
                Offered::Queued => RealtimeStats::add(&self.stats.sent, 1),
                Offered::Full => RealtimeStats::add(&self.stats.dropped, 1),
                Offered::Gone => {}
            }
        }
    }

    /// Closes this instance's connections a revocation names.
    pub(crate) fn apply(&self, control: &Control) {
        let registry = self.read();
        let matches = |c: &Conn| match control {
            Control::RevokeSession { session } => {
                c.principal().session_id() == Some(session.as_str())
            }
            Control::RevokeUser { tenant, user } => c.tenant == *tenant && *c.user == **user,
        };
        for conn in registry.conns.values() {
            if matches(conn) {
                conn.close(CloseReason::InvalidSession, &self.stats);
            }
        }
    }

    fn start_background(self: &Arc<Self>) {
        self.background.get_or_init(|| {
            let weak = Arc::downgrade(self);
            [
                tokio::spawn(sweep::run(weak.clone())).abort_handle(),
                tokio::spawn(control(weak)).abort_handle(),
            ]
        });
    }
}

/// The wait before subscribing again after a bus failure: doubles from
/// 100 ms up to 5 s.
fn backoff(previous: Duration) -> Duration {
    (previous * 2).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

/// Receives `tenant`'s events for as long as the hub holds connections of
/// it (the task is aborted with the last one), subscribing again after a
/// bus failure.
async fn listen(hub: Weak<HubInner>, tenant: TenantId, ready: watch::Sender<bool>) {
    let mut wait = Duration::ZERO;
    loop {
        let Some(bus) = hub.upgrade().map(|h| h.bus.clone()) else {
            return;
        };
        match bus.subscribe(&tenant).await {
            Ok(mut rx) => {
                ready.send_replace(true);
                wait = Duration::ZERO;
                loop {
                    let result = rx.recv().await;
                    let Some(hub) = hub.upgrade() else { return };
                    match result {
                        Ok(delivery) => hub.dispatch(&delivery),
                        Err(BusRecvError::Lagged(n)) => RealtimeStats::add(&hub.stats.dropped, n),
                        Err(BusRecvError::Corrupt) => RealtimeStats::add(&hub.stats.bus_errors, 1),
                        Err(_) => break,
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "realtime: subscribing to a tenant's events failed");
                if let Some(hub) = hub.upgrade() {
                    RealtimeStats::add(&hub.stats.bus_errors, 1);
                }
            }
        }
        drop(bus);
        wait = backoff(wait);
        tokio::time::sleep(wait).await;
    }
}

/// Applies revocations from every instance.
async fn control(hub: Weak<HubInner>) {
    let mut wait = Duration::ZERO;
    loop {
        let Some(bus) = hub.upgrade().map(|h| h.bus.clone()) else {
            return;
        };
        match bus.subscribe_control().await {
            Ok(mut rx) => {
                wait = Duration::ZERO;
                loop {
                    let result = rx.recv().await;
                    let Some(hub) = hub.upgrade() else { return };
                    match result {
                        Ok(control) => hub.apply(&control),
                        Err(BusRecvError::Lagged(_) | BusRecvError::Corrupt) => {
                            // The sweep still finds the dead sessions.
                            RealtimeStats::add(&hub.stats.bus_errors, 1);
                        }
                        Err(_) => break,
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "realtime: subscribing to revocations failed");
                if let Some(hub) = hub.upgrade() {
                    RealtimeStats::add(&hub.stats.bus_errors, 1);
                }
            }
        }
        drop(bus);
        wait = backoff(wait);
        tokio::time::sleep(wait).await;
    }
}
