//! The command connection: lazy, self-healing and failing fast.
//!
//! One [`ConnectionManager`] per [`RedisState`](crate::RedisState), shared
//! by its clones. It connects on first use, makes one attempt per
//! (re)connect so operations fail with `Unavailable` quickly while Redis is
//! down, and the next operation starts the next attempt. Every round trip is
//! bounded by the operation timeout, and the first failure and the recovery
//! are each logged once.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kailash_core::state::StateError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Value};

use crate::error;
use crate::options::RedisOptions;

/// The connection every non-pub/sub operation goes through.
pub(crate) struct Connection {
    manager: ConnectionManager,
    op_timeout: Duration,
    /// Whether the last operation reached Redis; flips produce one log line each.
    reachable: AtomicBool,
}

impl Connection {
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
            manager,
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

    /// Runs one round trip under the operation timeout, maps its error and
    /// logs reachability changes.
    ///
    /// A connection refusal means the command never left this process, so
    /// it is retried once: the refusal may come from a reconnect attempt that
    /// failed while Redis was restarting, and the retry uses the fresh
    /// attempt the connection manager has started meanwhile.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StateError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let attempt = async {
            match op(self.manager.clone()).await {
                Err(e) if e.is_connection_refusal() => op(self.manager.clone()).await,
                other => other,
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
