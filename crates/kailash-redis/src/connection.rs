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
//!   after a failover or a resharding by itself. It is opened by
//!   [`RedisState::connect`](crate::RedisState::connect) (routing needs the
//!   slot map) and, should that ever fail later, reopened by the next
//!   operation.
//!
//! Every round trip is bounded by the operation timeout, and the first
//! failure and the recovery are each logged once.

use std::future::Future;
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
    /// A Redis Cluster.
    Cluster(Box<Cluster>),
}

/// The cluster connection, reopened by the next operation should it fail.
struct Cluster {
    client: ClusterClient,
    /// The open connection (cheap to clone: a handle on its task).
    open: std::sync::Mutex<Option<ClusterConnection>>,
    /// Held while opening, so concurrent operations wait for one attempt.
    opening: tokio::sync::Mutex<()>,
}

impl Cluster {
    fn current(&self) -> Option<ClusterConnection> {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn get(&self) -> Result<ClusterConnection, RedisError> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let _opening = self.opening.lock().await;
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let conn = self.client.get_async_connection().await?;
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
        Ok(conn)
    }
}

/// One round trip's connection: either kind, as one
/// [`ConnectionLike`](redis::aio::ConnectionLike).
#[derive(Clone)]
pub(crate) enum Conn {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
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
        let cluster = Cluster {
            client,
            open: std::sync::Mutex::new(None),
            opening: tokio::sync::Mutex::new(()),
        };
        match tokio::time::timeout(options.operation_timeout(), cluster.get()).await {
            Ok(Ok(_)) => {}
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
        }
        Ok(Self {
            route: Route::Cluster(Box::new(cluster)),
            op_timeout: options.operation_timeout(),
            reachable: AtomicBool::new(true),
        })
    }

    /// A connection to `client` that is opened by the first operation.
    pub(crate) fn lazy(client: redis::Client, options: &RedisOptions) -> Result<Self, StateError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connection_timeout))
            .set_response_timeout(Some(options.response_timeout))
            // One attempt per (re)connect: operations must fail fast while Redis
            // is down; the next operation starts the next attempt.
            .set_number_of_retries(0);
        let manager =
            ConnectionManager::new_lazy_with_config(client, config).map_err(|e| error::map(&e))?;
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
                Route::Cluster(cluster) => op(Conn::Cluster(cluster.get().await?)).await,
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
            Err(_) => Err(error::timed_out()),
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
