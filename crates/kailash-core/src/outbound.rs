//! The outbound connection pool (feature `outbound`): one bounded set of
//! kept-alive HTTP/1.1 connections shared by every outbound caller of a
//! gateway — JWKS and OpenID Connect fetches, alert and billing webhooks,
//! external-API health checks, trace export and the workflow runtime's
//! `http_request`/`llm` nodes.
//!
//! The pool does not decide where a connection goes or how it is secured:
//! each caller opens its own connections (its address checks, its TLS
//! roots) through the `connect` function it passes, and names them with a
//! [`PoolKey`]. A connection is reused only for the same key — scheme,
//! host, port *and* the caller's partition — so a connection one caller
//! opened under looser rules (a private CA, a private address an
//! integration may reach) is never handed to another.
//!
//! [`PoolConfig::max_connections`] (the gateway's `connection_pool_size`)
//! bounds the connections open at once, busy and idle together: when all
//! are taken, the oldest idle connection (of any key) is closed to make
//! room, and when none is idle a caller waits for one — within its own
//! deadline, which every caller sets. Tenants' traffic — keys marked
//! [`PoolKey::workload`], the workflow nodes' — holds at most
//! [`PoolConfig::workload_max`] of the connections (three quarters), so a
//! slow integration never starves the gateway's own calls (sign-in,
//! health checks, alerts, billing). Idle connections are closed after
//! [`PoolConfig::idle_timeout`] by one background task per pool, which
//! also drops the ones the server closed.
//!
//! Metrics, of the pool made with [`PoolConfig::metrics`] (a gateway's
//! one pool):
//! `kailash_outbound_connections{state="open|idle"}`,
//! `kailash_outbound_pool_max`, `kailash_outbound_requests_total{connection="new|reused"}`,
//! `kailash_outbound_retries_total` and `kailash_outbound_pool_waits_total`
//! (a call found every connection busy and waited: the pool is too small
//! for the load).
//!
//! A kept-alive connection the server closed meanwhile is the usual race
//! of connection reuse: a request that could not be written to a reused
//! connection, or a replayable one that got no answer on it — an
//! idempotent method (`GET`, `HEAD`, `PUT`, `DELETE`, `OPTIONS`, `TRACE`)
//! or any request with an `Idempotency-Key` header — is sent once more on
//! a new connection — never on another kept-alive one. Any other `POST`
//! that may have reached the server is never repeated, and reuses only a
//! connection used within [`NON_REPLAYABLE_MAX_IDLE`], before a server's
//! keep-alive timeout can have closed it.
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http::Request;
//! use http_body_util::BodyExt;
//! use kailash_core::outbound::{ConnectionPool, PoolConfig, PoolKey};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // A server answering two requests on one connection.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let addr = listener.local_addr().unwrap();
//! tokio::spawn(async move {
//!     let (mut socket, _) = listener.accept().await.unwrap();
//!     let mut buf = vec![0; 4096];
//!     for _ in 0..2 {
//!         let _ = socket.read(&mut buf).await.unwrap();
//!         socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
//!     }
//! });
//!
//! let pool = ConnectionPool::new(PoolConfig::default().max_connections(10));
//! let key = PoolKey::new(false, "127.0.0.1", addr.port());
//! for _ in 0..2 {
//!     let request = Request::get("/").header("host", "127.0.0.1").body(Bytes::new()).unwrap();
//!     let (response, connection) = pool
//!         .send(&key, || async move { tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string()) }, request)
//!         .await
//!         .unwrap();
//!     let body = response.into_body().collect().await.unwrap().to_bytes();
//!     assert_eq!(&body[..], b"ok");
//!     connection.release(); // read to the end: the connection can be reused
//! }
//! assert_eq!(pool.stats().opened, 1);
//! assert_eq!(pool.stats().reused, 1);
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The default [`PoolConfig::max_connections`] (the seed's
/// `connection_pool_size`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 100;

/// The most connections a pool may hold open.
pub const MAX_MAX_CONNECTIONS: usize = 10_000;

/// The default [`PoolConfig::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A request that must not be sent twice (a `POST` without an
/// `Idempotency-Key`) reuses only a connection idle for at most this long:
/// servers close idle connections after a few seconds (Node's default is
/// 5 s), and such a request cannot be sent again if the server closed its
/// connection as it arrived.
pub const NON_REPLAYABLE_MAX_IDLE: Duration = Duration::from_secs(2);

/// The read buffer of a pooled connection, which bounds an answer's status
/// line and headers.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How a pool is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    max_connections: usize,
    idle_timeout: Duration,
    metrics: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            metrics: false,
        }
    }
}

