//! Rate limits on Redis shared by several processes: every instance of this
//! program started against the same Redis (and key prefix) enforces one
//! limit per client IP, 5 requests a minute, together. Needs Redis:
//! `KAILASH_REDIS_URL` (e.g. `redis://127.0.0.1:6379`); `KAILASH_REDIS_PREFIX`
//! separates deployments (default `rate-limit-example:`).
//!
//! ```text
//! export KAILASH_REDIS_URL=redis://127.0.0.1:6379
//! cargo run -p kailash-examples --example redis_rate_limit -- 127.0.0.1:3001 &
//! cargo run -p kailash-examples --example redis_rate_limit -- 127.0.0.1:3002 &
//! for p in 3001 3002 3001 3002 3001 3002; do curl -s -o /dev/null -w '%{http_code}\n' localhost:$p/; done  # 200 ×5, then 429
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{Router, routing::get};
use kailash::clock::SystemClock;
use kailash::context::SetRequestContextLayer;
use kailash::problem::ProblemJsonLayer;
use kailash::rate_limit::{Limit, RateLimitLayer};
use kailash::redis::{RedisOptions, RedisState};
use kailash::state::RateQuota;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let addr: SocketAddr = arg
        .parse()
        .map_err(|e| format!("listen address {arg:?}: {e}"))?;
    let Some(url) = std::env::var("KAILASH_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        return Err("set KAILASH_REDIS_URL to a Redis server, e.g. redis://127.0.0.1:6379".into());
    };
    let prefix =
        std::env::var("KAILASH_REDIS_PREFIX").unwrap_or_else(|_| "rate-limit-example:".into());
    // Fail at start, not at the first request, when Redis is not there.
    let options = RedisOptions::default()
        .with_key_prefix(prefix)
        .with_require_connection(true);
    let redis = RedisState::connect(&url, Arc::new(SystemClock), options)
        .await
        .map_err(|e| format!("Redis at KAILASH_REDIS_URL: {e}"))?;
    let state = redis.into_shared();

    let app = Router::new()
        .route("/", get(|| async { "hello\n" }))
        // One GCRA bucket per client IP, kept in Redis: one atomic script per request.
        .layer(RateLimitLayer::new(
            state.rate.clone(),
            Limit::PerIp(RateQuota::per_minute(5)?),
        ))
        .layer(SetRequestContextLayer::new())
        .layer(ProblemJsonLayer::new());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
