//! Anomaly detection: per-user and per-IP baselines of login failures,
//! access denials and request rates, and signals for bursts, a user's
//! first login from a new network or country, and impossible travel
//! between two logins.
//!
//! Inputs are [`Observation`]s: the audit trail's login and access events
//! (through [`AnomalyAuditSink`], a tee in front of the real sink) and
//! requests (through [`RequestRateLayer`]). They are queued (bounded,
//! never blocking the request) and judged by one background task per
//! detector against the baselines in the shared state primitives, so
//! several instances sharing one Redis judge against one baseline:
//!
//! - **burst**: a key's (an IP's, a user's) count in the current window
//!   is above `max(min_count, mean + threshold_sigma·stddev)` of its EWMA
//!   baseline of earlier windows ([`Ewma`]); signalled once per window
//!   per key, on every instance together.
//! - **new_network** / **new_country**: a successful login from an IPv4
//!   /24 or IPv6 /48 (or a country, by the [`GeoResolver`]) the user has
//!   not logged in from during `known_network_ttl`. A user's first login
//!   ever only learns.
//! - **impossible_travel**: two logins whose locations are further apart
//!   than `max_travel_kmh` allows in the time between them; without
//!   coordinates, two countries within `min_country_change`.
//!
//! Every anomaly is an audit event `security.anomaly` (severity warning,
//! written to the inner sink, never observed again), a count in
//! `kailash_security_anomalies_total{signal, input}`, and a signal for
//! alert rules ([`AnomalySignals`]: `security_anomalies` and
//! `security_anomalies_<signal>`, the anomalies of the current and the
//! previous window on every instance).
//!
//! ```
//! use std::sync::Arc;
//! use kailash_core::audit::{AuditDecision, AuditEvent, MemoryAuditSink};
//! use kailash_core::clock::SystemClock;
//! use kailash_core::state::SharedState;
//! use kailash_monitoring::anomaly::*;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let trail = Arc::new(MemoryAuditSink::new());
//! let config = AnomalyConfig { min_count: 3, ..AnomalyConfig::default() };
//! let detector = AnomalyDetector::builder(config, SharedState::memory(Arc::new(SystemClock)))
//!     .audit(trail.clone())
//!     .build()
//!     .unwrap();
//! // Judge four failed logins from one address now (the audit tee and
//! // the request layer queue them for the background task instead).
//! let failure = AuditEvent::new("auth.login", AuditDecision::Failure)
//!     .actor("alice");
//! let mut failure = failure;
//! failure.client_ip = Some("192.0.2.7".parse().unwrap());
//! let observation = Observation::from_audit(&failure).unwrap();
//! let mut found = Vec::new();
//! for _ in 0..4 {
//!     found.extend(detector.judge(observation.clone()).await.unwrap());
//! }
//! assert_eq!(found.len(), 2); // per IP and per user, once each
//! assert_eq!(found[0].kind, AnomalyKind::Burst);
//! assert_eq!(found[0].reason, "burst: login_failures per ip 4 > baseline 3.0");
//! assert_eq!(trail.events()[0].action, "security.anomaly");
//! # });
//! ```

mod baseline;
mod geo;
mod observe;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use kailash_core::TenantId;
use kailash_core::audit::{AuditDecision, AuditEvent, AuditSeverity, AuditSink};
use kailash_core::state::{Namespace, SharedState, StateError, StateKey, WhenFull};
use tokio::sync::mpsc;

pub use baseline::Ewma;
pub use geo::{
    CidrGeoFile, GeoFileError, GeoLocation, GeoResolver, MAX_GEO_FILE_BYTES, MAX_GEO_RANGES,
    haversine_km,
};
pub use observe::{AnomalyAuditSink, RequestRate, RequestRateLayer};

/// The audit action of a detected anomaly.
pub const AUDIT_ACTION: &str = "security.anomaly";

/// The state namespace of the detector's keys.
const NS: Namespace = Namespace::new("anomaly");

/// Logins closer than this are not judged for travel: geolocation is
/// rarely more precise.
const TRAVEL_TOLERANCE_KM: f64 = 100.0;