impl PoolConfig {
    /// At most `n` connections open at once, busy and idle (clamped to
    /// `1..=`[`MAX_MAX_CONNECTIONS`]).
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.clamp(1, MAX_MAX_CONNECTIONS);
        self
    }

    /// Idle connections are closed after `timeout`; zero keeps none (each
    /// request opens its own connection, still within the bound).
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Whether this pool reports the `kailash_outbound_*` metrics (a
    /// gateway's one pool does; a process should have one such pool).
    #[must_use]
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// The bound on open connections.
    pub fn max(&self) -> usize {
        self.max_connections
    }

    /// How long a connection is kept idle.
    pub fn idle(&self) -> Duration {
        self.idle_timeout
    }

    /// The most connections [`workload`](PoolKey::workload) keys may hold:
    /// the bound less a quarter of it (at least one) kept for the
    /// gateway's own calls; the whole bound when it is 1.
    pub fn workload_max(&self) -> usize {
        let n = self.max_connections;
        if n < 2 { n } else { n - (n / 4).max(1) }
    }
}

/// Which connections may serve a request: the same scheme, host and port,
/// opened by a caller of the same partition.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    https: bool,
    host: String,
    port: u16,
    partition: String,
    workload: bool,
}

impl fmt::Debug for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}:{} ({}{})",
            if self.https { "https" } else { "http" },
            self.host,
            self.port,
            self.partition,
            if self.workload { ", workload" } else { "" }
        )
    }
}

impl PoolKey {
    /// Connections to `host:port` over TLS (`https`) or not, in the
    /// default partition.
    pub fn new(https: bool, host: impl Into<String>, port: u16) -> Self {
        Self {
            https,
            host: host.into().to_ascii_lowercase(),
            port,
            partition: String::new(),
            workload: false,
        }
    }

    /// The same key in `partition`: connections opened under other rules
    /// (other TLS roots, other address checks) are never shared.
    #[must_use]
    pub fn partition(mut self, partition: impl Into<String>) -> Self {
        self.partition = partition.into();
        self
    }

    /// The same key as tenants' traffic (workflow nodes): such connections
    /// together hold at most [`PoolConfig::workload_max`], so a tenant's
    /// slow integration never takes the slots the gateway's own calls —
    /// sign-in, health checks, alerts, billing — need.
    #[must_use]
    pub fn workload(mut self) -> Self {
        self.workload = true;
        self
    }
}

/// What a pool has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolStats {
    /// Connections open now, busy and idle.
    pub open: usize,
    /// Connections idle now.
    pub idle: usize,
    /// Connections opened in all.
    pub opened: u64,
    /// Requests sent on a connection an earlier request had used.
    pub reused: u64,
    /// Requests sent again on a new connection after a reused one failed.
    pub retried: u64,
    /// Times a call found every connection busy and waited for one.
    pub waited: u64,
}

/// Why a request got no answer. The message never holds the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The caller's `connect` failed (its message).
    #[error("{0}")]
    Connect(String),
    /// The HTTP exchange failed.
    #[error("HTTP: {0}")]
    Http(String),
    /// The pool was dropped while waiting for a connection.
    #[error("the connection pool is closed")]
    Closed,
}

/// A slot for one connection: of the whole bound, and of the workload
/// share for workload keys.
struct Slot {
    _all: OwnedSemaphorePermit,
    _workload: Option<OwnedSemaphorePermit>,
}

/// An open connection: idle in the pool, or lent with a request.
struct Conn {
    id: u64,
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
    slot: Option<Slot>,
    pool: Weak<Inner>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
        // The slot is free before the gauges are read.
        drop(self.slot.take());
        if let Some(pool) = self.pool.upgrade() {
            pool.released.notify_waiters();
            pool.publish();
        }
    }
}

#[allow(clippy::cast_precision_loss, reason = "at most MAX_MAX_CONNECTIONS")]
fn as_f64(n: usize) -> f64 {
    n as f64
}

struct Idle {
    conn: Conn,
    since: Instant,
}

struct Inner {
    config: PoolConfig,
    permits: Arc<Semaphore>,
    workload_permits: Arc<Semaphore>,
    idle: Mutex<HashMap<PoolKey, Vec<Idle>>>,
    /// Idle connections oldest first, for eviction: (key, id).
    order: Mutex<VecDeque<(PoolKey, u64)>>,
    next_id: AtomicU64,
    opened: AtomicU64,
    reused: AtomicU64,
    retried: AtomicU64,
    waited: AtomicU64,
    /// Connections in `idle` (kept beside it, so the gauges never lock).
    idle_count: std::sync::atomic::AtomicUsize,
    /// Whether the reaper task runs.
    reaping: std::sync::atomic::AtomicBool,
    /// Woken when a connection goes idle or closes.
    released: tokio::sync::Notify,
}

