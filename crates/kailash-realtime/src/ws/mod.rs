//! [`WsEndpoint`]: the authenticated WebSocket endpoint (`GET /ws`) as an
//! axum router.
//!
//! Before the upgrade, the `Origin` of a browser request must be one of the
//! allowed origins (`origins`; with none configured, only the request's own
//! host) — a refused origin gets `403` problem+json and no socket, against
//! cross-site WebSocket hijacking. The credential is exactly one of:
//!
//! - `Authorization: Bearer <token>` (non-browser clients);
//! - the subprotocol pair `Sec-WebSocket-Protocol: kailash.v1,
//!   kailash.bearer.<token>` (browsers, which cannot set headers); the
//!   server selects `kailash.v1`, never echoing the token;
//! - the session cookie the [`JwtAuthLayer`](kailash_auth::layer::JwtAuthLayer) reads.
//!
//! Never a URL query parameter. The token is verified by the same
//! `JwtAuthLayer` (verifier, token cache, live-session check) as every
//! HTTP route. Refusals happen after the upgrade, as close frames:
//! 4001 `Invalid token` (missing, malformed, several, or not verifying),
//! 4001 `Invalid session` (the session is revoked or expired), 4029 `Too
//! many connections`, 4003 `Tenant required`; see [`CloseReason`].
//! An accepted connection first receives
//! `{"type":"welcome","connection_id","user_id","tenant_id"}`; then the
//! [protocol](crate::protocol) applies.
//!
//! ```
//! use std::sync::Arc;
//! use kailash_auth::jwt::{Algorithm, KeySet, SigningKey, Verifier};
//! use kailash_auth::layer::JwtAuthLayer;
//! use kailash_core::clock::SystemClock;
//! use kailash_core::state::SharedState;
//! use kailash_realtime::{Hub, RealtimeConfig, WsEndpoint};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = Arc::new(SystemClock);
//! let keys = Arc::new(KeySet::new(SigningKey::generate(Algorithm::ES256, "k1")?, clock.clone()));
//! let auth = JwtAuthLayer::new(Verifier::builder(keys, "https://id.example", "api").build())
//!     .cookie("kailash_at");
//! let config = RealtimeConfig {
//!     origins: Some(vec!["https://app.example".into()]),
//!     ..RealtimeConfig::default()
//! };
//! let hub = Hub::builder(SharedState::memory(clock), auth, config).build()?;
//! // Mount beside the gateway's routes, outside its JwtAuthLayer (the
//! // endpoint authenticates the upgrade itself, with the same layer).
//! let app: axum::Router = axum::Router::new().merge(WsEndpoint::new(hub).router());
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

mod origin;
pub(crate) mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::HeaderMap;
use kailash_auth::layer::{AuthenticateError, SessionCheckError};
use kailash_core::{Principal, Problem};

use crate::close::CloseReason;
use crate::event::MAX_EVENT_BYTES;
use crate::hub::Hub;

/// The subprotocol the server speaks.
pub const SUBPROTOCOL: &str = "kailash.v1";
/// The prefix of the subprotocol that carries a bearer token.
pub const BEARER_SUBPROTOCOL_PREFIX: &str = "kailash.bearer.";

/// The WebSocket endpoint of a [`Hub`]; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct WsEndpoint {
    hub: Hub,
    origins: Arc<origin::Origins>,
}

impl WsEndpoint {
    /// The endpoint of `hub`, with the hub's configuration (path, origins,
    /// buffer sizes, maximum message size).
    pub fn new(hub: Hub) -> Self {
        let origins = origin::Origins::new(hub.config().origins.as_deref().unwrap_or_default());
        Self {
            hub,
            origins: Arc::new(origins),
        }
    }

    /// A router serving `GET <ws_path>`.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route(&self.hub.config().ws_path, get(upgrade))
            .with_state(self.clone())
    }
}

/// The one credential of an upgrade request, or why there is none.
fn credential<'a>(
    endpoint: &WsEndpoint,
    headers: &'a HeaderMap,
    ws: &'a WebSocketUpgrade,
) -> Result<&'a str, CloseReason> {
    let from_headers = endpoint
        .hub
        .inner
        .auth
        .credential(headers)
        .map_err(|_| CloseReason::InvalidToken)?;
    let mut from_protocol = None;
    for offered in ws.requested_protocols() {
        let Ok(text) = offered.to_str() else { continue };
        if let Some(token) = text.strip_prefix(BEARER_SUBPROTOCOL_PREFIX) {
            if from_protocol.is_some() {
                return Err(CloseReason::InvalidToken);
            }
            from_protocol = Some(token);
        }
    }
    match (from_headers, from_protocol) {
        (Some(t), None) | (None, Some(t)) if !t.is_empty() => Ok(t),
        // None, an empty one, or two places at once: a proxy and this
        // server could disagree on which was meant.
        _ => Err(CloseReason::InvalidToken),
    }
}

async fn authenticate(
    endpoint: &WsEndpoint,
    headers: &HeaderMap,
    ws: &WebSocketUpgrade,
) -> Result<Principal, CloseReason> {
    let token = credential(endpoint, headers, ws)?;
    match endpoint.hub.inner.auth.authenticate(token).await {
        Ok(p) => Ok(p),
        Err(AuthenticateError::Session(SessionCheckError::Unavailable)) => {
            Err(CloseReason::Unavailable)
        }
        Err(AuthenticateError::Session(_)) => Err(CloseReason::InvalidSession),
        Err(_) => Err(CloseReason::InvalidToken),
    }
}