/// What was detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AnomalyKind {
    /// A count above its baseline in the current window.
    Burst,
    /// A login from a network the user has not used.
    NewNetwork,
    /// A login from a country the user has not logged in from.
    NewCountry,
    /// Two logins too far apart for the time between them.
    ImpossibleTravel,
}

impl AnomalyKind {
    /// Every kind.
    pub const ALL: [AnomalyKind; 4] = [
        AnomalyKind::Burst,
        AnomalyKind::NewNetwork,
        AnomalyKind::NewCountry,
        AnomalyKind::ImpossibleTravel,
    ];

    /// The name in metrics, audit reasons and signals (`burst`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::Burst => "burst",
            AnomalyKind::NewNetwork => "new_network",
            AnomalyKind::NewCountry => "new_country",
            AnomalyKind::ImpossibleTravel => "impossible_travel",
        }
    }

    fn index(self) -> usize {
        match self {
            AnomalyKind::Burst => 0,
            AnomalyKind::NewNetwork => 1,
            AnomalyKind::NewCountry => 2,
            AnomalyKind::ImpossibleTravel => 3,
        }
    }
}

/// What an observation counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Input {
    /// A failed login (`auth.login`, decision `failure`).
    LoginFailures,
    /// A refused access decision (`access.check` or `tenant.resolve`,
    /// decision `deny`).
    AccessDenials,
    /// A request to an application route.
    Requests,
    /// A successful login (`auth.login`, decision `success`).
    Logins,
}

impl Input {
    /// The name in metrics and audit reasons (`login_failures`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Input::LoginFailures => "login_failures",
            Input::AccessDenials => "access_denials",
            Input::Requests => "requests",
            Input::Logins => "logins",
        }
    }
}

/// One thing that happened, as the detector sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// What it counts.
    pub input: Input,
    /// Who (a subject, or the auth service's tag of an unknown username).
    pub actor: Option<String>,
    /// The actor's tenant: per-user state is kept in it.
    pub tenant: Option<TenantId>,
    /// The client address.
    pub client_ip: Option<IpAddr>,
    /// When.
    pub time: Timestamp,
}

impl Observation {
    /// The observation an audit event makes, if any: failed and successful
    /// `auth.login`, and `deny` on `access.check` or `tenant.resolve`.
    /// Everything else (including `security.anomaly`) is not observed.
    pub fn from_audit(event: &AuditEvent) -> Option<Self> {
        let input = match (&*event.action, event.decision) {
            ("auth.login", AuditDecision::Failure) => Input::LoginFailures,
            ("auth.login", AuditDecision::Success) => Input::Logins,
            ("access.check" | "tenant.resolve", AuditDecision::Deny) => Input::AccessDenials,
            _ => return None,
        };
        Some(Self {
            input,
            actor: event.actor.clone(),
            tenant: event.tenant.clone(),
            client_ip: event.client_ip,
            time: event.time,
        })
    }
}

/// A detected anomaly.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Anomaly {
    /// What was detected.
    pub kind: AnomalyKind,
    /// What it was detected in.
    pub input: Input,
    /// Who.
    pub actor: Option<String>,
    /// Their tenant.
    pub tenant: Option<TenantId>,
    /// From where.
    pub client_ip: Option<IpAddr>,
    /// When (the observation's time).
    pub time: Timestamp,
    /// Why, e.g. `burst: login_failures per ip 42 > baseline 3.1`.
    pub reason: String,
}

impl Anomaly {
    /// The audit event that records it: `security.anomaly`, decision
    /// `failure` (the behaviour check failed; nothing was refused),
    /// severity warning, resource `<signal>:<input>`.
    pub fn audit_event(&self) -> AuditEvent {
        let mut event = AuditEvent::new(AUDIT_ACTION, AuditDecision::Failure)
            .at(self.time)
            .severity(AuditSeverity::Warning)
            .tenant(self.tenant.clone())
            .resource(format!("{}:{}", self.kind.as_str(), self.input.as_str()))
            .reason(self.reason.clone());
        if let Some(actor) = &self.actor {
            event = event.actor(actor.clone());
        }
        event.client_ip = self.client_ip;
        event
    }
}

