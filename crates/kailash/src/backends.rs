//! Building the state backend a config names.

use std::sync::Arc;

use kailash_core::clock::Clock;
use kailash_core::state::{MemoryState, SharedState, memory::MemoryLimits};

use crate::GatewayError;
use crate::config::StateConfig;

/// Memory, or Redis when `redis_url` is set (needs the `redis` feature).
pub(crate) async fn state_from_config(
    config: &StateConfig,
    clock: Arc<dyn Clock>,
) -> Result<SharedState, GatewayError> {
    match &config.redis_url {
        None => {
            let limits = MemoryLimits {
                max_rate_keys: config.max_rate_limit_keys,
                ..MemoryLimits::default()
            };
            let memory = Arc::new(MemoryState::with_limits(clock.clone(), limits));
            Ok(SharedState::from_backend(memory, clock, "memory"))
        }
        #[cfg(feature = "redis")]
        Some(url) => {
            let options = kailash_redis::RedisOptions::default().with_key_prefix(config.key_prefix.clone());
            let redis = kailash_redis::RedisState::connect(url, clock.clone(), options)
                .await
                .map_err(|e| GatewayError::State(e.to_string()))?;
            Ok(redis.into_shared())
        }
        #[cfg(not(feature = "redis"))]
        Some(_) => Err(GatewayError::State(
            "state.redis_url is set but this build has no Redis support (enable the `redis` feature)".into(),
        )),
    }
}
