//! The command connection: lazy, self-healing and failing fast.
//!
//! One per [`RedisState`](crate::RedisState), shared by its clones:
//!
//! * one server: a [`ConnectionManager`]. It connects on first use, makes
//!   one attempt per (re)connect so operations fail with `Unavailable`
//!   quickly while Redis is down, and the next operation starts the next
//!   attempt;
//! * Redis Cluster: the `redis` crate's async cluster connection, which
//!   keeps the slot map, follows `MOVED`/`ASK` and refreshes the topology
//!   after a failover or a resharding by itself, reconnecting to nodes it
//!   lost. It is opened by [`RedisState::connect`](crate::RedisState::connect):
//!   routing needs the slot map;
//! * Redis Sentinel: a [`ConnectionManager`] to the primary the sentinels
//!   name, dropped when it fails or turns out to be a replica, so the next
//!   operation asks the sentinels again.
//!
//! Every round trip is bounded by the operation timeout, and the first
//! failure and the recovery are each logged once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kailash_core::state::StateError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, RedisError, RedisFuture, Value};

use crate::error;
use crate::options::RedisOptions;

/// The connection every non-pub/sub operation goes through.
pub(crate) struct Connection {
    route: Route,
    op_timeout: Duration,
    /// Whether the last operation reached Redis; flips produce one log line each.
    reachable: AtomicBool,
}

/// Where commands go.
enum Route {
    /// One server (a primary).
    Node(ConnectionManager),
    /// A Redis Cluster: the client keeps its own connections to every
    /// node and reconnects them itself.
    Cluster(ClusterConnection),
    /// The primary Redis Sentinel names.
    Sentinel(Arc<Sentinel>),
}

/// The primary a set of sentinels names, asked again after a failure.
///
/// The connection to the primary is a [`ConnectionManager`] like one
/// server's. An operation that finds it unreachable, or no longer a
/// primary (`READONLY` after a failover demoted it), drops it, and the next
/// operation asks the sentinels which server is the primary now.
pub(crate) struct Sentinel {
    client: tokio::sync::Mutex<redis::sentinel::SentinelClient>,
    /// The name the sentinels monitor the primary under.
    master: String,
    config: ConnectionManagerConfig,
    /// The current primary's connection and its generation.
    current: std::sync::Mutex<Option<(u64, ConnectionManager)>>,
    generation: std::sync::atomic::AtomicU64,
}

impl Sentinel {
    pub(crate) fn new(
        client: redis::sentinel::SentinelClient,
        master: String,
        options: &RedisOptions,
    ) -> Self {
        Self {
            client: tokio::sync::Mutex::new(client),
            master,
            config: manager_config(options),
            current: std::sync::Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn current(&self) -> Option<(u64, ConnectionManager)> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The primary's connection: the current one, or one to the server the
    /// sentinels name now.
    async fn get(&self) -> Result<(u64, ConnectionManager), RedisError> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        // The sentinel client's lock: concurrent operations wait for one
        // answer instead of each asking the sentinels.
        let mut sentinels = self.client.lock().await;
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let client = sentinels.async_get_client().await?;
        drop(sentinels);
        self.install(client)
    }

    /// Makes a connection to `client` (the primary just named) current.
    fn install(&self, client: redis::Client) -> Result<(u64, ConnectionManager), RedisError> {
        let manager = ConnectionManager::new_lazy_with_config(client, self.config.clone())?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((generation, manager.clone()));
        Ok((generation, manager))
    }

    /// A client for the server the sentinels name as the primary now (they
    /// check its role before answering).
    pub(crate) async fn primary_client(&self) -> Result<redis::Client, RedisError> {
        self.client.lock().await.async_get_client().await
    }

    /// Whether a sentinel that answers monitors a master of the URL's name
    /// (`false` also when none answers: the caller has an error then).
    async fn knows_master(&self) -> bool {
        let mut client = self.client.lock().await;
        let Ok(sentinel) = client.async_get_sentinel_client().await else {
            return false;
        };
        let Ok(mut conn) = sentinel.get_multiplexed_async_connection().await else {
            return false;
        };
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("GET-MASTER-ADDR-BY-NAME").arg(&self.master);
        matches!(
            cmd.query_async::<Value>(&mut conn).await,
            Ok(Value::Array(addr)) if !addr.is_empty()
        )
    }

    /// Forgets the connection of `generation` (unless a newer one replaced
    /// it already): the next operation asks the sentinels again.
    fn forget(&self, generation: u64) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            *current = None;
        }
    }
}