/// The detector's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyConfig {
    /// The counting window (default 1 minute).
    pub window: Duration,
    /// The EWMA's weight of the newest window, in (0, 1] (default 0.3).
    pub alpha: f64,
    /// How many standard deviations above the mean a burst is (default 3).
    pub threshold_sigma: f64,
    /// Login failures and access denials per window at or below which no
    /// burst is signalled, whatever the baseline (default 10).
    pub min_count: u64,
    /// The same for requests (default 600).
    pub min_requests: u64,
    /// Faster than this between two logins is impossible travel (default
    /// 1000 km/h).
    pub max_travel_kmh: f64,
    /// Without coordinates: logins from two countries closer in time than
    /// this are impossible travel (default 1 hour).
    pub min_country_change: Duration,
    /// How long a user's networks and countries, and their last login,
    /// are remembered (default 90 days).
    pub known_network_ttl: Duration,
    /// The most networks and countries remembered per user; the oldest
    /// leave first (default 64).
    pub max_known_networks: usize,
    /// Observations queued for the background task at most; more are
    /// dropped and counted in `kailash_security_anomaly_dropped_total`
    /// (default 4096).
    pub queue: usize,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            alpha: 0.3,
            threshold_sigma: 3.0,
            min_count: 10,
            min_requests: 600,
            max_travel_kmh: 1000.0,
            min_country_change: Duration::from_secs(3600),
            known_network_ttl: Duration::from_secs(90 * 24 * 3600),
            max_known_networks: 64,
            queue: 4096,
        }
    }
}

impl AnomalyConfig {
    /// Checks the settings: `Err((field, why))`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.window < Duration::from_secs(1) || self.window > Duration::from_secs(86_400) {
            return Err(("window", "must be between 1s and 24h".into()));
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(("alpha", "must be in (0, 1]".into()));
        }
        if !(self.threshold_sigma.is_finite() && self.threshold_sigma >= 0.0) {
            return Err(("threshold_sigma", "must be a number ≥ 0".into()));
        }
        if self.min_count == 0 {
            return Err(("min_count", "must be at least 1".into()));
        }
        if self.min_requests == 0 {
            return Err(("min_requests", "must be at least 1".into()));
        }
        if !(self.max_travel_kmh.is_finite() && self.max_travel_kmh > 0.0) {
            return Err(("max_travel_kmh", "must be a positive number".into()));
        }
        if self.known_network_ttl < Duration::from_secs(3600) {
            return Err(("known_network_ttl", "must be at least 1h".into()));
        }
        if !(1..=1024).contains(&self.max_known_networks) {
            return Err(("max_known_networks", "must be between 1 and 1024".into()));
        }
        if !(1..=1_000_000).contains(&self.queue) {
            return Err(("queue", "must be between 1 and 1000000".into()));
        }
        Ok(())
    }

    /// Windows after which a baseline has decayed below 1 % of its level:
    /// how long counters and baselines are kept (2..=1000).
    fn horizon(&self) -> u64 {
        let h = (0.01f64.ln() / (1.0 - self.alpha).ln()).ceil();
        if h.is_finite() && h > 2.0 {
            (h as u64).min(1000)
        } else {
            2
        }
    }

    fn window_of(&self, time: Timestamp) -> i64 {
        let ms = i64::try_from(self.window.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        time.as_millisecond().div_euclid(ms)
    }

    fn windows(&self, n: u64) -> Duration {
        self.window
            .saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

/// Why a detector could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("anomaly detection: {key}: {message}")]
pub struct AnomalyConfigError {
    /// The [`AnomalyConfig`] field.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Builds an [`AnomalyDetector`].
#[must_use]
pub struct AnomalyDetectorBuilder {
    config: AnomalyConfig,
    state: SharedState,
    geo: Option<Arc<dyn GeoResolver>>,
    audit: Option<Arc<dyn AuditSink>>,
}

impl std::fmt::Debug for AnomalyDetectorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnomalyDetectorBuilder")
            .field("config", &self.config)
            .field("geo", &self.geo.is_some())
            .field("audit", &self.audit.is_some())
            .finish_non_exhaustive()
    }
}

impl AnomalyDetectorBuilder {
    /// Resolves login addresses to locations (without one, only the
    /// network signal and bursts are detected).
    pub fn geo(mut self, geo: Arc<dyn GeoResolver>) -> Self {
        self.geo = Some(geo);
        self
    }

    /// Where `security.anomaly` events are written: the real sink, not
    /// the [`AnomalyAuditSink`] in front of it.
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// The detector (not yet started: see [`AnomalyDetector::start`]).
    pub fn build(self) -> Result<AnomalyDetector, AnomalyConfigError> {
        self.config
            .validate()
            .map_err(|(key, message)| AnomalyConfigError { key, message })?;
        let (tx, rx) = mpsc::channel(self.config.queue);
        let horizon = self.config.horizon();
        Ok(AnomalyDetector {
            inner: Arc::new(Inner {
                horizon,
                config: self.config,
                state: self.state,
                geo: self.geo,
                audit: self.audit,
                recent: Arc::new(Recent::default()),
                rx: Mutex::new(Some(rx)),
                started: AtomicBool::new(false),
            }),
            tx,
        })
    }
}

struct Inner {
    config: AnomalyConfig,
    horizon: u64,
    state: SharedState,
    geo: Option<Arc<dyn GeoResolver>>,
    audit: Option<Arc<dyn AuditSink>>,
    recent: Arc<Recent>,
    rx: Mutex<Option<mpsc::Receiver<Observation>>>,
    started: AtomicBool,
}

/// The anomaly detector: cheap to clone; every clone shares the queue and
/// the background task, which ends when the last clone is dropped.
#[derive(Clone)]
pub struct AnomalyDetector {
    inner: Arc<Inner>,
    tx: mpsc::Sender<Observation>,
}

impl std::fmt::Debug for AnomalyDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnomalyDetector")
            .field("config", &self.inner.config)
            .field("geo", &self.inner.geo.is_some())
            .finish_non_exhaustive()
    }
}

