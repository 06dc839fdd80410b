//! [`SseEndpoint`]: the same events as server-sent events (`GET /events`).
//!
//! The request is authenticated like a WebSocket upgrade — the
//! `Authorization: Bearer` header or the session cookie, verified by the
//! same [`JwtAuthLayer`](kailash_auth::layer::JwtAuthLayer), live-session
//! check included — and refused before the stream starts with `401`
//! problem+json (`503` when the session store cannot answer, `429` beyond
//! the connection caps, `403` for a principal without a tenant). An
//! accepted stream is a hub connection like any socket: the same
//! filters, caps, slow-consumer rule, token expiry and revocations.
//!
//! Every event is one SSE message whose `id:` is the event id and whose
//! `data:` is the event frame (`{"type":"event",…}`). A `Last-Event-ID`
//! header replays the tenant's events after it first (filtered), then a
//! message `{"type":"resumed","recovered":bool}`. Keep-alive comments
//! (`:`) go out every heartbeat. When the server ends the stream it sends a
//! last message `event: close` with `{"type":"close","code","reason"}` (the
//! WebSocket close code and reason, e.g. 4001 `Token expired`).
//!
//! ```
//! use std::sync::Arc;
//! use kailash_auth::jwt::{Algorithm, KeySet, SigningKey, Verifier};
//! use kailash_auth::layer::JwtAuthLayer;
//! use kailash_core::clock::SystemClock;
//! use kailash_core::state::SharedState;
//! use kailash_realtime::{Hub, RealtimeConfig, SseEndpoint};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = Arc::new(SystemClock);
//! let keys = Arc::new(KeySet::new(SigningKey::generate(Algorithm::ES256, "k1")?, clock.clone()));
//! let auth = JwtAuthLayer::new(Verifier::builder(keys, "https://id.example", "api").build());
//! let hub = Hub::builder(SharedState::memory(clock), auth, RealtimeConfig::default()).build()?;
//! let app: axum::Router = axum::Router::new().merge(SseEndpoint::new(hub).router());
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::HeaderMap;
use kailash_auth::layer::{AuthenticateError, SessionCheckError};
use kailash_core::Problem;
use tokio::sync::mpsc;

use crate::close::CloseReason;
use crate::event::EventId;
use crate::hub::{Conn, ConnKind, Hub, Outbound};
use crate::protocol;
use crate::stats::RealtimeStats;
use crate::ws::session::new_id;

/// How long the tenant's bus subscription may take before the request is
/// refused (503).
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SSE endpoint of a [`Hub`]; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct SseEndpoint {
    hub: Hub,
}

impl SseEndpoint {
    /// The endpoint of `hub` (path `sse_path` of its configuration).
    pub fn new(hub: Hub) -> Self {
        Self { hub }
    }

    /// A router serving `GET <sse_path>`.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route(&self.hub.config().sse_path, get(events))
            .with_state(self.clone())
    }
}

/// Ends the hub registration with the stream.
struct Registered {
    hub: Hub,
    conn: Arc<Conn>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.hub.unregister(&self.conn);
    }
}

struct Stream {
    registered: Registered,
    rx: mpsc::Receiver<Outbound>,
    pending: VecDeque<SseEvent>,
    replayed_up_to: Option<EventId>,
    done: bool,
}

fn refuse(reason: CloseReason) -> Response {
    match reason {
        CloseReason::InvalidToken => Problem::unauthorized(Some("invalid_token"))
            .with_detail("Invalid token")
            .into_response(),
        CloseReason::InvalidSession => Problem::unauthorized(Some("invalid_token"))
            .with_detail("Invalid session")
            .into_response(),
        CloseReason::TooManyConnections => Problem::too_many_requests(Duration::from_secs(1))
            .with_detail("Too many connections")
            .into_response(),
        CloseReason::TenantRequired => Problem::forbidden("Tenant required").into_response(),
        _ => Problem::service_unavailable("realtime is temporarily unavailable").into_response(),
    }
}

