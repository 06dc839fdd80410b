//! [`PubSub`] on Redis: `PUBLISH` goes over the command connection like any
//! other operation; subscriptions go through the [`Hub`], which owns a
//! dedicated connection and fans messages out to local subscribers.

mod hub;

pub(crate) use hub::Hub;

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
}