/// One round trip's connection: either kind, as one
/// [`ConnectionLike`](redis::aio::ConnectionLike).
#[derive(Clone)]
pub(crate) enum Conn {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

/// The settings of every [`ConnectionManager`]: the configured timeouts,
/// and one attempt per (re)connect — operations must fail fast while Redis
/// is down; the next operation starts the next attempt.
fn manager_config(options: &RedisOptions) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(options.connection_timeout))
        .set_response_timeout(Some(options.response_timeout))
        .set_number_of_retries(0)
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Node(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Node(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl Connection {
    /// A connection to the cluster `client` describes, opened now: routing
    /// needs the slot map, so a cluster none of whose seed nodes answers
    /// fails here with `Unavailable`.
    pub(crate) async fn cluster(
        client: ClusterClient,
        options: &RedisOptions,
    ) -> Result<Self, StateError> {
        let conn =
            match tokio::time::timeout(options.operation_timeout(), client.get_async_connection())
                .await
            {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    return Err(StateError::Unavailable(format!(
                        "redis cluster: no seed node gave the slot map ({})",
                        error::map(&e)
                    )));
                }
                Err(_) => {
                    return Err(StateError::Unavailable(
                        "redis cluster: no seed node gave the slot map in time".to_owned(),
                    ));
                }
            };
        Ok(Self {
            route: Route::Cluster(conn),
            op_timeout: options.operation_timeout(),
            reachable: AtomicBool::new(true),
        })
    }

    /// A connection to the primary `sentinel` names. Asks the sentinels
    /// now: a master name none of them knows is a configuration error
    /// (`InvalidArgument`), and sentinels none of which answers fail the
    /// start with `Unavailable`.
    pub(crate) async fn sentinel(
        sentinel: Sentinel,
        options: &RedisOptions,
    ) -> Result<Self, StateError> {
        match tokio::time::timeout(options.operation_timeout(), sentinel.primary_client()).await {
            // The first operation uses the primary just named.
            Ok(Ok(client)) => {
                sentinel.install(client).map_err(|e| error::map(&e))?;
            }
            Ok(Err(e))
                if e.kind() == redis::ErrorKind::MasterNameNotFoundBySentinel
                    && !sentinel.knows_master().await =>
            {
                return Err(StateError::InvalidArgument(
                    "redis sentinel: no sentinel monitors a master of the URL's name",
                ));
            }
            Ok(Err(e)) => {
                return Err(StateError::Unavailable(format!(
                    "redis sentinel: no sentinel named a reachable primary ({})",
                    error::map(&e)
                )));
            }
            Err(_) => {
                return Err(StateError::Unavailable(
                    "redis sentinel: no sentinel named a primary in time".to_owned(),
                ));
            }
        }
        Ok(Self {
            route: Route::Sentinel(Arc::new(sentinel)),
            op_timeout: options.operation_timeout(),
            reachable: AtomicBool::new(true),
        })
    }

    /// The Sentinel resolver, for the pub/sub hub to follow the primary.
    pub(crate) fn sentinel_resolver(&self) -> Option<Arc<Sentinel>> {
        match &self.route {
            Route::Sentinel(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// A connection to `client` that is opened by the first operation.
    pub(crate) fn lazy(client: redis::Client, options: &RedisOptions) -> Result<Self, StateError> {
        let manager = ConnectionManager::new_lazy_with_config(client, manager_config(options))
            .map_err(|e| error::map(&e))?;
        Ok(Self {
            route: Route::Node(manager),
            op_timeout: options.operation_timeout(),
            reachable: AtomicBool::new(true),
        })
    }

    /// The longest any one operation may take.
    pub(crate) fn op_timeout(&self) -> Duration {
        self.op_timeout
    }

    /// Invokes a script with one key and the given arguments.
    pub(crate) async fn script(
        &self,
        script: &'static redis::Script,
        key: &str,
        args: &[&[u8]],
    ) -> Result<Value, StateError> {
        self.run(|mut conn| {
            let mut invocation = script.key(key);
            for arg in args {
                invocation.arg(*arg);
            }
            async move { invocation.invoke_async::<Value>(&mut conn).await }
        })
        .await
    }

    /// Invokes a prepared script invocation (several keys).
    pub(crate) async fn invoke(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<Value, StateError> {
        self.run(|mut conn| async move { invocation.invoke_async::<Value>(&mut conn).await })
            .await
    }

    /// Runs one plain command.
    pub(crate) async fn command<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, StateError> {
        self.run(|mut conn| async move { cmd.query_async::<T>(&mut conn).await })
            .await
    }

    /// Runs one plain command on the primary that serves `slot` (cluster),
    /// or on the one server.
    pub(crate) async fn command_at_slot<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        slot: u16,
    ) -> Result<T, StateError> {
        self.run(|conn| async move {
            match conn {
                Conn::Cluster(mut c) => {
                    let route = redis::cluster_routing::Route::new(
                        slot,
                        redis::cluster_routing::SlotAddr::Master,
                    );
                    let value = c
                        .route_command(
                            cmd.clone(),
                            RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                        )
                        .await?;
                    redis::from_redis_value(value).map_err(RedisError::from)
                }
                mut node @ Conn::Node(_) => cmd.query_async::<T>(&mut node).await,
            }
        })
        .await
    }

    /// Runs one round trip under the operation timeout, maps its error and
    /// logs reachability changes.
    ///
    /// A connection refusal means the command never left this process, so
    /// it is retried once: the refusal may come from a reconnect attempt that
    /// failed while Redis was restarting, and the retry uses the fresh
    /// attempt the connection manager has started meanwhile.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StateError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let attempt = async {
            match &self.route {
                Route::Node(manager) => match op(Conn::Node(manager.clone())).await {
                    Err(e) if e.is_connection_refusal() => op(Conn::Node(manager.clone())).await,
                    other => other,
                },
                // The cluster connection retries by itself (MOVED, ASK,
                // TRYAGAIN, a node that went away), within the timeout below.
                Route::Cluster(conn) => op(Conn::Cluster(conn.clone())).await,
                Route::Sentinel(sentinel) => {
                    let (generation, manager) = sentinel.get().await?;
                    let result = op(Conn::Node(manager)).await;
                    if let Err(e) = &result
                        && error::is_unavailable(e)
                    {
                        sentinel.forget(generation);
                    }
                    result
                }
            }
        };
        let started = std::time::Instant::now();
        // A child span per round trip when traces are exported (DEBUG:
        // free when only logs at INFO listen).
        let span = tracing::debug_span!("redis", otel.kind = "client", db.system = "redis");
        let result = match tokio::time::timeout(
            self.op_timeout,
            tracing::Instrument::instrument(attempt, span),
        )
        .await
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(error::map(&e)),
            Err(_) => {
                // A primary that went silent: ask the sentinels next time.
                if let Route::Sentinel(sentinel) = &self.route
                    && let Some((generation, _)) = sentinel.current()
                {
                    sentinel.forget(generation);
                }
                Err(error::timed_out())
            }
        };
        metrics::histogram!("kailash_state_backend_seconds", "backend" => "redis")
            .record(started.elapsed().as_secs_f64());
        if result.is_err() {
            metrics::counter!("kailash_state_backend_errors_total", "backend" => "redis")
                .increment(1);
        }
        self.note_reachability(&result);
        result
    }

    fn note_reachability<T>(&self, result: &Result<T, StateError>) {
        let reachable = !matches!(result, Err(StateError::Unavailable(_)));
        if self.reachable.load(Ordering::Relaxed) == reachable {
            return;
        }
        if self.reachable.swap(reachable, Ordering::Relaxed) != reachable {
            if reachable {
                tracing::info!(target: "kailash_redis", "Redis is reachable again; state operations recovered");
            } else if let Err(err) = result {
                tracing::warn!(
                    target: "kailash_redis",
                    error = %err,
                    "Redis is unreachable; state operations fail with Unavailable until it is back"
                );
            }
        }
    }
}