fn close_message(reason: CloseReason) -> SseEvent {
    let data = serde_json::json!({"type": "close", "code": reason.code(), "reason": reason.text()});
    SseEvent::default().event("close").data(data.to_string())
}

/// The request headers `GET /events` reads besides the credential.
#[cfg(feature = "openapi")]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // documents the header `events` reads itself
struct SseHeaders {
    /// Resume after this event id (`ms-seq`, as an `id:` line carried it).
    /// An id this server never sent cannot be resumed from: the stream
    /// starts with `{"type":"resumed","recovered":false}`, as for an id
    /// older than the history.
    #[param(rename = "Last-Event-ID", nullable = false, max_length = 64)]
    last_event_id: Option<String>,
}

/// The longest `Last-Event-ID` read (longer is a 400).
const MAX_LAST_EVENT_ID: usize = 64;

/// The event id in a `Last-Event-ID`: 1 to 19 digits, `-`, 1 to 19 digits
/// (every such part fits a `u64`; leading zeros are read as the number
/// they spell); `None` for anything else.
fn last_event_id(text: &str) -> Option<EventId> {
    let digits = |p: &str| (1..=19).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    let (ms, seq) = text.split_once('-')?;
    if !digits(ms) || !digits(seq) {
        return None;
    }
    Some(EventId::new(ms.parse().ok()?, seq.parse().ok()?))
}

/// One message of the stream, as a client's SSE parser reads it (the
/// schema OpenAPI 3.1 gives an event stream describes each message).
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents what `events` writes
struct SseMessage {
    /// The event id (`ms-seq`) of an event message; absent on others.
    id: Option<String>,
    /// `message` (the default: an event frame, or `{"type":"resumed","recovered":bool}`
    /// after a replay) or `close` (`{"type":"close","code","reason"}`, the last message).
    #[schema(value_type = Option<String>)]
    event: Option<String>,
    /// The JSON frame: `{"type":"event","id","channel","event","tenant_id","data","metadata"}`,
    /// `{"type":"resumed","recovered":bool}` or `{"type":"close","code","reason"}`.
    data: String,
}

