//! Who reads the operational details: the detailed readiness report (every
//! check with its error, value and threshold) and `/metrics` (login counts,
//! business figures) are for the platform, not for every client of the API.
//!
//! Two ways to keep them there, usable together:
//!
//! - **an operations listener** (`[server] ops_listen`, like Kong's status
//!   listener or Keycloak's management port): a second plain-HTTP listener
//!   serving only `/health/live`, `/health/ready` (detailed) and
//!   `/metrics`. The main listener then serves no `/metrics`, and its
//!   `/health/ready` answers the status code with `{"status": …}` only;
//!   `/health/live` stays on both (the kubelet probes the main port).
//! - **an operations token** (`[gateway] ops_token_env` / `ops_token_file`):
//!   `/metrics` needs `Authorization: Bearer <token>` (else `401`
//!   problem+json), and `/health/ready` gives its details only with it
//!   (else the status-only body, so probes work without the token). The
//!   token is compared in constant time, through SHA-256 digests (its
//!   length is not revealed either); only its digest is kept.
//!
//! The OpenAPI document of the main listener describes what that listener
//! serves: the routes moved to the operations listener are not in it, and
//! a route that takes the token declares the `ops_token` security scheme.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kailash_core::problem::{Problem, ProblemJsonLayer};
use kailash_monitoring::health::{HealthReport, HealthRunner};
use kailash_monitoring::http::METRICS_CONTENT_TYPE;
use kailash_monitoring::metrics::MetricsRegistry;
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::timeout::TimeoutLayer;

use crate::server::{Handler, ServerSettings};
use crate::{GatewayBuilder, GatewayError};

/// The shortest operations token accepted, in bytes.
pub const MIN_OPS_TOKEN_BYTES: usize = 16;
/// The longest operations token accepted, in bytes.
pub const MAX_OPS_TOKEN_BYTES: usize = 1024;

/// Most connections the operations listener serves at once (probes and
/// scrapers, not clients); the next ones are refused like the main
/// listener's.
const OPS_MAX_CONNECTIONS: usize = 64;
/// Most connections one peer address holds on the operations listener.
const OPS_MAX_CONNECTIONS_PER_IP: usize = 32;
/// The request timeout on the operations listener (readiness waits at most
/// one check timeout, on a fresh instance only).
const OPS_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The OpenAPI security scheme of the operations token.
pub const OPS_TOKEN_SCHEME: &str = "ops_token";

/// The operations token, as its SHA-256 digest: compared in constant time,
/// never printed.
#[derive(Clone)]
pub(crate) struct OpsToken(Arc<[u8; 32]>);

impl std::fmt::Debug for OpsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpsToken(<redacted>)")
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl OpsToken {
    /// The token, if it is 16 to 1024 visible ASCII characters (it travels
    /// in a header). The error never contains it.
    pub(crate) fn new(token: &str) -> Result<Self, String> {
        if token.len() < MIN_OPS_TOKEN_BYTES {
            return Err(format!(
                "the operations token is shorter than {MIN_OPS_TOKEN_BYTES} bytes"
            ));
        }
        if token.len() > MAX_OPS_TOKEN_BYTES {
            return Err(format!(
                "the operations token is longer than {MAX_OPS_TOKEN_BYTES} bytes"
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "the operations token must be visible ASCII characters without spaces".into(),
            );
        }
        Ok(Self(Arc::new(digest(token.as_bytes()))))
    }

    /// Whether the request carries `Authorization: Bearer <this token>`:
    /// `None` without credentials, `Some(false)` with other ones.
    fn check(&self, headers: &HeaderMap) -> Option<bool> {
        let value = headers.get(header::AUTHORIZATION)?.as_bytes();
        let presented = match value.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => value[7..].trim_ascii(),
            _ => return Some(false),
        };
        Some(bool::from(digest(presented).ct_eq(&*self.0)))
    }
}

