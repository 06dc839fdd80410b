//! One layer in a plain axum app: per-client-IP rate limiting with
//! problem+json refusals, no gateway.
//!
//! ```text
//! cargo run -p kailash-examples --example rate_limited_axum -- 127.0.0.1:3000
//! curl -i http://127.0.0.1:3000/   # the 6th call within a minute answers 429
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use kailash::clock::SystemClock;
use kailash::context::SetRequestContextLayer;
use kailash::problem::ProblemJsonLayer;
use kailash::rate_limit::{Limit, RateLimitLayer};
use kailash::state::{RateQuota, SharedState};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let addr: SocketAddr = arg
        .parse()
        .map_err(|e| format!("listen address {arg:?}: {e}"))?;
    let state = SharedState::memory(Arc::new(SystemClock));
    let app = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .layer(RateLimitLayer::new(
            state.rate.clone(),
            Limit::PerIp(RateQuota::per_minute(5)?),
        ))
        .layer(SetRequestContextLayer::new())
        .layer(ProblemJsonLayer::new());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    // ConnectInfo gives SetRequestContextLayer the peer address.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
