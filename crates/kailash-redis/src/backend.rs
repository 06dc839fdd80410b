//! [`RedisState`]: the five primitives on Redis.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use jiff::Timestamp;
use kailash_core::clock::Clock;
use kailash_core::state::{
    BoundedAdd, BoundedSetStore, CounterStore, CounterValue, KeyValueStore, PubSub, RateDecision,
    RateLimiter, RateQuota, SetInsert, SetMember, SharedState, StateError, StateKey, Subscription,
    WhenFull, validate,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Value};
use tokio::sync::watch;

use crate::error;
use crate::options::RedisOptions;
use crate::pubsub::Hub;
use crate::scripts;

/// Extra time Redis keeps a key past its logical deadline before collecting
/// it, so a clock step on the application host can never make Redis drop a
/// value that is still live by the injected clock.
pub(crate) const GC_GRACE_MS: i64 = 1000;

/// The largest GCRA window (tau) the scripts compute exactly: Lua numbers are
/// doubles, so tau plus a current timestamp must stay below 2^53 µs.
const MAX_TAU_US: i64 = 1 << 52;

/// The key spaces of the five primitives, so one [`StateKey`] used as a value
/// and as a counter never collide (as in the in-memory backend).
#[derive(Clone, Copy)]
enum Space {
    Kv,
    Counter,
    Rate,
    Set,
    Topic,
}

impl Space {
    fn tag(self) -> &'static str {
        match self {
            Space::Kv => "kv:",
            Space::Counter => "ctr:",
            Space::Rate => "rl:",
            Space::Set => "set:",
            Space::Topic => "ps:",
        }
    }
}