/// A bounded pool of HTTP/1.1 connections; cheap to clone (clones share
/// the pool).
#[derive(Clone)]
pub struct ConnectionPool {
    inner: Arc<Inner>,
}

impl fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for ConnectionPool {
    /// A pool with the [`PoolConfig::default`] bounds.
    fn default() -> Self {
        Self::new(PoolConfig::default())
    }
}

/// A connection lent with an answer: [`release`](Self::release) it once
/// the answer's body has been read to its end, or drop it to close the
/// connection.
pub struct Lent {
    conn: Option<Conn>,
    key: PoolKey,
    pool: Weak<Inner>,
    reused: bool,
}

impl fmt::Debug for Lent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lent")
            .field("key", &self.key)
            .field("reused", &self.reused)
            .finish()
    }
}

impl Lent {
    /// Whether an earlier request had used this connection.
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// Gives the connection back to the pool for the next request to the
    /// same key. Call it only after the answer's body was read to its end
    /// (a connection with an unread answer cannot carry another); a
    /// connection the server is closing is dropped instead.
    pub fn release(mut self) {
        let (Some(conn), Some(pool)) = (self.conn.take(), self.pool.upgrade()) else {
            return;
        };
        Inner::check_in(&pool, self.key.clone(), conn);
    }
}

/// Whether sending `request` twice has the effect of sending it once: an
/// idempotent method, or an `Idempotency-Key` the receiver deduplicates by
/// (the rule of Go's `net/http`).
fn replayable(parts: &http::request::Parts) -> bool {
    matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    ) || parts.headers.contains_key("idempotency-key")
}