/// What the builder collected for the operational routes' access.
#[derive(Debug, Default)]
pub(crate) struct OpsSettings {
    /// The operations listener's address.
    pub(crate) listen: Option<SocketAddr>,
    /// The token, or why the one given was refused.
    pub(crate) token: Option<Result<OpsToken, String>>,
}

impl GatewayBuilder {
    /// Serves `/health/live`, the detailed `/health/ready` and `/metrics`
    /// on a second, plain-HTTP listener at `addr` (for probes and scrapers;
    /// bind it to a private interface). The main listener then serves no
    /// `/metrics`, and its `/health/ready` answers the status code with
    /// `{"status": "ok" | "degraded" | "fail"}` only; `/health/live` stays
    /// on both. [`Gateway::run`](crate::Gateway::run) binds both addresses
    /// and shuts both down together.
    pub fn ops_listen(mut self, addr: SocketAddr) -> Self {
        self.ops.listen = Some(addr);
        self
    }

    /// Requires `Authorization: Bearer <token>` for `/metrics` (otherwise
    /// `401` problem+json) and for the details of `/health/ready` (without
    /// it, the status-only body: probes need no token), wherever they are
    /// served. The token must be 16 to 1024 visible ASCII characters
    /// ([`build`](Self::build) refuses others); only its SHA-256 digest is
    /// kept, and requests are compared with it in constant time.
    pub fn ops_token(mut self, token: &str) -> Self {
        self.ops.token = Some(OpsToken::new(token));
        self
    }

    /// Applies `[server] ops_listen` and reads the token `[gateway]
    /// ops_token_env` or `ops_token_file` names (a missing, empty or short
    /// one stops the start, naming where it was looked for, never its value).
    pub(crate) fn apply_ops(
        mut self,
        config: &crate::config::GatewayConfig,
    ) -> Result<Self, GatewayError> {
        if let Some(addr) = config.server.ops_listen {
            self = self.ops_listen(addr);
        }
        let g = &config.gateway;
        let source = crate::config::alerting::AlertChannelConfig::secret(
            &g.ops_token_env,
            &g.ops_token_file,
            "ops_token",
        )
        .map_err(|e| GatewayError::Ops(format!("gateway: {e}")))?;
        if let Some(source) = source {
            let token = source
                .read()
                .map_err(|e| GatewayError::Ops(format!("gateway.ops_token: {e}")))?;
            let checked = OpsToken::new(&token)
                .map_err(|e| GatewayError::Ops(format!("gateway.ops_token: {e}")))?;
            self.ops.token = Some(Ok(checked));
        }
        Ok(self)
    }
}