/// All five state primitives on one Redis server, shared by every gateway
/// instance that connects with the same key prefix.
///
/// Cheap to clone (the clones share the connections). See the
/// [crate documentation](crate) for the key layout, clock semantics and
/// behaviour while Redis is down.
#[derive(Clone)]
pub struct RedisState {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    clock: Arc<dyn Clock>,
    prefix: String,
    op_timeout: Duration,
    /// Whether the last operation reached Redis; flips produce one log line each.
    reachable: AtomicBool,
    hub: Arc<Hub>,
    /// Dropped with the last clone; stops the pub/sub background task.
    _shutdown: watch::Sender<()>,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("prefix", &self.inner.prefix)
            .field("op_timeout", &self.inner.op_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisState {
    /// Creates the backend for the Redis at `url`
    /// (`redis://[user:pass@]host[:port][/db]` or `redis+unix:///path`; TLS
    /// `rediss://` URLs are not supported by this build and are refused as
    /// invalid).
    ///
    /// Opening the connection is lazy and self-healing: unless
    /// [`RedisOptions::require_connection`] is set, this returns `Ok` even when
    /// Redis is down (after logging a warning), every operation then fails
    /// with [`StateError::Unavailable`] within
    /// `connection_timeout + response_timeout`, and the backend reconnects by
    /// itself once Redis answers again.
    ///
    /// Fails with [`StateError::InvalidArgument`] for a malformed URL, and with
    /// [`StateError::Unavailable`] when `require_connection` is set and Redis
    /// does not answer a `PING`. Must be called inside a Tokio runtime.
    pub async fn connect(
        url: &str,
        clock: Arc<dyn Clock>,
        options: RedisOptions,
    ) -> Result<Self, StateError> {
        let options = options.normalized();
        // The URL may carry a password: never echo it.
        let client = redis::Client::open(url)
            .map_err(|_| StateError::InvalidArgument("invalid Redis URL"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connection_timeout))
            .set_response_timeout(Some(options.response_timeout))
            // One attempt per (re)connect: operations must fail fast while Redis
            // is down; the next operation starts the next attempt.
            .set_number_of_retries(0);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| error::map(&e))?;
        let (shutdown, shutdown_rx) = watch::channel(());
        let hub = Hub::new(&client, &options, shutdown_rx);
        let state = Self {
            inner: Arc::new(Inner {
                conn,
                clock,
                prefix: options.key_prefix.clone(),
                op_timeout: options.operation_timeout(),
                reachable: AtomicBool::new(true),
                hub,
                _shutdown: shutdown,
            }),
        };
        // On failure `run` has already logged that Redis is unreachable.
        if let Err(err) = KeyValueStore::ping(&state).await
            && options.require_connection
        {
            return Err(err);
        }
        Ok(state)
    }

    /// Bundles this backend as a [`SharedState`] (backend name `"redis"`).
    pub fn into_shared(self) -> SharedState {
        let clock = self.inner.clock.clone();
        SharedState::from_backend(Arc::new(self), clock, "redis")
    }

    /// A [`SharedState`] over a clone of this backend.
    pub fn shared(&self) -> SharedState {
        self.clone().into_shared()
    }

    /// The Redis key (or channel) of `key` in `space`: prefix, space tag, key.
    fn key(&self, space: Space, key: &StateKey) -> String {
        let (prefix, tag, key) = (&self.inner.prefix, space.tag(), key.as_str());
        let mut s = String::with_capacity(prefix.len() + tag.len() + key.len());
        s.push_str(prefix);
        s.push_str(tag);
        s.push_str(key);
        s
    }

    fn now_ms(&self) -> i64 {
        self.inner.clock.now_millis()
    }

    fn conn(&self) -> ConnectionManager {
        self.inner.conn.clone()
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
            match op(self.conn()).await {
                Err(e) if e.is_connection_refusal() => op(self.conn()).await,
                other => other,
            }
        };
        let result = match tokio::time::timeout(self.inner.op_timeout, attempt).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(error::map(&e)),
            Err(_) => Err(error::timed_out()),
        };
        self.note_reachability(&result);
        result
    }

    fn note_reachability<T>(&self, result: &Result<T, StateError>) {
        let reachable = !matches!(result, Err(StateError::Unavailable(_)));
        if self.inner.reachable.load(Ordering::Relaxed) == reachable {
            return;
        }
        if self.inner.reachable.swap(reachable, Ordering::Relaxed) != reachable {
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

    /// Invokes a script with one key and the given arguments.
    async fn script(
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

    /// Runs one plain command.
    async fn command<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StateError> {
        self.run(|mut conn| async move { cmd.query_async::<T>(&mut conn).await })
            .await
    }
}

/// A relative time to live as whole milliseconds (at least 1) and the
/// deadline it gives from `now_ms`; zero is refused like the memory backend.
fn ttl_deadline(now_ms: i64, ttl: Duration) -> Result<(i64, i64), StateError> {
    let ms = validate::ttl_millis(ttl)?;
    Ok((ms, now_ms.saturating_add(ms)))
}

/// Deadline and garbage-collection arguments for an optional ttl.
fn expiry_args(now_ms: i64, ttl: Option<Duration>) -> Result<(String, String), StateError> {
    match ttl {
        None => Ok((String::new(), String::new())),
        Some(ttl) => {
            let (ms, deadline) = ttl_deadline(now_ms, ttl)?;
            Ok((
                deadline.to_string(),
                ms.saturating_add(GC_GRACE_MS).to_string(),
            ))
        }
    }
}

/// An integer reply, given as an integer or as a decimal string.
fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

/// An optional integer: nil or the empty string mean none.
fn as_opt_i64(value: &Value) -> Option<Option<i64>> {
    match value {
        Value::Nil => Some(None),
        Value::BulkString(b) if b.is_empty() => Some(None),
        other => as_i64(other).map(Some),
    }
}

fn as_bool(value: &Value) -> Result<bool, StateError> {
    match as_i64(value) {
        Some(0) => Ok(false),
        Some(1) => Ok(true),
        _ => Err(unexpected()),
    }
}

fn as_array(value: Value) -> Result<Vec<Value>, StateError> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        _ => Err(unexpected()),
    }
}

fn as_string(value: Value) -> Result<String, StateError> {
    match value {
        Value::BulkString(b) => {
            String::from_utf8(b).map_err(|_| error::corrupt("set member is not UTF-8"))
        }
        Value::SimpleString(s) => Ok(s),
        _ => Err(unexpected()),
    }
}

/// A reply shape the scripts never produce.
fn unexpected() -> StateError {
    StateError::Backend("redis: unexpected reply shape".to_owned())
}

/// A score or deadline in milliseconds stored as a decimal (possibly with a fraction).
fn parse_ms(raw: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(raw).ok()?;
    s.parse::<i64>().ok().or_else(|| {
        let f = s.parse::<f64>().ok()?;
        // Scores are whole milliseconds well inside f64's exact range.
        f.is_finite().then_some(f as i64)
    })
}

fn remaining(deadline_ms: i64, now_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(deadline_ms.saturating_sub(now_ms)).unwrap_or(0))
}