impl ConnectionPool {
    /// An empty pool bounded by `config`.
    pub fn new(config: PoolConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                permits: Arc::new(Semaphore::new(config.max_connections)),
                workload_permits: Arc::new(Semaphore::new(config.workload_max())),
                idle: Mutex::new(HashMap::new()),
                order: Mutex::new(VecDeque::new()),
                next_id: AtomicU64::new(0),
                opened: AtomicU64::new(0),
                reused: AtomicU64::new(0),
                retried: AtomicU64::new(0),
                waited: AtomicU64::new(0),
                idle_count: std::sync::atomic::AtomicUsize::new(0),
                reaping: std::sync::atomic::AtomicBool::new(false),
                released: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Its bounds.
    pub fn config(&self) -> PoolConfig {
        self.inner.config
    }

    /// Counts of connections and requests.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            open: self.inner.open(),
            idle: self.inner.idle_count.load(Ordering::Relaxed),
            opened: self.inner.opened.load(Ordering::Relaxed),
            reused: self.inner.reused.load(Ordering::Relaxed),
            retried: self.inner.retried.load(Ordering::Relaxed),
            waited: self.inner.waited.load(Ordering::Relaxed),
        }
    }

    /// Sends `request` (origin-form URI, its `Host` header set by the
    /// caller) on a connection to `key`: an idle one when there is one,
    /// else one `connect` opens once the bound leaves room. Returns the
    /// answer with its body unread, and the connection to
    /// [`release`](Lent::release) after reading it. The caller bounds the
    /// whole call with its own deadline.
    pub async fn send<C, Fut, Io>(
        &self,
        key: &PoolKey,
        connect: C,
        request: Request<Bytes>,
    ) -> Result<(Response<Incoming>, Lent), PoolError>
    where
        C: Fn() -> Fut,
        Fut: Future<Output = Result<Io, String>>,
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (parts, body) = request.into_parts();
        let build = || {
            let mut r = Request::new(Full::new(body.clone()));
            *r.method_mut() = parts.method.clone();
            *r.uri_mut() = parts.uri.clone();
            *r.version_mut() = parts.version;
            *r.headers_mut() = parts.headers.clone();
            r
        };
        let replay = replayable(&parts);
        // A request that must not be sent twice takes only a connection
        // used moments ago.
        let max_idle = if replay {
            self.inner.config.idle_timeout
        } else {
            NON_REPLAYABLE_MAX_IDLE.min(self.inner.config.idle_timeout)
        };
        // Once a request may have reached a server, it goes on a new
        // connection, never on another kept-alive one: sent at most twice.
        let mut sent = false;
        loop {
            if !sent && let Some(mut conn) = self.inner.check_out(key, max_idle) {
                // Ready at once unless its driver is still finishing the
                // last answer; an error means the server closed it.
                if !conn.sender.is_ready() && conn.sender.ready().await.is_err() {
                    continue;
                }
                match conn.sender.try_send_request(build()).await {
                    Ok(response) => {
                        self.inner.reused.fetch_add(1, Ordering::Relaxed);
                        self.count("kailash_outbound_requests_total", "reused");
                        return Ok((response, self.lend(key, conn, true)));
                    }
                    Err(mut e) => {
                        let unsent = e.take_message().is_some();
                        if unsent || replay {
                            sent |= !unsent;
                            self.inner.retried.fetch_add(1, Ordering::Relaxed);
                            if self.inner.config.metrics {
                                metrics::counter!("kailash_outbound_retries_total").increment(1);
                            }
                            continue;
                        }
                        return Err(PoolError::Http(e.into_error().to_string()));
                    }
                }
            }
            let slot = match self.slot(key, (!sent).then_some(max_idle)).await? {
                Some(slot) => slot,
                // A connection to this key became idle meanwhile.
                None => continue,
            };
            let mut conn = self.open(slot, &connect).await?;
            self.count("kailash_outbound_requests_total", "new");
            return match conn.sender.send_request(build()).await {
                Ok(response) => Ok((response, self.lend(key, conn, false))),
                Err(e) => Err(PoolError::Http(e.to_string())),
            };
        }
    }

    fn count(&self, name: &'static str, connection: &'static str) {
        if self.inner.config.metrics {
            metrics::counter!(name, "connection" => connection).increment(1);
        }
    }

    /// Room for one more connection: a free slot (of the workload share
    /// too, for a workload key), or the slot of the longest-idle
    /// connection that frees one (closed for it); else waits for either.
    /// `None` when a connection to `key` idle at most `take_idle` is there
    /// to be taken instead.
    async fn slot(
        &self,
        key: &PoolKey,
        take_idle: Option<Duration>,
    ) -> Result<Option<Slot>, PoolError> {
        let inner = &self.inner;
        let mut counted = false;
        let mut workload = None;
        loop {
            // A connection to this key went idle: it, rather than another
            // key's closed for a new one.
            if take_idle.is_some_and(|max_idle| inner.has_idle(key, max_idle)) {
                return Ok(None);
            }
            if key.workload && workload.is_none() {
                match Arc::clone(&inner.workload_permits).try_acquire_owned() {
                    Ok(p) => workload = Some(p),
                    Err(_) if inner.evict_oldest(true) => continue,
                    Err(_) => {}
                }
            }
            if workload.is_some() || !key.workload {
                if let Ok(all) = Arc::clone(&inner.permits).try_acquire_owned() {
                    return Ok(Some(Slot {
                        _all: all,
                        _workload: workload,
                    }));
                }
                if inner.evict_oldest(false) {
                    continue;
                }
            }
            // Registered before the checks below, so a release between
            // them and the wait is not missed.
            let released = inner.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if take_idle.is_some_and(|max_idle| inner.has_idle(key, max_idle)) {
                return Ok(None);
            }
            if inner.evict_oldest(key.workload && workload.is_none()) {
                continue;
            }
            if !counted {
                counted = true;
                inner.waited.fetch_add(1, Ordering::Relaxed);
                if inner.config.metrics {
                    metrics::counter!("kailash_outbound_pool_waits_total").increment(1);
                }
            }
            // A closed connection or an idle one: look again.
            released.await;
        }
    }

    fn lend(&self, key: &PoolKey, conn: Conn, reused: bool) -> Lent {
        Lent {
            conn: Some(conn),
            key: key.clone(),
            pool: Arc::downgrade(&self.inner),
            reused,
        }
    }

    async fn open<C, Fut, Io>(&self, slot: Slot, connect: &C) -> Result<Conn, PoolError>
    where
        C: Fn() -> Fut,
        Fut: Future<Output = Result<Io, String>>,
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = connect().await.map_err(PoolError::Connect)?;
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(MAX_HEAD_BYTES)
            .handshake::<_, Full<Bytes>>(TokioIo::new(io))
            .await
            .map_err(|e| PoolError::Http(e.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        self.inner.opened.fetch_add(1, Ordering::Relaxed);
        let conn = Conn {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            sender,
            driver,
            slot: Some(slot),
            pool: Arc::downgrade(&self.inner),
        };
        self.inner.publish();
        Ok(conn)
    }
}

impl Inner {
    /// Connections open, busy and idle.
    fn open(&self) -> usize {
        self.config.max_connections - self.permits.available_permits()
    }

    /// Sets the gauges from this pool's counts.
    fn publish(&self) {
        if !self.config.metrics {
            return;
        }
        let idle = self.idle_count.load(Ordering::Relaxed);
        metrics::gauge!("kailash_outbound_connections", "state" => "open").set(as_f64(self.open()));
        metrics::gauge!("kailash_outbound_connections", "state" => "idle").set(as_f64(idle));
        metrics::gauge!("kailash_outbound_pool_max").set(as_f64(self.config.max_connections));
    }

