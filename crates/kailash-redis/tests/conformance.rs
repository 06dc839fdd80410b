//! The shared state conformance suite against a real Redis.
//!
//! Set `KAILASH_TEST_REDIS_URL` (for example `redis://127.0.0.1:6379`) to run
//! it; without it every check prints "skipped".

use std::sync::Arc;

use kailash_core::clock::ManualClock;
use kailash_core::state::conformance::Harness;
use kailash_redis::{RedisOptions, RedisState};

async fn redis_harness() -> Option<Harness> {
    let url = std::env::var("KAILASH_TEST_REDIS_URL").ok()?;
    let clock = Arc::new(ManualClock::starting_now());
    let options = RedisOptions::default()
        .with_key_prefix("kailash-test:")
        .with_require_connection(true);
    match RedisState::connect(&url, clock.clone(), options).await {
        Ok(state) => Some(Harness::new(state.into_shared(), clock)),
        Err(err) => panic!("KAILASH_TEST_REDIS_URL is set but Redis is not usable: {err}"),
    }
}

kailash_core::state_conformance_tests!(redis_harness);