impl AnomalyDetector {
    /// A builder over `config` and the shared state.
    pub fn builder(config: AnomalyConfig, state: SharedState) -> AnomalyDetectorBuilder {
        AnomalyDetectorBuilder {
            config,
            state,
            geo: None,
            audit: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &AnomalyConfig {
        &self.inner.config
    }

    /// Starts the background task that judges queued observations (on the
    /// current tokio runtime, which needs its time driver). Returns
    /// `false` if it was started before, or when called outside a runtime.
    pub fn start(&self) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if self.inner.started.swap(true, Ordering::SeqCst) {
            return false;
        }
        let Some(mut rx) = self.inner.rx.lock().ok().and_then(|mut rx| rx.take()) else {
            return false;
        };
        let inner = self.inner.clone();
        runtime.spawn(async move {
            let mut batch = Vec::with_capacity(256);
            let refresh = inner.config.window.min(Duration::from_secs(10));
            let mut tick = tokio::time::interval(refresh);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    n = rx.recv_many(&mut batch, 256) => {
                        if n == 0 {
                            break;
                        }
                        judge_batch(&inner, std::mem::take(&mut batch)).await;
                    }
                    _ = tick.tick() => {
                        if let Err(e) = refresh_recent(&inner).await {
                            tracing::debug!(error = %e, "anomaly signals not refreshed");
                        }
                    }
                }
            }
        });
        true
    }

    /// Queues an observation for the background task without waiting.
    /// Returns whether it was queued; a full queue drops it (counted in
    /// `kailash_security_anomaly_dropped_total`).
    pub fn offer(&self, observation: Observation) -> bool {
        match self.tx.try_send(observation) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("kailash_security_anomaly_dropped_total").increment(1);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Judges one observation now and reports what it finds (audit event,
    /// metric, signal), returning it. The background task does this for
    /// queued observations.
    pub async fn judge(&self, observation: Observation) -> Result<Vec<Anomaly>, StateError> {
        let found = detect(&self.inner, &observation, 1).await?;
        for anomaly in &found {
            report(&self.inner, anomaly).await;
        }
        Ok(found)
    }

    /// The signals for alert rules.
    pub fn signals(&self) -> AnomalySignals {
        AnomalySignals {
            recent: self.inner.recent.clone(),
            clock: self.inner.state.clock.clone(),
            window: self.inner.config.window,
        }
    }

    /// The tee in front of `sink` that observes the events written to it.
    pub fn audit_sink(&self, sink: Arc<dyn AuditSink>) -> AnomalyAuditSink {
        AnomalyAuditSink::new(sink, self.clone())
    }

    /// The layer that observes requests (per client IP, and per principal
    /// when authentication ran before it).
    pub fn request_layer(&self) -> RequestRateLayer {
        RequestRateLayer::new(self.clone())
    }
}

/// Judges a batch: counts of the same key are added at once.
async fn judge_batch(inner: &Inner, batch: Vec<Observation>) {
    let mut merged: Vec<(Observation, i64)> = Vec::with_capacity(batch.len());
    for obs in batch {
        if obs.input != Input::Logins
            && let Some((last, n)) = merged.iter_mut().find(|(o, _)| {
                o.input == obs.input
                    && o.actor == obs.actor
                    && o.tenant == obs.tenant
                    && o.client_ip == obs.client_ip
            })
        {
            *n += 1;
            last.time = last.time.max(obs.time);
            continue;
        }
        merged.push((obs, 1));
    }
    for (obs, n) in merged {
        match detect(inner, &obs, n).await {
            Ok(found) => {
                for anomaly in &found {
                    report(inner, anomaly).await;
                }
            }
            Err(e) => {
                metrics::counter!("kailash_security_anomaly_errors_total").increment(1);
                tracing::warn!(error = %e, input = obs.input.as_str(), "anomaly detection skipped an observation");
            }
        }
    }
}

/// A key's state: its tenant (per-user state of a tenant's user) and id.
struct Base {
    tenant: Option<TenantId>,
    id: String,
}

impl Base {
    fn key(&self, suffix: &str) -> StateKey {
        let id = format!("{}{suffix}", self.id);
        match &self.tenant {
            Some(t) => StateKey::tenant(t, NS, &id),
            None => StateKey::global(NS, &id),
        }
    }
}

/// The IPv4 address, or the IPv6 /64 an address is counted under.
fn ip_subject(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The network a login is remembered by: IPv4 /24, IPv6 /48.
fn network_of(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

fn user_key(tenant: Option<&TenantId>, id: &str) -> StateKey {
    match tenant {
        Some(t) => StateKey::tenant(t, NS, id),
        None => StateKey::global(NS, id),
    }
}

async fn detect(inner: &Inner, obs: &Observation, n: i64) -> Result<Vec<Anomaly>, StateError> {
    let mut found = Vec::new();
    if obs.input == Input::Logins {
        login(inner, obs, &mut found).await?;
        return Ok(found);
    }
    let min = match obs.input {
        Input::Requests => inner.config.min_requests,
        _ => inner.config.min_count,
    } as f64;
    let input = obs.input.as_str();
    if let Some(ip) = obs.client_ip {
        let base = Base {
            tenant: None,
            id: format!("ip:{input}:{}", ip_subject(ip)),
        };
        if let Some((count, threshold)) = burst(inner, &base, obs.time, n, min).await? {
            found.push(burst_anomaly(obs, "ip", count, threshold));
        }
    }
    if let Some(actor) = &obs.actor {
        let base = Base {
            tenant: obs.tenant.clone(),
            id: format!("user:{input}:{actor}"),
        };
        if let Some((count, threshold)) = burst(inner, &base, obs.time, n, min).await? {
            found.push(burst_anomaly(obs, "user", count, threshold));
        }
    }
    Ok(found)
}

fn burst_anomaly(obs: &Observation, scope: &str, count: i64, threshold: f64) -> Anomaly {
    Anomaly {
        kind: AnomalyKind::Burst,
        input: obs.input,
        actor: obs.actor.clone(),
        tenant: obs.tenant.clone(),
        client_ip: obs.client_ip,
        time: obs.time,
        reason: format!(
            "burst: {} per {scope} {count} > baseline {threshold:.1}",
            obs.input.as_str()
        ),
    }
}

/// Adds `n` to the key's current window; `Some((count, threshold))` the
/// first time in the window that the count is above the threshold.
async fn burst(
    inner: &Inner,
    base: &Base,
    time: Timestamp,
    n: i64,
    min: f64,
) -> Result<Option<(i64, f64)>, StateError> {
    let config = &inner.config;
    let w = config.window_of(time);
    let keep = config.windows(inner.horizon + 1);
    let count = inner
        .state
        .counters
        .add(&base.key(&format!(":w:{w}")), n, Some(keep))
        .await?
        .value;
    if count == n {
        // The first observation of the window on any instance: fold the
        // windows before it into the stored baseline.
        roll(inner, base, w).await?;
    }
    if (count as f64) <= min {
        return Ok(None);
    }
    let (_, _, baseline) = baseline(inner, base, w).await?;
    let threshold = baseline.threshold(config.threshold_sigma, min);
    if (count as f64) <= threshold {
        return Ok(None);
    }
    let first = inner
        .state
        .kv
        .set_if_absent(
            &base.key(&format!(":d:{w}")),
            Bytes::from_static(b"1"),
            Some(config.windows(2)),
        )
        .await?;
    Ok(first.then_some((count, threshold)))
}

/// The stored baseline (its raw bytes and the window it counts) and the
/// baseline through the window before `w` (folded in memory when not
/// stored yet).
async fn baseline(
    inner: &Inner,
    base: &Base,
    w: i64,
) -> Result<(Option<Bytes>, Option<i64>, Ewma), StateError> {
    let raw = inner.state.kv.get(&base.key(":b")).await?;
    let mut e = match &raw {
        Some(raw) => Ewma::decode(raw)?,
        None => Ewma::default(),
    };
    let stored = e.active();
    match stored {
        Some(a) if a < w => {
            let count = inner
                .state
                .counters
                .get(&base.key(&format!(":w:{a}")))
                .await?
                .value;
            e.fold(count.max(0) as f64, inner.config.alpha);
            let gap = u64::try_from(w - a - 1).unwrap_or(u64::MAX);
            e.fold_empty(gap, inner.config.alpha, inner.horizon);
            e.set_active(w);
        }
        Some(_) => {}
        None => e.set_active(w),
    }
    Ok((raw, stored, e))
}

/// Stores the baseline through the window before `w` (compare-and-swap:
/// another instance may be doing the same).
async fn roll(inner: &Inner, base: &Base, w: i64) -> Result<(), StateError> {
    let key = base.key(":b");
    let keep = inner.config.windows(inner.horizon + 1);
    for _ in 0..3 {
        let (raw, stored, e) = baseline(inner, base, w).await?;
        if stored >= Some(w) {
            return Ok(());
        }
        let new = Bytes::from(e.encode());
        if inner
            .state
            .kv
            .compare_and_swap(&key, raw.as_deref(), Some(new), Some(keep))
            .await?
        {
            return Ok(());
        }
    }
    Ok(())
}

/// The last login: `v1 <unix seconds> <country or -> <lat or -> <lon or ->`.
struct LastLogin {
    at: i64,
    location: Option<GeoLocation>,
}

impl LastLogin {
    fn encode(&self) -> String {
        match &self.location {
            None => format!("v1 {} - - -", self.at),
            Some(l) => match l.coords {
                Some((lat, lon)) => format!("v1 {} {} {lat} {lon}", self.at, l.country()),
                None => format!("v1 {} {} - -", self.at, l.country()),
            },
        }
    }

    fn decode(raw: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(raw).ok()?;
        let parts: Vec<&str> = text.split(' ').collect();
        let [v, at, country, lat, lon] = parts.as_slice() else {
            return None;
        };
        if *v != "v1" {
            return None;
        }
        let at = at.parse().ok()?;
        let coords = match (lat.parse::<f64>(), lon.parse::<f64>()) {
            (Ok(lat), Ok(lon)) => Some((lat, lon)),
            _ => None,
        };
        let location = if *country == "-" {
            None
        } else {
            Some(GeoLocation::new(country, coords)?)
        };
        Some(Self { at, location })
    }
}

async fn login(
    inner: &Inner,
    obs: &Observation,
    found: &mut Vec<Anomaly>,
) -> Result<(), StateError> {
    let (Some(actor), Some(ip)) = (&obs.actor, obs.client_ip) else {
        return Ok(());
    };
    let config = &inner.config;
    let tenant = obs.tenant.as_ref();
    let sets = &inner.state.sets;
    let known = user_key(tenant, &format!("known:{actor}"));
    let had_any = sets.len(&known).await? > 0;
    let location = inner.geo.as_ref().and_then(|g| g.resolve(ip));
    let until = obs
        .time
        .checked_add(config.known_network_ttl)
        .unwrap_or(Timestamp::MAX);
    let cap = config.max_known_networks;
    let anomaly = |kind, reason: String| Anomaly {
        kind,
        input: Input::Logins,
        actor: obs.actor.clone(),
        tenant: obs.tenant.clone(),
        client_ip: obs.client_ip,
        time: obs.time,
        reason,
    };
    let network = format!("n:{}", network_of(ip));
    let network_known = had_any && sets.contains(&known, &network).await?;
    sets.insert(&known, &network, until, cap, WhenFull::EvictOldest)
        .await?;
    if had_any && !network_known {
        found.push(anomaly(
            AnomalyKind::NewNetwork,
            format!(
                "new_network: first login from this {} network",
                if ip.to_canonical().is_ipv4() {
                    "/24"
                } else {
                    "/48"
                }
            ),
        ));
    }
    if let Some(loc) = &location {
        let country = format!("c:{}", loc.country());
        let country_known = had_any && sets.contains(&known, &country).await?;
        sets.insert(&known, &country, until, cap, WhenFull::EvictOldest)
            .await?;
        if had_any && !country_known {
            found.push(anomaly(
                AnomalyKind::NewCountry,
                format!("new_country: first login from {}", loc.country()),
            ));
        }
    }
    let last_key = user_key(tenant, &format!("last:{actor}"));
    let now_s = obs.time.as_second();
    let previous = match location {
        Some(_) => inner
            .state
            .kv
            .get(&last_key)
            .await?
            .and_then(|raw| LastLogin::decode(&raw)),
        None => None,
    };
    if let (
        Some(LastLogin {
            at,
            location: Some(before),
        }),
        Some(here),
    ) = (previous, location)
    {
        let elapsed = now_s.saturating_sub(at).max(0);
        let hours = elapsed as f64 / 3600.0;
        let verdict = match (before.coords, here.coords) {
            (Some(a), Some(b)) => {
                let km = haversine_km(a, b);
                let speed = if elapsed == 0 {
                    f64::INFINITY
                } else {
                    km / hours
                };
                (km > TRAVEL_TOLERANCE_KM && speed > config.max_travel_kmh).then(|| {
                    format!(
                        "impossible_travel: {} to {}, {km:.0} km in {elapsed} s (> {:.0} km/h)",
                        before.country(),
                        here.country(),
                        config.max_travel_kmh
                    )
                })
            }
            _ => (before.country() != here.country()
                && u64::try_from(elapsed).unwrap_or(0) < config.min_country_change.as_secs())
            .then(|| {
                format!(
                    "impossible_travel: {} to {} in {elapsed} s (< {} s)",
                    before.country(),
                    here.country(),
                    config.min_country_change.as_secs()
                )
            }),
        };
        if let Some(reason) = verdict {
            found.push(anomaly(AnomalyKind::ImpossibleTravel, reason));
        }
    }
    // The last *located* login is what the next one is compared with: a
    // login from an address the resolver does not know changes nothing.
    if location.is_some() {
        let last = LastLogin {
            at: now_s,
            location,
        };
        inner
            .state
            .kv
            .set(
                &last_key,
                Bytes::from(last.encode()),
                Some(config.known_network_ttl),
            )
            .await?;
    }
    Ok(())
}

async fn report(inner: &Inner, anomaly: &Anomaly) {
    metrics::counter!(
        "kailash_security_anomalies_total",
        "signal" => anomaly.kind.as_str(),
        "input" => anomaly.input.as_str(),
    )
    .increment(1);
    tracing::warn!(
        signal = anomaly.kind.as_str(),
        input = anomaly.input.as_str(),
        reason = %anomaly.reason,
        "security anomaly"
    );
    // Shared across instances: the signal is the same on every one.
    let w = inner.config.window_of(inner.state.clock.now());
    let key = StateKey::global(NS, &format!("sig:{}:{w}", anomaly.kind.as_str()));
    match inner
        .state
        .counters
        .add(&key, 1, Some(inner.config.windows(3)))
        .await
    {
        Ok(v) => inner.recent.set(w, anomaly.kind, v.value.max(0) as u64),
        Err(_) => inner.recent.bump(w, anomaly.kind),
    }
    if let Some(sink) = &inner.audit
        && let Err(e) = sink.record(anomaly.audit_event()).await
    {
        metrics::counter!("kailash_security_anomaly_errors_total").increment(1);
        tracing::error!(error = %e, signal = anomaly.kind.as_str(), "security.anomaly not audited");
    }
}

async fn refresh_recent(inner: &Inner) -> Result<(), StateError> {
    let w = inner.config.window_of(inner.state.clock.now());
    for window in [w - 1, w] {
        for kind in AnomalyKind::ALL {
            let key = StateKey::global(NS, &format!("sig:{}:{window}", kind.as_str()));
            let v = inner.state.counters.get(&key).await?.value;
            inner.recent.set(window, kind, v.max(0) as u64);
        }
    }
    Ok(())
}

/// Anomaly counts of the two newest windows.
#[derive(Default)]
struct Recent {
    slots: Mutex<[(i64, [u64; 4]); 2]>,
}

impl Recent {
    fn update(&self, w: i64, f: impl FnOnce(&mut [u64; 4])) {
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        let at = match slots.iter().position(|(sw, _)| *sw == w) {
            Some(i) => i,
            None => {
                let oldest = if slots[0].0 <= slots[1].0 { 0 } else { 1 };
                if slots[oldest].0 > w {
                    return;
                }
                slots[oldest] = (w, [0; 4]);
                oldest
            }
        };
        f(&mut slots[at].1);
    }

    fn set(&self, w: i64, kind: AnomalyKind, value: u64) {
        self.update(w, |c| {
            let slot = &mut c[kind.index()];
            *slot = (*slot).max(value);
        });
    }

    fn bump(&self, w: i64, kind: AnomalyKind) {
        self.update(w, |c| c[kind.index()] += 1);
    }

    fn counts(&self, w: i64) -> [u64; 4] {
        let mut out = [0; 4];
        if let Ok(slots) = self.slots.lock() {
            for (sw, c) in slots.iter() {
                if *sw == w || *sw == w - 1 {
                    for (o, v) in out.iter_mut().zip(c) {
                        *o += v;
                    }
                }
            }
        }
        out
    }
}

/// The detector's signals for alert rules: `security_anomalies` (every
/// kind) and `security_anomalies_<signal>` (`burst`, `new_network`,
/// `new_country`, `impossible_travel`), each the number of anomalies
/// detected in the current and the previous window by every instance
/// sharing the state (refreshed every window, at most every 10 s).
#[derive(Clone)]
pub struct AnomalySignals {
    recent: Arc<Recent>,
    clock: Arc<dyn kailash_core::clock::Clock>,
    window: Duration,
}

impl std::fmt::Debug for AnomalySignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnomalySignals")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl AnomalySignals {
    /// The names these signals report.
    pub const NAMES: [&'static str; 5] = [
        "security_anomalies",
        "security_anomalies_burst",
        "security_anomalies_new_network",
        "security_anomalies_new_country",
        "security_anomalies_impossible_travel",
    ];
}

impl crate::signal::SignalSource for AnomalySignals {
    fn collect(&self, out: &mut crate::signal::Signals) {
        let ms = i64::try_from(self.window.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let w = self.clock.now().as_millisecond().div_euclid(ms);
        let counts = self.recent.counts(w);
        out.number(Self::NAMES[0], counts.iter().sum::<u64>() as f64);
        for kind in AnomalyKind::ALL {
            out.number(Self::NAMES[1 + kind.index()], counts[kind.index()] as f64);
        }
    }
}

#[cfg(test)]
mod tests;
