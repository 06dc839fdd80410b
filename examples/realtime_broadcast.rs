//! Realtime tenant broadcast: a `Hub` serving `GET /events` (server-sent
//! events) and `GET /ws` with the same `JwtAuthLayer` as the API, and
//! `POST /announce`, which sends the body to every connection of the
//! caller's tenant — never to another tenant's. It prints tokens for alice
//! (acme) and carol (globex).
//!
//! ```text
//! cargo run -p kailash-examples --example realtime_broadcast -- 127.0.0.1:3000
//! curl -N localhost:3000/events -H "authorization: Bearer $ALICE" &     # acme's stream
//! curl -X POST localhost:3000/announce -H "authorization: Bearer $ALICE" -d 'deploy at 5'
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Router, routing::post};
use kailash::auth::jwt::{Algorithm, Claims, KeySet, SigningKey, TokenType, Verifier};
use kailash::auth::layer::JwtAuthLayer;
use kailash::clock::{Clock, SystemClock};
use kailash::realtime::event::Event;
use kailash::realtime::{Hub, RealtimeConfig};
use kailash::state::SharedState;
use kailash::{Principal, Problem, TenantId};

/// Sends `text` to the caller's tenant on channel `news`.
async fn announce(
    State(hub): State<Hub>,
    who: Principal,
    text: String,
) -> Result<(StatusCode, String), Problem> {
    let tenant = who.tenant().cloned();
    let tenant = tenant.ok_or_else(|| Problem::forbidden("the caller has no tenant"))?;
    let event = Event::new(tenant, "news", "announcement")
        .map_err(|e| Problem::bad_request(e.to_string()))?
        .data(serde_json::json!({ "text": text, "from": who.subject() }));
    let id = hub.send_to_tenant(&event).await;
    let id = id.map_err(|_| Problem::service_unavailable("the event bus is unavailable"))?;
    Ok((StatusCode::ACCEPTED, format!("{id}\n")))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let addr: SocketAddr = arg
        .parse()
        .map_err(|e| format!("listen address {arg:?}: {e}"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let keys = Arc::new(KeySet::new(
        SigningKey::generate(Algorithm::EdDSA, "k1")?,
        clock.clone(),
    ));
    let now = clock.now().as_second();
    for (user, tenant) in [("alice", "acme"), ("carol", "globex")] {
        let mut claims = Claims::new("https://id.example", user, "api", now, now + 3600);
        claims.tid = Some(TenantId::new(tenant)?);
        println!("token {user}: {}", keys.issue(&claims, TokenType::Access)?);
    }
    let auth = JwtAuthLayer::new(
        Verifier::builder(keys, "https://id.example", "api")
            .clock(clock.clone())
            .build(),
    );
    // Memory fan-out here; SharedState on Redis reaches every instance's sockets.
    let hub = Hub::builder(
        SharedState::memory(clock),
        auth.clone(),
        RealtimeConfig::default(),
    )
    .build()?;

    let app = Router::new()
        .route("/announce", post(announce))
        .layer(auth)
        .with_state(hub.clone())
        // /events and /ws authenticate on their own (a WebSocket refusal is a close frame).
        .merge(kailash::realtime::router(&hub));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