/// `[server] ops_listen` and the `[gateway] ops_token_*` pair, checked
/// without reading the token.
pub(crate) fn validate(
    config: &crate::config::GatewayConfig,
) -> Result<(), (std::borrow::Cow<'static, str>, String)> {
    let g = &config.gateway;
    if g.ops_token_env.is_some() && g.ops_token_file.is_some() {
        return Err((
            "gateway.ops_token_env".into(),
            "set `ops_token_env` or `ops_token_file`, not both".into(),
        ));
    }
    if g.ops_token_env.as_deref().is_some_and(str::is_empty) {
        return Err((
            "gateway.ops_token_env".into(),
            "must name an environment variable".into(),
        ));
    }
    if let Some(ops) = config.server.ops_listen {
        if clashes(ops, config.server.listen) {
            return Err((
                "server.ops_listen".into(),
                "must be another address than server.listen (another port)".into(),
            ));
        }
        if !g.health && !g.metrics {
            return Err((
                "server.ops_listen".into(),
                "serves health and metrics: one of gateway.health and gateway.metrics must be on"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Whether two listen addresses would take the same socket (same port on
/// the same address, or on any address when either is unspecified).
fn clashes(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The body of `/health/ready` without details.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct ReadinessStatus {
    /// `ok` (every check passes), `degraded` (a check that does not gate
    /// readiness fails) or `fail` (a required check fails: `503`).
    #[schema(schema_with = readiness_status_schema)]
    pub status: &'static str,
}

fn readiness_status_schema() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(kailash_monitoring::health::REPORT_STATUSES))
        .into()
}

/// `/health/ready` where the token shows the details: the report with
/// the token, the status alone without it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Readiness {
    /// With the operations token: every check.
    Report(HealthReport),
    /// Without it: the status alone.
    Status(ReadinessStatus),
}

fn readiness_response(report: HealthReport, detailed: bool) -> Response {
    let status = if report.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = if detailed {
        Readiness::Report(report)
    } else {
        Readiness::Status(ReadinessStatus {
            status: report.status,
        })
    };
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Readiness, status only (the main listener beside an operations listener).
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    operation_id = "health_ready",
    security(()),
    responses(
        (status = 200, body = ReadinessStatus, description = "Ready: every required check passes (`ok`, or `degraded` when an optional one fails). The checks' details are on the operations listener"),
        (status = 503, body = ReadinessStatus, description = "Not ready: a required check fails (`fail`)"),
    ),
)]
async fn ready_status(State(runner): State<HealthRunner>) -> Response {
    readiness_response(kailash_monitoring::http::readiness(&runner).await, false)
}

/// Readiness, with the checks' details for the operations token.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    operation_id = "health_ready",
    security((), ("ops_token" = [])),
    responses(
        (status = 200, body = Readiness, description = "Ready: every required check passes (`ok`, or `degraded` when an optional one fails). With the operations token the report names every check; without it (or with another credential) only the status"),
        (status = 503, body = Readiness, description = "Not ready: a required check fails (`fail`); with the operations token the report names it"),
    ),
)]
async fn ready_guarded(
    State((runner, token)): State<(HealthRunner, OpsToken)>,
    headers: HeaderMap,
) -> Response {
    let detailed = token.check(&headers) == Some(true);
    readiness_response(kailash_monitoring::http::readiness(&runner).await, detailed)
}

/// Prometheus text exposition, for the operations token.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    security(("ops_token" = [])),
    responses(
        (status = 200, body = String, content_type = "text/plain; version=0.0.4; charset=utf-8", description = "The Prometheus text exposition format 0.0.4"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No operations token, or another one (WWW-Authenticate)"),
    ),
)]
async fn metrics_guarded(
    State((registry, token)): State<(MetricsRegistry, OpsToken)>,
    headers: HeaderMap,
) -> Response {
    match token.check(&headers) {
        Some(true) => (
            [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
            registry.render(),
        )
            .into_response(),
        Some(false) => Problem::unauthorized(Some("invalid_token")).into_response(),
        None => Problem::unauthorized(None).into_response(),
    }
}

/// Adds the `ops_token` security scheme.
struct OpsTokenScheme;

impl utoipa::Modify for OpsTokenScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                OPS_TOKEN_SCHEME,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "The operations token (`[gateway] ops_token_env` or `ops_token_file`)",
                        ))
                        .build(),
                ),
            );
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(ready_status))]
struct ReadyStatusApi;

#[derive(utoipa::OpenApi)]
#[openapi(paths(ready_guarded), modifiers(&OpsTokenScheme))]
struct ReadyGuardedApi;

#[derive(utoipa::OpenApi)]
#[openapi(paths(metrics_guarded), modifiers(&OpsTokenScheme))]
struct MetricsGuardedApi;

/// kailash-monitoring's health document with `/health/live` only.
fn liveness_openapi() -> utoipa::openapi::OpenApi {
    let mut doc = kailash_monitoring::http::health_openapi();
    doc.paths.paths.retain(|path, _| path == "/health/live");
    if let Some(components) = &mut doc.components {
        components.schemas.retain(|name, _| name == "Liveness");
    }
    doc
}

/// The operational routes, for the main listener and the operations one.
pub(crate) struct OpsRoutes {
    /// Served by the main listener.
    pub(crate) main: Router,
    /// Their OpenAPI documents.
    pub(crate) docs: Vec<utoipa::openapi::OpenApi>,
    /// The operations listener, when one is configured.
    pub(crate) listener: Option<OpsListener>,
}