#[async_trait]
impl KeyValueStore for RedisState {
    async fn get(&self, key: &StateKey) -> Result<Option<Bytes>, StateError> {
        let now = self.now_ms();
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.key(Space::Kv, key)).arg("v").arg("e");
        let (value, deadline): (Option<Vec<u8>>, Option<Vec<u8>>) = self.command(&cmd).await?;
        let Some(value) = value else { return Ok(None) };
        if let Some(deadline) = deadline {
            let at = parse_ms(&deadline).ok_or_else(|| error::corrupt("unreadable deadline"))?;
            if at <= now {
                return Ok(None);
            }
        }
        Ok(Some(Bytes::from(value)))
    }

    async fn set(
        &self,
        key: &StateKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), StateError> {
        let (deadline, gc) = expiry_args(self.now_ms(), ttl)?;
        let key = self.key(Space::Kv, key);
        self.script(
            &scripts::KV_SET,
            &key,
            &[&value, deadline.as_bytes(), gc.as_bytes()],
        )
        .await
        .map(drop)
    }

    async fn compare_and_swap(
        &self,
        key: &StateKey,
        expected: Option<&[u8]>,
        new: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool, StateError> {
        let now = self.now_ms();
        let (deadline, gc) = expiry_args(now, ttl)?;
        let now = now.to_string();
        let key = self.key(Space::Kv, key);
        let args: [&[u8]; 7] = [
            now.as_bytes(),
            if expected.is_some() { b"1" } else { b"0" },
            expected.unwrap_or_default(),
            if new.is_some() { b"1" } else { b"0" },
            new.as_deref().unwrap_or_default(),
            deadline.as_bytes(),
            gc.as_bytes(),
        ];
        as_bool(&self.script(&scripts::KV_CAS, &key, &args).await?)
    }

    async fn take(&self, key: &StateKey) -> Result<Option<Bytes>, StateError> {
        let now = self.now_ms().to_string();
        let key = self.key(Space::Kv, key);
        match self
            .script(&scripts::KV_TAKE, &key, &[now.as_bytes()])
            .await?
        {
            Value::Nil => Ok(None),
            Value::BulkString(v) => Ok(Some(Bytes::from(v))),
            _ => Err(unexpected()),
        }
    }

    async fn delete(&self, key: &StateKey) -> Result<bool, StateError> {
        let now = self.now_ms().to_string();
        let key = self.key(Space::Kv, key);
        as_bool(
            &self
                .script(&scripts::KV_DELETE, &key, &[now.as_bytes()])
                .await?,
        )
    }

    async fn expire(&self, key: &StateKey, ttl: Duration) -> Result<bool, StateError> {
        let now = self.now_ms();
        let (ms, deadline) = ttl_deadline(now, ttl)?;
        let (now, deadline, gc) = (
            now.to_string(),
            deadline.to_string(),
            ms.saturating_add(GC_GRACE_MS).to_string(),
        );
        let key = self.key(Space::Kv, key);
        let args: [&[u8]; 3] = [now.as_bytes(), deadline.as_bytes(), gc.as_bytes()];
        as_bool(&self.script(&scripts::KV_EXPIRE, &key, &args).await?)
    }

    async fn ping(&self) -> Result<(), StateError> {
        let reply: String = self.command(&redis::cmd("PING")).await?;
        if reply.eq_ignore_ascii_case("pong") {
            Ok(())
        } else {
            Err(unexpected())
        }
    }
}

impl RedisState {
    async fn counter_add(
        &self,
        key: &StateKey,
        delta: i64,
        limit: Option<i64>,
        window: Option<Duration>,
    ) -> Result<BoundedAdd, StateError> {
        let now = self.now_ms();
        let (deadline, gc) = expiry_args(now, window)?;
        let (now_s, delta, limit) = (
            now.to_string(),
            delta.to_string(),
            limit.map(|l| l.to_string()).unwrap_or_default(),
        );
        let key = self.key(Space::Counter, key);
        let args: [&[u8]; 5] = [
            now_s.as_bytes(),
            delta.as_bytes(),
            limit.as_bytes(),
            deadline.as_bytes(),
            gc.as_bytes(),
        ];
        let reply = as_array(self.script(&scripts::COUNTER_ADD, &key, &args).await?)?;
        let [applied, value, deadline] = reply.as_slice() else {
            return Err(unexpected());
        };
        let applied = as_bool(applied)?;
        let value = CounterValue {
            value: as_i64(value).ok_or_else(|| error::corrupt("unreadable counter"))?,
            expires_in: as_opt_i64(deadline)
                .ok_or_else(|| error::corrupt("unreadable deadline"))?
                .map(|at| remaining(at, now)),
        };
        Ok(if applied {
            BoundedAdd::Applied(value)
        } else {
            BoundedAdd::Refused(value)
        })
    }
}

#[async_trait]
impl CounterStore for RedisState {
    async fn add(
        &self,
        key: &StateKey,
        delta: i64,
        window: Option<Duration>,
    ) -> Result<CounterValue, StateError> {
        match self.counter_add(key, delta, None, window).await? {
            BoundedAdd::Applied(v) | BoundedAdd::Refused(v) => Ok(v),
        }
    }

