//! Latency of one call to each state primitive, in memory and on Redis.
//!
//! ```text
//! cargo bench -p kailash-benches --bench state_primitives
//! KAILASH_TEST_REDIS_URL=redis://127.0.0.1:6379 cargo bench -p kailash-benches --bench state_primitives
//! ```
//!
//! The Redis group runs only when `KAILASH_TEST_REDIS_URL` is set (keys use
//! the prefix `kailash-bench:`); it measures a full round trip to that server,
//! so its figures are dominated by the network and Redis, not by this crate.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use kailash_core::clock::{Clock, SystemClock};
use kailash_core::state::{Namespace, RateQuota, SharedState, StateKey, WhenFull};
use kailash_redis::{RedisOptions, RedisState};
use tokio::runtime::Runtime;

const NS: Namespace = Namespace::new("bench");
const TTL: Duration = Duration::from_secs(60);

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Keys unique to this bench process, so runs sharing a Redis never interfere.
fn key(name: &str) -> StateKey {
    StateKey::global(
        NS,
        &format!(
            "{}-{}:{name}",
            std::process::id(),
            SystemClock.now().as_millisecond()
        ),
    )
}

fn bench_backend(c: &mut Criterion, rt: &Runtime, state: &SharedState) {
    let mut group = c.benchmark_group(format!("state/{}", state.backend_name()));
    let value = Bytes::from_static(b"session-payload-0123456789abcdef");

    let hit = key("kv-hit");
    rt.block_on(
        state
            .kv
            .set(&hit, value.clone(), Some(Duration::from_secs(3600))),
    )
    .expect("seed kv");
    group.bench_function("kv_get_hit", |b| {
        b.to_async(rt).iter(|| async {
            let got = state.kv.get(&hit).await.expect("kv get");
            debug_assert!(got.is_some());
            black_box(got)
        })
    });

    let set_key = key("kv-set");
    group.bench_function("kv_set_ttl", |b| {
        b.to_async(rt).iter(|| async {
            state
                .kv
                .set(&set_key, value.clone(), Some(TTL))
                .await
                .expect("kv set")
        })
    });

    // Swaps the value for itself: the full compare-and-write path, every time.
    let cas = key("kv-cas");
    rt.block_on(state.kv.set(&cas, value.clone(), None))
        .expect("seed cas");
    group.bench_function("compare_and_swap", |b| {
        b.to_async(rt).iter(|| async {
            let swapped = state
                .kv
                .compare_and_swap(&cas, Some(&value[..]), Some(value.clone()), Some(TTL))
                .await
                .expect("cas");
            debug_assert!(swapped);
            black_box(swapped)
        })
    });

    let counter = key("counter");
    group.bench_function("counter_add_within", |b| {
        b.to_async(rt).iter(|| async {
            black_box(
                state
                    .counters
                    .add_within(&counter, 1, i64::MAX, Some(TTL))
                    .await
                    .expect("add_within"),
            )
        })
    });

    // A burst of u32::MAX µs-cheap requests never runs out during a bench:
    // every check takes the allowed path.
    let quota = RateQuota::new(1_000_000, Duration::from_secs(1), u32::MAX).expect("quota");
    let rate = key("rate");
    group.bench_function("rate_check_allowed", |b| {
        b.to_async(rt).iter(|| async {
            let decision = state
                .rate
                .check(&rate, &quota, 1)
                .await
                .expect("rate check");
            debug_assert!(decision.allowed);
            black_box(decision)
        })
    });

    // Eight members rotating through a set capped at five: most inserts evict.
    let owner = key("set");
    let members: Vec<String> = (0..8).map(|i| format!("session-{i}")).collect();
    let seq = AtomicU64::new(0);
    group.bench_function("bounded_set_insert", |b| {
        b.to_async(rt).iter(|| async {
            let i = seq.fetch_add(1, Ordering::Relaxed);
            let member = &members[(i % 8) as usize];
            let expires_at = state
                .clock
                .now()
                .checked_add(Duration::from_secs(3600))
                .expect("expiry in range");
            black_box(
                state
                    .sets
                    .insert(&owner, member, expires_at, 5, WhenFull::EvictOldest)
                    .await
                    .expect("set insert"),
            )
        })
    });

    // One set of 100 000 members, as the sessions' live index of a large
    // deployment: a renewal moves one member's expiry, the health check
    // counts them.
    const LARGE: u64 = 100_000;
    let live = key("live");
    let names: Vec<String> = (0..LARGE)
        .map(|i| format!("t:acme:session:{i:024}"))
        .collect();
    let until = |secs: u64| {
        state
            .clock
            .now()
            .checked_add(Duration::from_secs(secs))
            .expect("expiry in range")
    };
    rt.block_on(async {
        for name in &names {
            state
                .sets
                .insert(&live, name, until(3600), 10_000_000, WhenFull::EvictOldest)
                .await
                .expect("set insert");
        }
    });
    let seq = AtomicU64::new(0);
    group.bench_function("bounded_set_renew_100k", |b| {
        b.to_async(rt).iter(|| async {
            let i = seq.fetch_add(7919, Ordering::Relaxed) % LARGE;
            black_box(
                state
                    .sets
                    .insert(
                        &live,
                        &names[i as usize],
                        until(3600),
                        10_000_000,
                        WhenFull::EvictOldest,
                    )
                    .await
                    .expect("set insert"),
            )
        })
    });
    group.bench_function("bounded_set_len_100k", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(state.sets.len(&live).await.expect("set len")) })
    });
    rt.block_on(state.sets.clear(&live)).expect("set clear");

    group.finish();
}

fn state_primitives(c: &mut Criterion) {
    let rt = runtime();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    let memory = SharedState::memory(clock.clone());
    bench_backend(c, &rt, &memory);

    match std::env::var("KAILASH_TEST_REDIS_URL") {
        Ok(url) => {
            let options = RedisOptions::default()
                .with_key_prefix("kailash-bench:")
                .with_require_connection(true);
            let redis = rt
                .block_on(RedisState::connect(&url, clock, options))
                .expect("KAILASH_TEST_REDIS_URL is set but Redis is not reachable");
            bench_backend(c, &rt, &redis.into_shared());
        }
        Err(_) => {
            println!("state/redis: skipped (set KAILASH_TEST_REDIS_URL to bench the Redis backend)")
        }
    }
}

criterion_group!(benches, state_primitives);
criterion_main!(benches);