/// The operations listener: its routes as one handler, and its settings.
pub(crate) struct OpsListener {
    pub(crate) handler: Handler,
    pub(crate) settings: ServerSettings,
}

/// The health routes (`health`, when on) and the metrics route (`metrics`,
/// when on), placed and guarded as `ops` says.
pub(crate) fn routes(
    ops: OpsSettings,
    health: Option<HealthRunner>,
    metrics: Option<MetricsRegistry>,
    server: &ServerSettings,
) -> Result<OpsRoutes, GatewayError> {
    use kailash_monitoring::http as mon;
    let token = ops.token.transpose().map_err(GatewayError::Ops)?;
    if let Some(addr) = ops.listen {
        if clashes(addr, server.listen) {
            return Err(GatewayError::Ops(
                "the operations listener needs another address than the main listener".into(),
            ));
        }
        if health.is_none() && metrics.is_none() {
            return Err(GatewayError::Ops(
                "the operations listener serves health and metrics: both are off".into(),
            ));
        }
    }
    // The detailed routes, guarded when there is a token.
    let detailed = |health: &Option<HealthRunner>, metrics: &Option<MetricsRegistry>| {
        let mut router = Router::new();
        let mut docs = Vec::new();
        if let Some(runner) = health {
            match &token {
                None => {
                    router = router.merge(mon::health_routes_with(runner.clone()));
                    docs.push(mon::health_openapi());
                }
                Some(token) => {
                    router = router.merge(
                        Router::new()
                            .route("/health/live", get(live))
                            .route("/health/ready", get(ready_guarded))
                            .with_state((runner.clone(), token.clone())),
                    );
                    docs.push(liveness_openapi());
                    docs.push(<ReadyGuardedApi as utoipa::OpenApi>::openapi());
                }
            }
        }
        if let Some(registry) = metrics {
            match &token {
                None => {
                    router = router.merge(mon::metrics_route(registry.clone()));
                    docs.push(mon::metrics_openapi());
                }
                Some(token) => {
                    router = router.merge(
                        Router::new()
                            .route("/metrics", get(metrics_guarded))
                            .with_state((registry.clone(), token.clone())),
                    );
                    docs.push(<MetricsGuardedApi as utoipa::OpenApi>::openapi());
                }
            }
        }
        (router, docs)
    };
    let Some(addr) = ops.listen else {
        let (main, docs) = detailed(&health, &metrics);
        return Ok(OpsRoutes {
            main,
            docs,
            listener: None,
        });
    };
    // Beside an operations listener: liveness, and readiness without details.
    let mut main = Router::new();
    let mut docs = Vec::new();
    if let Some(runner) = &health {
        main = main.merge(
            Router::new()
                .route("/health/live", get(live))
                .route("/health/ready", get(ready_status))
                .with_state(runner.clone()),
        );
        docs.push(liveness_openapi());
        docs.push(<ReadyStatusApi as utoipa::OpenApi>::openapi());
    }
    let (router, _) = detailed(&health, &metrics);
    Ok(OpsRoutes {
        main,
        docs,
        listener: Some(OpsListener {
            handler: handler(router),
            settings: listener_settings(addr, server),
        }),
    })
}

/// `GET /health/live` (kailash-monitoring's, documented by it).
async fn live() -> axum::Json<kailash_monitoring::http::Liveness> {
    axum::Json(kailash_monitoring::http::Liveness { status: "ok" })
}

/// The operations listener's connection settings: the main listener's
/// deadlines, with caps fit for probes and scrapers.
fn listener_settings(addr: SocketAddr, main: &ServerSettings) -> ServerSettings {
    ServerSettings {
        listen: addr,
        max_connections: OPS_MAX_CONNECTIONS.min(main.max_connections),
        max_connections_per_ip: OPS_MAX_CONNECTIONS_PER_IP.min(main.max_connections_per_ip),
        // Nobody's address is rewritten here: no proxy is exempt.
        trusted_proxies: kailash_core::context::TrustedProxies::none(),
        ..main.clone()
    }
}