    async fn add_within(
        &self,
        key: &StateKey,
        delta: i64,
        limit: i64,
        window: Option<Duration>,
    ) -> Result<BoundedAdd, StateError> {
        self.counter_add(key, delta, Some(limit), window).await
    }

    async fn get(&self, key: &StateKey) -> Result<CounterValue, StateError> {
        let now = self.now_ms();
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.key(Space::Counter, key)).arg("n").arg("e");
        let (value, deadline): (Option<Vec<u8>>, Option<Vec<u8>>) = self.command(&cmd).await?;
        let absent = CounterValue {
            value: 0,
            expires_in: None,
        };
        let Some(value) = value else {
            return Ok(absent);
        };
        let deadline = match deadline {
            Some(raw) => Some(parse_ms(&raw).ok_or_else(|| error::corrupt("unreadable deadline"))?),
            None => None,
        };
        if deadline.is_some_and(|at| at <= now) {
            return Ok(absent);
        }
        let value = std::str::from_utf8(&value)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| error::corrupt("unreadable counter"))?;
        Ok(CounterValue {
            value,
            expires_in: deadline.map(|at| remaining(at, now)),
        })
    }

    async fn reset(&self, key: &StateKey) -> Result<(), StateError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(Space::Counter, key));
        self.command::<i64>(&cmd).await.map(drop)
    }
}

#[async_trait]
impl RateLimiter for RedisState {
    async fn check(
        &self,
        key: &StateKey,
        quota: &RateQuota,
        cost: u32,
    ) -> Result<RateDecision, StateError> {
        let now_us = self.inner.clock.now().as_microsecond();
        let t = i64::try_from(quota.emission_interval_micros()).unwrap_or(i64::MAX);
        let tau = t.saturating_mul(i64::from(quota.burst()));
        if tau > MAX_TAU_US {
            return Err(StateError::InvalidArgument(
                "rate quota window (period / rate * burst) exceeds 2^52 microseconds",
            ));
        }
        // Any increment above tau is refused whatever the state; capping it
        // keeps the script's arithmetic exact without changing the outcome.
        let inc = t.saturating_mul(i64::from(cost)).min(tau + 1);
        let (now_s, inc, tau) = (now_us.to_string(), inc.to_string(), tau.to_string());
        let grace = GC_GRACE_MS.to_string();
        let key = self.key(Space::Rate, key);
        let args: [&[u8]; 4] = [
            now_s.as_bytes(),
            inc.as_bytes(),
            tau.as_bytes(),
            grace.as_bytes(),
        ];
        let reply = as_array(self.script(&scripts::RATE_CHECK, &key, &args).await?)?;
        let [allowed, stored] = reply.as_slice() else {
            return Err(unexpected());
        };
        let allowed = as_bool(allowed)?;
        let stored = as_opt_i64(stored).ok_or_else(|| error::corrupt("unreadable rate state"))?;
        // The script applied exactly this step; recompute the full decision
        // with the shared code so both backends agree to the microsecond.
        let (decision, _) = quota.decide(now_us, stored, cost);
        if decision.allowed != allowed {
            return Err(StateError::Backend(
                "redis: rate limiter script disagreed with RateQuota::decide".to_owned(),
            ));
        }
        Ok(decision)
    }
}

#[async_trait]
impl BoundedSetStore for RedisState {
    async fn insert(
        &self,
        owner: &StateKey,
        member: &str,
        expires_at: Timestamp,
        cap: usize,
        when_full: WhenFull,
    ) -> Result<SetInsert, StateError> {
        let now = self.now_ms();
        let at = validate::set_insert(cap, expires_at, now)?;
        let (now_s, at, cap, grace) = (
            now.to_string(),
            at.to_string(),
            cap.to_string(),
            GC_GRACE_MS.to_string(),
        );
        let reject: &[u8] = if when_full == WhenFull::Reject {
            b"1"
        } else {
            b"0"
        };
        let key = self.key(Space::Set, owner);
        let args: [&[u8]; 6] = [
            now_s.as_bytes(),
            member.as_bytes(),
            at.as_bytes(),
            cap.as_bytes(),
            reject,
            grace.as_bytes(),
        ];
        let mut reply =
            as_array(self.script(&scripts::SET_INSERT, &key, &args).await?)?.into_iter();
        let inserted = as_bool(&reply.next().ok_or_else(unexpected)?)?;
        let evicted = reply.map(as_string).collect::<Result<Vec<_>, _>>()?;
        Ok(SetInsert { inserted, evicted })
    }

