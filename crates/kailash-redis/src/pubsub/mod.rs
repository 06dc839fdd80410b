//! [`PubSub`] on Redis: `PUBLISH` goes over the command connection like any
//! other operation; subscriptions go through the [`Hub`], which owns a
//! dedicated connection and fans messages out to local subscribers.

mod hub;

pub(crate) use hub::Hub;
pub use hub::PubSubState;

use async_trait::async_trait;
use bytes::Bytes;
use kailash_core::state::{PubSub, StateError, StateKey, Subscription};

use crate::backend::RedisState;
use crate::error;
use crate::keys::Space;

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
            self.op_timeout().saturating_add(self.op_timeout()),
            self.hub().subscribe(channel),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(error::timed_out()),
        }
    }

    fn health(&self) -> Result<(), StateError> {
        match self.pubsub_state() {
            PubSubState::Reconnecting => Err(StateError::Unavailable(
                "redis: the pub/sub connection is lost and being re-established".to_owned(),
            )),
            PubSubState::Idle | PubSubState::Connected => Ok(()),
        }
    }
}

impl RedisState {
    /// The state of this backend's pub/sub connection, without a round trip:
    /// cheap enough for every readiness probe. [`PubSub::health`] is `Err`
    /// exactly while it is [`PubSubState::Reconnecting`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), kailash_core::state::StateError> {
    /// use std::sync::Arc;
    /// use kailash_core::clock::SystemClock;
    /// use kailash_redis::{PubSubState, RedisOptions, RedisState};
    ///
    /// let redis = RedisState::connect("redis://127.0.0.1:6379", Arc::new(SystemClock), RedisOptions::default()).await?;
    /// // No subscriber yet: no connection is needed.
    /// assert_eq!(redis.pubsub_state(), PubSubState::Idle);
    /// # Ok(())
    /// # }
    /// ```
    pub fn pubsub_state(&self) -> PubSubState {
        self.hub().state()
    }

    /// How many times a lost pub/sub connection was re-established (and its
    /// topics re-subscribed) since this backend was created; for metrics.
    pub fn pubsub_reconnects(&self) -> u64 {
        self.hub().reconnects()
    }
}