/// The caller tenant's events as server-sent events.
///
/// `id:` lines carry event ids; `Last-Event-ID` resumes after one (events
/// the history no longer holds are reported as not recovered). Keep-alive
/// comments keep proxies from closing the stream. Documented at the default
/// path `/events`.
#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/events", tag = "realtime", operation_id = "realtime_sse",
    security(("bearer" = [])),
    params(SseHeaders),
    responses(
        (status = 200, body = SseMessage, content_type = "text/event-stream", description = "An event stream; the schema describes each message"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "`Last-Event-ID` is longer than 64 bytes"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or invalid credentials, or a dead session"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The caller has no tenant"),
        (status = 429, body = Problem, content_type = "application/problem+json", description = "Too many connections"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "The session store, the event bus or the history is unavailable"),
    )
))]
async fn events(State(endpoint): State<SseEndpoint>, headers: HeaderMap) -> Response {
    let hub = &endpoint.hub;
    let inner = &hub.inner;
    // An id this server never sent (malformed, foreign) cannot be resumed
    // from: the stream says so (`recovered: false`), like an id older than
    // the history. Only an oversized header is refused.
    let since = match headers.get("last-event-id") {
        None => None,
        Some(v) if v.len() > MAX_LAST_EVENT_ID => {
            return Problem::bad_request("Last-Event-ID is longer than 64 bytes").into_response();
        }
        Some(v) => Some(v.to_str().ok().and_then(last_event_id)),
    };
    let principal = match inner.auth.credential(&headers) {
        Ok(Some(token)) => match inner.auth.authenticate(token).await {
            Ok(p) => Ok(p),
            Err(AuthenticateError::Session(SessionCheckError::Unavailable)) => {
                Err(CloseReason::Unavailable)
            }
            Err(AuthenticateError::Session(_)) => Err(CloseReason::InvalidSession),
            Err(_) => Err(CloseReason::InvalidToken),
        },
        Ok(None) | Err(_) => Err(CloseReason::InvalidToken),
    };
    let registered = principal.and_then(|p| {
        let id = new_id().ok_or(CloseReason::Unavailable)?;
        hub.register(id, ConnKind::Sse, p)
    });
    let (conn, rx, mut ready) = match registered {
        Ok(r) => r,
        Err(reason) => {
            inner.stats.closed(reason);
            return refuse(reason);
        }
    };
    let registered = Registered {
        hub: hub.clone(),
        conn: conn.clone(),
    };
    let live = tokio::time::timeout(READY_TIMEOUT, ready.wait_for(|r| *r))
        .await
        .is_ok_and(|r| r.is_ok());
    if !live {
        conn.close(CloseReason::Unavailable, &inner.stats);
        return refuse(CloseReason::Unavailable);
    }
    let mut pending = VecDeque::new();
    let mut replayed_up_to = None;
    if let Some(Some(since)) = since {
        match inner
            .bus
            .replay(&conn.tenant, since, inner.config.history_size)
            .await
        {
            Ok(replay) => {
                for d in &replay.deliveries {
                    replayed_up_to = Some(d.id);
                    if inner.admits(&conn, d) {
                        RealtimeStats::add(&inner.stats.sent, 1);
                        pending.push_back(
                            SseEvent::default()
                                .id(d.id.to_string())
                                .data(d.frame.as_str()),
                        );
                    }
                }
                pending.push_back(
                    SseEvent::default().data(protocol::resumed(replay.recovered).as_str()),
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "realtime: history unavailable for Last-Event-ID");
                RealtimeStats::add(&inner.stats.bus_errors, 1);
                return Problem::service_unavailable("event history is temporarily unavailable")
                    .into_response();
            }
        }
    }
    if let Some(None) = since {
        pending.push_back(SseEvent::default().data(protocol::resumed(false).as_str()));
    }
    let state = Stream {
        registered,
        rx,
        pending,
        replayed_up_to,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        if let Some(e) = s.pending.pop_front() {
            return Some((Ok::<_, Infallible>(e), s));
        }
        if s.done {
            return None;
        }
        let conn = s.registered.conn.clone();
        loop {
            if let Some(reason) = conn.close_reason() {
                s.done = true;
                return Some((Ok(close_message(reason)), s));
            }
            tokio::select! {
                biased;
                () = conn.closing.notified() => continue,
                out = s.rx.recv() => match out {
                    Some(Outbound::Event(id, _)) if s.replayed_up_to.is_some_and(|r| id <= r) => continue,
                    Some(Outbound::Event(id, frame)) => {
                        let e = SseEvent::default().id(id.to_string()).data(frame.as_str());
                        return Some((Ok(e), s));
                    }
                    Some(Outbound::Ping) => return Some((Ok(SseEvent::default().comment("")), s)),
                    None => return None,
                },
            }
        }
    });
    Sse::new(stream).into_response()
}

#[cfg(test)]
mod last_event_id_tests {
    use super::*;

    #[test]
    fn last_event_id_is_exactly_its_published_pattern() {
        let max = "9".repeat(19);
        for (text, id) in [
            ("0-0", Some(EventId::new(0, 0))),
            ("01-002", Some(EventId::new(1, 2))),
            (
                format!("{max}-1").as_str(),
                Some(EventId::new(9_999_999_999_999_999_999, 1)),
            ),
            ("0", None),
            ("1-", None),
            ("-1", None),
            ("+1-0", None),
            ("1-0-0", None),
            ("12345678901234567890-0", None),
            (" 1-0", None),
        ] {
            assert_eq!(last_event_id(text), id, "{text:?}");
        }
    }
}