/// Whether `value` is a comma-separated token list (RFC 9110) naming
/// `upgrade` (any case), as the published `Connection` pattern says.
fn connection_upgrades(value: &str) -> bool {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+.^_`|~-".contains(&b);
    let mut upgrades = false;
    for token in value.split(',') {
        let token = token.trim_matches([' ', '\t']);
        if token.is_empty() || !token.bytes().all(tchar) {
            return false;
        }
        upgrades |= token.eq_ignore_ascii_case("upgrade");
    }
    upgrades
}

/// Whether `key` is the base64 of 16 bytes (RFC 6455 4.2.1), as the
/// published `Sec-WebSocket-Key` pattern says.
fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == 24
        && b[..21]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/'))
        && matches!(b[21], b'A' | b'Q' | b'g' | b'w')
        && &b[22..] == b"=="
}

/// Whether the upgrade headers of an HTTP/1.1 request are exactly what the
/// published operation requires; anything else is `400`, before axum's
/// own (looser) checks.
fn upgrade_headers_ok(headers: &HeaderMap) -> bool {
    let text = |name: http::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    text(http::header::CONNECTION).is_some_and(connection_upgrades)
        && text(http::header::UPGRADE).is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
        && text(http::header::SEC_WEBSOCKET_VERSION) == Some("13")
        && text(http::header::SEC_WEBSOCKET_KEY).is_some_and(valid_key)
}

/// Authenticated WebSocket of the caller tenant's events.
///
/// Credentials: `Authorization: Bearer`, the subprotocol pair `kailash.v1,
/// kailash.bearer.<token>` (the server selects `kailash.v1`), or the
/// session cookie; never a token in the URL. A missing or invalid token, or
/// a dead session, closes the socket with 4001 after the upgrade (no HTTP
/// 401). Server frames: `welcome`, `event` (`{type, id, channel, event,
/// tenant_id, data, metadata: {classification, required_permission}}`),
/// `error` (`{type, code, detail}`), `resumed` (`{type, recovered}`).
/// Client frames: `subscribe`, `unsubscribe`, `refresh`, `resume`. Close
/// codes: 4001 invalid token/session or token expired, 4008 slow consumer,
/// 4029 too many connections, 4000 idle, 4003 no tenant, 1009 message too
/// big. Documented at the default path `/ws`.
#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/ws", tag = "realtime", operation_id = "realtime_ws",
    security((), ("bearer" = [])),
    params(
        ("Connection" = String, Header, description = "A token list naming `Upgrade`",
            pattern = "^([!#$%&'*+.^_`|~0-9A-Za-z-]+[ \t]*,[ \t]*)*[Uu][Pp][Gg][Rr][Aa][Dd][Ee]([ \t]*,[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*$"),
        ("Upgrade" = String, Header, description = "`websocket`",
            pattern = "^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$"),
        ("Sec-WebSocket-Version" = String, Header, description = "`13`", pattern = "^13$"),
        ("Sec-WebSocket-Key" = String, Header, description = "The base64 of 16 random bytes",
            pattern = "^[A-Za-z0-9+/]{21}[AQgw]==$"),
        ("Sec-WebSocket-Protocol" = Option<String>, Header, nullable = false, max_length = 8192,
            description = "`kailash.v1, kailash.bearer.<token>` for browsers"),
    ),
    responses(
        (status = 101, description = "Switching protocols; the first frame is `welcome` (or a close frame 4001/4003/4029)"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Not a WebSocket upgrade request (the upgrade headers are missing or malformed)"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The Origin is not allowed (cross-site WebSocket hijacking)"),
        (status = 426, body = Problem, content_type = "application/problem+json", description = "The connection cannot be upgraded"),
    )
))]
async fn upgrade(
    State(endpoint): State<WsEndpoint>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !endpoint.origins.allows(&headers) {
        return Problem::forbidden("origin not allowed").into_response();
    }
    if !upgrade_headers_ok(&headers) {
        return Problem::bad_request("a WebSocket upgrade request is required").into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return Problem::from_status(rejection.status())
                .with_detail("a WebSocket upgrade request is required")
                .into_response();
        }
    };
    let outcome = authenticate(&endpoint, &headers, &ws).await;
    let config = endpoint.hub.config();
    let offers_v1 = ws
        .requested_protocols()
        .any(|p| p.as_bytes() == SUBPROTOCOL.as_bytes());
    let mut ws = ws
        .read_buffer_size(config.read_buffer_size)
        .write_buffer_size(config.write_buffer_size)
        // Room for the largest event on top of the buffer; past that a
        // failing write errors instead of growing memory.
        .max_write_buffer_size(config.write_buffer_size + 2 * MAX_EVENT_BYTES)
        .max_message_size(config.max_message_size)
        .max_frame_size(config.max_message_size);
    if offers_v1 {
        ws = ws.protocols([SUBPROTOCOL]);
    }
    let hub = endpoint.hub.clone();
    ws.on_upgrade(move |socket| session::run(hub, socket, outcome))
}
