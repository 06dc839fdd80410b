//! [`CounterStore`] on Redis: one hash per counter, `n` the count and `e`
//! the end of its window in milliseconds; both adds are the `COUNTER_ADD`
//! script, so `add_within` checks the limit and increments atomically.

use std::time::Duration;

use async_trait::async_trait;
use kailash_core::state::{BoundedAdd, CounterStore, CounterValue, StateError, StateKey};

use crate::backend::RedisState;
use crate::error;
use crate::expiry::{expiry_args, remaining};
use crate::keys::Space;
use crate::reply::{as_array, as_bool, as_i64, as_opt_i64, parse_ms, unexpected};
use crate::scripts;

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