/// The operations listener's stack: problem bodies, a request timeout,
/// `404` problem+json for anything else.
fn handler(router: Router) -> Handler {
    let routes: Router = router
        .fallback(|| async { Problem::not_found() })
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            OPS_REQUEST_TIMEOUT,
        ))
        .with_state(());
    let service = ServiceBuilder::new()
        .layer(ProblemJsonLayer::new())
        .service(routes);
    Arc::new(move |req| {
        let service = service.clone();
        Box::pin(async move {
            let Ok(response) = service.oneshot(req).await;
            response.map(axum::body::Body::new)
        })
    })
}

/// Two futures from one shutdown signal: the first completes when
/// `shutdown` does (and must be polled for that), the second when the
/// first has.
pub(crate) fn fork_shutdown(
    shutdown: impl Future<Output = ()> + Send,
) -> (
    impl Future<Output = ()> + Send,
    impl Future<Output = ()> + Send + 'static,
) {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let first = async move {
        shutdown.await;
        let _ = tx.send(true);
    };
    // Also ends if the first is dropped unfinished (the main server ended).
    let second = async move {
        let _ = rx.wait_for(|stopped| *stopped).await;
    };
    (first, second)
}

/// Serves the operations listener until `shutdown`, then drains it like
/// the main one; nothing without a listener.
pub(crate) async fn serve(
    ops: Option<(&OpsListener, TcpListener)>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let Some((ops, listener)) = ops else {
        return;
    };
    let addr = listener.local_addr().unwrap_or(ops.settings.listen);
    tracing::info!(%addr, "operations listener: /health/live, /health/ready, /metrics");
    crate::server::serve(listener, ops.handler.clone(), &ops.settings, None, shutdown).await;
}

/// Binds the operations listener's address.
pub(crate) async fn bind(ops: &OpsListener) -> Result<TcpListener, GatewayError> {
    let addr = ops.settings.listen;
    TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Listen { addr, source })
}

/// The operations listener's routes as a `Router`, for tests.
pub(crate) fn router(ops: &OpsListener) -> Router {
    let handler = ops.handler.clone();
    Router::new().fallback_service(tower::service_fn(move |req| {
        let response = handler(req);
        async move { Ok::<_, std::convert::Infallible>(response.await) }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn the_token_is_checked_and_never_printed() {
        let token = OpsToken::new("0123456789abcdef-ops").unwrap();
        assert_eq!(token.check(&HeaderMap::new()), None);
        assert_eq!(
            token.check(&headers("Bearer 0123456789abcdef-ops")),
            Some(true)
        );
        assert_eq!(
            token.check(&headers("bearer 0123456789abcdef-ops")),
            Some(true)
        );
        assert_eq!(
            token.check(&headers("Bearer 0123456789abcdef-opS")),
            Some(false)
        );
        assert_eq!(
            token.check(&headers("Bearer 0123456789abcdef")),
            Some(false)
        );
        assert_eq!(
            token.check(&headers("Basic 0123456789abcdef-ops")),
            Some(false)
        );
        assert_eq!(token.check(&headers("Bearer")), Some(false));
        assert!(!format!("{token:?}").contains("0123"));
        assert!(OpsToken::new("short").is_err());
        assert!(OpsToken::new("sixteen bytes with spaces").is_err());
        assert!(OpsToken::new(&"x".repeat(MAX_OPS_TOKEN_BYTES + 1)).is_err());
        let e = OpsToken::new("s3cret-but-short").map(drop);
        assert!(e.is_ok(), "16 bytes is enough");
    }

    #[test]
    fn listen_addresses_clash_on_one_port() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(clashes(a("127.0.0.1:9000"), a("127.0.0.1:9000")));
        assert!(clashes(a("0.0.0.0:9000"), a("127.0.0.1:9000")));
        assert!(!clashes(a("127.0.0.1:9000"), a("127.0.0.1:8000")));
        assert!(!clashes(a("127.0.0.1:9000"), a("10.0.0.1:9000")));
        assert!(!clashes(a("127.0.0.1:0"), a("127.0.0.1:0")));
    }
}