    /// The newest idle connection to `key` that has been idle at most
    /// `max_idle` and is still open, closing the closed and expired ones
    /// met on the way (older ones stay for requests that may reuse them).
    fn check_out(&self, key: &PoolKey, max_idle: Duration) -> Option<Conn> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        let mut found = None;
        // Newest first: the most recently used connection is the likeliest
        // to be still open at the server.
        while let Some(entry) = list.last() {
            let age = entry.since.elapsed();
            if age > max_idle && age < self.config.idle_timeout && !entry.conn.sender.is_closed() {
                break; // too old for this request, fine for others
            }
            let Some(entry) = list.pop() else { break };
            self.idle_count.fetch_sub(1, Ordering::Relaxed);
            self.forget(key, entry.conn.id);
            if age <= max_idle && !entry.conn.sender.is_closed() {
                found = Some(entry.conn);
                break;
            }
        }
        if list.is_empty() {
            idle.remove(key);
        }
        drop(idle);
        self.publish();
        found
    }

    fn forget(&self, key: &PoolKey, id: u64) {
        if let Ok(mut order) = self.order.lock()
            && let Some(i) = order.iter().position(|(k, i)| *i == id && k == key)
        {
            order.remove(i);
        }
    }

    /// Closes the longest-idle connection (a workload one with
    /// `workload_only`); whether there was one.
    fn evict_oldest(&self, workload_only: bool) -> bool {
        loop {
            let next = self.order.lock().ok().and_then(|mut o| {
                let i = o.iter().position(|(k, _)| k.workload || !workload_only)?;
                o.remove(i)
            });
            let Some((key, id)) = next else {
                return false;
            };
            if self.remove(&key, id, None).is_some() {
                return true;
            }
        }
    }

    /// Whether an open connection to `key`, idle at most `max_idle`, is
    /// there to be taken.
    fn has_idle(&self, key: &PoolKey, max_idle: Duration) -> bool {
        self.idle.lock().is_ok_and(|m| {
            m.get(key).is_some_and(|list| {
                list.iter()
                    .any(|e| e.since.elapsed() <= max_idle && !e.conn.sender.is_closed())
            })
        })
    }

    /// Takes the idle connection `id` out (only when idle for at least
    /// `older_than`, if given).
    fn remove(&self, key: &PoolKey, id: u64, older_than: Option<Duration>) -> Option<Conn> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        let i = list
            .iter()
            .position(|e| e.conn.id == id && older_than.is_none_or(|t| e.since.elapsed() >= t))?;
        let entry = list.remove(i);
        self.idle_count.fetch_sub(1, Ordering::Relaxed);
        if list.is_empty() {
            idle.remove(key);
        }
        Some(entry.conn)
    }

    fn check_in(this: &Arc<Self>, key: PoolKey, conn: Conn) {
        let timeout = this.config.idle_timeout;
        if timeout.is_zero() || conn.sender.is_closed() {
            return;
        }
        let id = conn.id;
        if let (Ok(mut idle), Ok(mut order)) = (this.idle.lock(), this.order.lock()) {
            idle.entry(key.clone()).or_default().push(Idle {
                conn,
                since: Instant::now(),
            });
            order.push_back((key, id));
            this.idle_count.fetch_add(1, Ordering::Relaxed);
        } else {
            return;
        }
        this.released.notify_waiters();
        this.publish();
        Self::reap_in_background(this);
    }

    /// One task per pool closes connections idle for the timeout, and
    /// those the server closed, while any are idle.
    fn reap_in_background(this: &Arc<Self>) {
        if this.reaping.swap(true, Ordering::AcqRel) {
            return;
        }
        let tick =
            (this.config.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let pool = Arc::downgrade(this);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                let Some(pool) = pool.upgrade() else { return };
                pool.reap();
                if pool.idle_count.load(Ordering::Relaxed) == 0 {
                    pool.reaping.store(false, Ordering::Release);
                    // A check-in between the count and the store would
                    // have seen `reaping` set: look once more.
                    if pool.idle_count.load(Ordering::Relaxed) == 0
                        || pool.reaping.swap(true, Ordering::AcqRel)
                    {
                        return;
                    }
                }
            }
        });
    }

    /// Closes the expired and the closed idle connections.
    fn reap(&self) {
        let timeout = self.config.idle_timeout;
        let gone: Vec<Conn> = {
            let Ok(mut idle) = self.idle.lock() else {
                return;
            };
            let mut gone = Vec::new();
            idle.retain(|key, list| {
                let mut i = 0;
                while i < list.len() {
                    let e = &list[i];
                    if e.since.elapsed() >= timeout || e.conn.sender.is_closed() {
                        let e = list.remove(i);
                        self.idle_count.fetch_sub(1, Ordering::Relaxed);
                        self.forget(key, e.conn.id);
                        gone.push(e.conn);
                    } else {
                        i += 1;
                    }
                }
                !list.is_empty()
            });
            gone
        };
        // Closed outside the lock (their drop publishes and wakes waiters).
        drop(gone);
        self.publish();
    }
}