    async fn remove(&self, owner: &StateKey, member: &str) -> Result<bool, StateError> {
        let now = self.now_ms().to_string();
        let key = self.key(Space::Set, owner);
        let args: [&[u8]; 2] = [now.as_bytes(), member.as_bytes()];
        as_bool(&self.script(&scripts::SET_REMOVE, &key, &args).await?)
    }

    async fn members(&self, owner: &StateKey) -> Result<Vec<SetMember>, StateError> {
        let now = self.now_ms();
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(self.key(Space::Set, owner))
            .arg(format!("({now}"))
            .arg("+inf")
            .arg("WITHSCORES");
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = self.command(&cmd).await?;
        pairs
            .into_iter()
            .map(|(member, score)| {
                let member = String::from_utf8(member)
                    .map_err(|_| error::corrupt("set member is not UTF-8"))?;
                let at = parse_ms(&score).ok_or_else(|| error::corrupt("unreadable set score"))?;
                Ok(SetMember {
                    member,
                    expires_at: Timestamp::from_millisecond(at).unwrap_or(Timestamp::MAX),
                })
            })
            .collect()
    }

    async fn contains(&self, owner: &StateKey, member: &str) -> Result<bool, StateError> {
        let now = self.now_ms();
        let mut cmd = redis::cmd("ZSCORE");
        cmd.arg(self.key(Space::Set, owner)).arg(member);
        let score: Option<Vec<u8>> = self.command(&cmd).await?;
        match score {
            None => Ok(false),
            Some(raw) => {
                Ok(parse_ms(&raw).ok_or_else(|| error::corrupt("unreadable set score"))? > now)
            }
        }
    }

    async fn clear(&self, owner: &StateKey) -> Result<Vec<String>, StateError> {
        let now = self.now_ms().to_string();
        let key = self.key(Space::Set, owner);
        as_array(
            self.script(&scripts::SET_CLEAR, &key, &[now.as_bytes()])
                .await?,
        )?
        .into_iter()
        .map(as_string)
        .collect()
    }
}

#[async_trait]
impl PubSub for RedisState {
    async fn publish(&self, topic: &StateKey, payload: Bytes) -> Result<(), StateError> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.key(Space::Topic, topic)).arg(&payload[..]);
        self.command::<i64>(&cmd).await.map(drop)
    }

    async fn subscribe(&self, topic: &StateKey) -> Result<Subscription, StateError> {
        let channel = self.key(Space::Topic, topic);
        match tokio::time::timeout(
            self.inner.op_timeout.saturating_add(self.inner.op_timeout),
            self.inner.hub.subscribe(channel),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(error::timed_out()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_positive_whole_milliseconds() {
        assert_eq!(
            ttl_deadline(1_000, Duration::ZERO),
            Err(StateError::InvalidArgument("ttl must be positive"))
        );
        assert_eq!(
            ttl_deadline(1_000, Duration::from_micros(10)),
            Ok((1, 1_001))
        );
        assert_eq!(
            ttl_deadline(1_000, Duration::from_secs(2)),
            Ok((2_000, 3_000))
        );
        assert_eq!(
            expiry_args(1_000, Some(Duration::from_secs(60))),
            Ok(("61000".to_owned(), (60_000 + GC_GRACE_MS).to_string()))
        );
        assert_eq!(expiry_args(1_000, None), Ok((String::new(), String::new())));
    }

    #[test]
    fn replies_decode_or_report_corruption() {
        assert_eq!(as_i64(&Value::Int(7)), Some(7));
        assert_eq!(as_i64(&Value::BulkString(b"-12".to_vec())), Some(-12));
        assert_eq!(as_i64(&Value::BulkString(b"x".to_vec())), None);
        assert_eq!(as_opt_i64(&Value::BulkString(Vec::new())), Some(None));
        assert_eq!(as_opt_i64(&Value::Nil), Some(None));
        assert_eq!(parse_ms(b"1700000000123"), Some(1_700_000_000_123));
        assert_eq!(parse_ms(b"1.7e12"), Some(1_700_000_000_000));
        assert_eq!(parse_ms(b"soon"), None);
        assert!(as_bool(&Value::Int(2)).is_err());
        assert_eq!(remaining(900, 1_000), Duration::ZERO);
    }

    #[test]
    fn errors_map_to_the_state_error_kinds() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(error::map(&io), StateError::Unavailable(_)));
        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(matches!(error::map(&timeout), StateError::Unavailable(_)));
        let client = RedisError::from((redis::ErrorKind::Client, "bad"));
        assert!(matches!(error::map(&client), StateError::Backend(_)));
    }
}