/// The partition of connections verified against a set of TLS trust
/// anchors: the same anchors give the same partition (so callers trusting
/// exactly the same roots share connections), any difference another.
/// `anchors` are each anchor's DER parts (subject, public key, name
/// constraints).
pub fn tls_partition<'a>(anchors: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in anchors {
        digest.update(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
        digest.update(part);
    }
    let hash = digest.finish();
    format!(
        "tls:{}",
        data_encoding::HEXLOWER.encode(hash.as_ref().get(..16).unwrap_or_default())
    )
}

/// One of two connection types (plain TCP or TLS over it), as one type
/// for [`ConnectionPool::send`]'s `connect` (tokio-util's, re-exported).
pub use tokio_util::either::Either;

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A keep-alive HTTP/1.1 server: each request answered `ok` after
    /// `delay`; a connection closed after `per_connection` answers.
    /// Returns its address, the connections accepted and the most open
    /// at once.
    async fn server(
        delay: Duration,
        per_connection: usize,
    ) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        server_with(delay, per_connection, false).await
    }

    /// As [`server`]; with `swallow`, the request after the last answer
    /// is read and the connection closed without answering it (the
    /// server closed a kept-alive connection just as it was reused).
    async fn server_with(
        delay: Duration,
        per_connection: usize,
        swallow: bool,
    ) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (a, p) = (accepted.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                a.fetch_add(1, Ordering::SeqCst);
                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                let open = open.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut served = 0;
                    let mut pending = Vec::new();
                    'conn: while served < per_connection || swallow {
                        while !pending.windows(4).any(|w| w == b"\r\n\r\n") {
                            match socket.read(&mut buf).await {
                                Ok(0) | Err(_) => break 'conn,
                                Ok(n) => pending.extend_from_slice(&buf[..n]),
                            }
                        }
                        let end = pending.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                        pending.drain(..end + 4);
                        if served == per_connection {
                            break; // swallowed
                        }
                        tokio::time::sleep(delay).await;
                        if socket
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await
                            .is_err()
                        {
                            break;
                        }
                        served += 1;
                    }
                    drop(socket);
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (port, accepted, peak)
    }

    /// Connects to the test server on `port` (the pool's `connect`).
    async fn dial(port: u16) -> Result<TcpStream, String> {
        TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())
    }

    async fn get(pool: &ConnectionPool, port: u16, method: Method) -> Result<Bytes, PoolError> {
        let key = PoolKey::new(false, "127.0.0.1", port);
        let request = Request::builder()
            .method(method)
            .uri("/")
            .header("host", "127.0.0.1")
            .body(Bytes::new())
            .unwrap();
        let connect = || dial(port);
        let (response, lent) = pool.send(&key, connect, request).await?;
        let body = response.into_body().collect().await.unwrap().to_bytes();
        lent.release();
        Ok(body)
    }

    #[test]
    fn tls_partitions_follow_the_anchors() {
        let a: [&[u8]; 2] = [b"subject-a", b"key-a"];
        let b: [&[u8]; 2] = [b"subject-a", b"key-b"];
        assert_eq!(tls_partition(a), tls_partition(a));
        assert_ne!(tls_partition(a), tls_partition(b));
        // Part boundaries count: "ab"+"c" is not "a"+"bc".
        assert_ne!(
            tls_partition([&b"ab"[..], b"c"]),
            tls_partition([&b"a"[..], b"bc"])
        );
    }

    #[tokio::test]
    async fn sequential_requests_share_one_connection() {
        let (port, accepted, _) = server(Duration::ZERO, usize::MAX).await;
        let pool = ConnectionPool::default();
        for _ in 0..10 {
            assert_eq!(&get(&pool, port, Method::GET).await.unwrap()[..], b"ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        let stats = pool.stats();
        assert_eq!((stats.opened, stats.reused, stats.idle), (1, 9, 1));
        assert_eq!(stats.waited, 0);
    }

    #[tokio::test]
    async fn the_bound_holds_under_concurrency() {
        let (port, accepted, peak) = server(Duration::from_millis(30), usize::MAX).await;
        let pool = ConnectionPool::new(PoolConfig::default().max_connections(3));
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { get(&pool, port, Method::GET).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(&t.await.unwrap().unwrap()[..], b"ok");
        }
        // The server never saw more than three at once.
        assert!(peak.load(Ordering::SeqCst) <= 3, "{peak:?}");
        assert_eq!(peak.load(Ordering::SeqCst), accepted.load(Ordering::SeqCst));
        assert!(pool.stats().waited >= 1);
    }

    #[tokio::test]
    async fn a_waiter_takes_the_released_connection() {
        let (port, accepted, _) = server(Duration::from_millis(20), usize::MAX).await;
        let pool = ConnectionPool::new(PoolConfig::default().max_connections(1));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { get(&pool, port, Method::GET).await })
            })
            .collect();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("no waiter is left behind")
                .unwrap()
                .unwrap();
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        let stats = pool.stats();
        assert_eq!(stats.reused, 3);
        assert!(stats.waited >= 1, "{stats:?}");
    }

    #[tokio::test]
    async fn tenants_workload_never_takes_the_gateways_reserve() {
        let (port, _, _) = server(Duration::from_millis(400), usize::MAX).await;
        // 4 slots: 3 for workload keys, 1 kept for the gateway's calls.
        let pool = ConnectionPool::new(PoolConfig::default().max_connections(4));
        assert_eq!(pool.config().workload_max(), 3);
        let call = |pool: ConnectionPool, workload: bool| async move {
            let mut key = PoolKey::new(false, "127.0.0.1", port).partition("p");
            if workload {
                key = key.workload();
            }
            let request = Request::get("/")
                .header("host", "x")
                .body(Bytes::new())
                .unwrap();
            let connect = || dial(port);
            let (response, lent) = pool.send(&key, connect, request).await?;
            response.into_body().collect().await.unwrap();
            lent.release();
            Ok::<_, PoolError>(())
        };
        // Four slow workload calls: three run, the fourth waits.
        let workload: Vec<_> = (0..4)
            .map(|_| tokio::spawn(call(pool.clone(), true)))
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(pool.stats().open, 3);
        // The gateway's own call gets the kept slot at once.
        let started = Instant::now();
        call(pool.clone(), false).await.unwrap();
        // 400 ms of its own answer; without the reserve it would first
        // wait 400 ms for a workload call to end.
        assert!(
            started.elapsed() < Duration::from_millis(700),
            "{:?}",
            started.elapsed()
        );
        for t in workload {
            t.await.unwrap().unwrap();
        }
        assert!(pool.stats().waited >= 1);
        // A pool of one has no reserve: workload may use it.
        assert_eq!(PoolConfig::default().max_connections(1).workload_max(), 1);
        assert_eq!(
            PoolConfig::default().max_connections(100).workload_max(),
            75
        );
    }

    #[tokio::test]
    async fn reuse_restarts_the_idle_clock() {
        let (port, accepted, _) = server(Duration::ZERO, usize::MAX).await;
        let pool =
            ConnectionPool::new(PoolConfig::default().idle_timeout(Duration::from_millis(300)));
        get(&pool, port, Method::GET).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        get(&pool, port, Method::GET).await.unwrap();
        // 400 ms after the first use, 200 ms after the second: still kept.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(pool.stats().idle, 1);
        get(&pool, port, Method::GET).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(pool.stats().idle, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn back_to_back_calls_on_several_threads_share_one_connection() {
        let (port, accepted, _) = server(Duration::ZERO, usize::MAX).await;
        let pool = ConnectionPool::default();
        for _ in 0..300 {
            get(&pool, port, Method::GET).await.unwrap();
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_post_reuses_only_a_connection_used_moments_ago() {
        let (port, accepted, _) = server(Duration::ZERO, usize::MAX).await;
        let pool = ConnectionPool::default();
        get(&pool, port, Method::GET).await.unwrap();
        get(&pool, port, Method::POST).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        tokio::time::sleep(NON_REPLAYABLE_MAX_IDLE + Duration::from_millis(200)).await;
        // Idle too long for a POST: a new connection; the old one stays
        // for a GET.
        get(&pool, port, Method::POST).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(pool.stats().idle, 2);
        get(&pool, port, Method::GET).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_full_pool_closes_another_hosts_idle_connection() {
        let (a, _, _) = server(Duration::ZERO, usize::MAX).await;
        let (b, _, _) = server(Duration::ZERO, usize::MAX).await;
        let pool = ConnectionPool::new(PoolConfig::default().max_connections(1));
        get(&pool, a, Method::GET).await.unwrap();
        assert_eq!(pool.stats().idle, 1);
        // No waiting for `a`'s idle connection: it is closed for `b`.
        tokio::time::timeout(Duration::from_secs(5), get(&pool, b, Method::GET))
            .await
            .expect("evicted, not waited")
            .unwrap();
        let stats = pool.stats();
        assert_eq!((stats.open, stats.idle, stats.opened), (1, 1, 2));
    }

    #[tokio::test]
    async fn partitions_never_share() {
        let (port, accepted, _) = server(Duration::ZERO, usize::MAX).await;
        let pool = ConnectionPool::default();
        for partition in ["a", "b", "a", "b"] {
            let key = PoolKey::new(false, "127.0.0.1", port).partition(partition);
            let request = Request::get("/")
                .header("host", "x")
                .body(Bytes::new())
                .unwrap();
            let (response, lent) = pool.send(&key, || dial(port), request).await.unwrap();
            response.into_body().collect().await.unwrap();
            lent.release();
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced() {
        // One answer per connection, without `connection: close`: the
        // client only learns at its next use.
        let (port, accepted, _) = server(Duration::ZERO, 1).await;
        let pool = ConnectionPool::default();
        for _ in 0..4 {
            assert_eq!(&get(&pool, port, Method::GET).await.unwrap()[..], b"ok");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
        // A POST is never sent twice, but a closed connection is noticed
        // before it is written to, so it too gets a fresh one.
        assert_eq!(&get(&pool, port, Method::POST).await.unwrap()[..], b"ok");
    }

    #[tokio::test]
    async fn a_reused_connection_dropped_mid_request_retries_only_what_is_safe() {
        // Each connection answers one request and swallows the next.
        let (port, accepted, _) = server_with(Duration::ZERO, 1, true).await;
        let pool = ConnectionPool::default();
        get(&pool, port, Method::GET).await.unwrap();
        // The GET written to the kept-alive connection gets no answer: it
        // is sent again on a new connection.
        assert_eq!(&get(&pool, port, Method::GET).await.unwrap()[..], b"ok");
        assert_eq!(pool.stats().retried, 1);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // A POST that may have reached the server is not repeated.
        let e = get(&pool, port, Method::POST).await.unwrap_err();
        assert!(matches!(e, PoolError::Http(_)), "{e:?}");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(pool.stats().retried, 1);
        // One with an idempotency key is.
        get(&pool, port, Method::GET).await.unwrap();
        let key = PoolKey::new(false, "127.0.0.1", port);
        let request = Request::post("/")
            .header("host", "x")
            .header("idempotency-key", "day-1")
            .body(Bytes::from_static(b"{}"))
            .unwrap();
        let connect = || dial(port);
        let (response, _) = pool.send(&key, connect, request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(pool.stats().retried, 2);
    }

    #[tokio::test]
    async fn idle_connections_close_after_the_timeout() {
        let (port, accepted, _) = server(Duration::ZERO, usize::MAX).await;
        let pool =
            ConnectionPool::new(PoolConfig::default().idle_timeout(Duration::from_millis(100)));
        get(&pool, port, Method::GET).await.unwrap();
        assert_eq!(pool.stats().open, 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stats = pool.stats();
        assert_eq!((stats.open, stats.idle), (0, 0));
        get(&pool, port, Method::GET).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unreleased_connection_is_closed_and_frees_its_slot() {
        let (port, accepted, _) = server(Duration::ZERO, usize::MAX).await;
        let pool = ConnectionPool::new(PoolConfig::default().max_connections(1));
        let key = PoolKey::new(false, "127.0.0.1", port);
        let connect = || dial(port);
        let request = || {
            Request::get("/")
                .header("host", "x")
                .body(Bytes::new())
                .unwrap()
        };
        let (_, lent) = pool.send(&key, connect, request()).await.unwrap();
        drop(lent); // body unread: the connection cannot be reused
        assert_eq!(pool.stats().open, 0);
        let (response, lent) = pool.send(&key, connect, request()).await.unwrap();
        response.into_body().collect().await.unwrap();
        lent.release();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn zero_idle_timeout_keeps_nothing() {
        let (port, accepted, _) = server(Duration::ZERO, usize::MAX).await;
        let pool = ConnectionPool::new(PoolConfig::default().idle_timeout(Duration::ZERO));
        get(&pool, port, Method::GET).await.unwrap();
        get(&pool, port, Method::GET).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(pool.stats().open, 0);
    }

    #[tokio::test]
    async fn a_failed_connect_frees_its_slot() {
        let pool = ConnectionPool::new(PoolConfig::default().max_connections(1));
        let key = PoolKey::new(false, "127.0.0.1", 9);
        for _ in 0..3 {
            let e = pool
                .send(
                    &key,
                    || async { Err::<TcpStream, _>("connect: refused".to_owned()) },
                    Request::get("/").body(Bytes::new()).unwrap(),
                )
                .await
                .unwrap_err();
            assert_eq!(e, PoolError::Connect("connect: refused".into()));
        }
        assert_eq!(pool.stats().open, 0);
    }
}
