//! [`GatewayBuilder`]: every option of the gateway, with secure defaults.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use axum::routing::Route;
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use kailash_access::AccessControl;
use kailash_core::audit::{
    AuditDecision, AuditSink, JsonLinesAuditSink, MemoryAuditSink, RetainingAuditSink,
};
use kailash_core::clock::{Clock, SystemClock};
use kailash_core::context::{IncomingRequestId, RequestContextLayer, TrustedProxies};
use kailash_core::problem::{Problem, ProblemJsonLayer};
use kailash_core::rate_limit::{FailMode, RateLimitLayer};
use kailash_core::state::{RateQuota, SharedState};
use kailash_monitoring::health::{HealthCheck, HealthRegistry};
use kailash_monitoring::metrics::{MetricsLayer, MetricsRegistry};
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::GatewayConfig;
use crate::gateway::{Gateway, ServerSettings};
use crate::{GatewayError, ops, tls, trace};
use kailash_tenancy::registry::TenantRegistry;

type RouterLayerFn = Box<dyn FnOnce(Router) -> Router + Send>;

/// The composed stack, type-erased once: one allocation per request.
pub(crate) type Handler = Arc<
    dyn Fn(http::Request<axum::body::Body>) -> Pin<Box<dyn Future<Output = Response> + Send>>
        + Send
        + Sync,
>;

/// Any response into axum's (boxing the body only when it is not already axum's).
fn into_axum<B>(response: http::Response<B>) -> Response
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    response.map(axum::body::Body::new)
}

/// Rate limits of the gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Per client IP.
    pub per_ip: Option<RateQuota>,
    /// Per authenticated user (requests carrying a `Principal`).
    pub per_user: Option<RateQuota>,
    /// Per tenant (requests whose `Principal` has a tenant).
    pub per_tenant: Option<RateQuota>,
    /// Behaviour when the state backend cannot answer.
    pub fail_mode: FailMode,
}

/// TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert: std::path::PathBuf,
    /// PEM private key.
    pub key: std::path::PathBuf,
    /// Accept TLS 1.3 only.
    pub tls13_only: bool,
}

/// How requests may name their tenant besides the token (which is
/// authoritative; every source present must agree with it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenancySettings {
    /// Accept `X-Tenant-ID`.
    pub header: bool,
    /// Resolve `<tenant>.<base>` hosts.
    pub subdomain_base: Option<String>,
    /// Resolve tenants' custom domains.
    pub custom_domains: bool,
}

/// The tenant registry as the auth service's tenant gate.
struct RegistryGate(Arc<dyn TenantRegistry>);

#[async_trait::async_trait]
impl kailash_auth::service::TenantGate for RegistryGate {
    async fn is_active(&self, tenant: &kailash_core::TenantId) -> Result<bool, String> {
        match self.0.get(tenant).await {
            Ok(found) => Ok(found.is_some_and(|t| t.active)),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Builds a [`Gateway`]. Start from [`Gateway::builder`].
///
/// Each `enable`-style switch adds or removes a real layer or route; nothing
/// here is accepted and then ignored. See the [crate docs](crate) for the
/// stack the builder composes.
#[must_use]
pub struct GatewayBuilder {
    pub(crate) title: String,
    pub(crate) version: String,
    pub(crate) description: Option<String>,
    pub(crate) server: ServerSettings,
    tls: Option<TlsSettings>,
    request_timeout: Duration,
    max_body_bytes: usize,
    compression: bool,
    tracing: bool,
    metrics: bool,
    health: bool,
    docs: bool,
    cors_origins: Vec<String>,
    cors_credentials: bool,
    cors_max_age: Duration,
    trusted_proxies: TrustedProxies,
    incoming_request_id: IncomingRequestId,
    rate_limits: RateLimits,
    state: Option<SharedState>,
    clock: Arc<dyn Clock>,
    audit: Option<Arc<dyn AuditSink>>,
    health_checks: HealthRegistry,
    routes: Router,
    openapi: Option<utoipa::openapi::OpenApi>,
    principal_layer: Option<RouterLayerFn>,
    auth: Option<kailash_auth::service::AuthService>,
    auth_cookie: Option<String>,
    tenancy: Option<(Arc<dyn TenantRegistry>, TenancySettings)>,
    access: Option<AccessControl>,
    recent_audit: Option<Arc<MemoryAuditSink>>,
}

impl Default for GatewayBuilder {
    fn default() -> Self {
        let defaults = GatewayConfig::default();
        Self {
            title: defaults.gateway.title,
            version: defaults.gateway.version,
            description: None,
            server: ServerSettings::default(),
            tls: None,
            request_timeout: defaults.gateway.request_timeout.0,
            max_body_bytes: defaults.gateway.max_body_bytes,
            compression: true,
            tracing: true,
            metrics: true,
            health: true,
            docs: true,
            cors_origins: Vec::new(),
            cors_credentials: false,
            cors_max_age: defaults.cors.max_age.0,
            trusted_proxies: TrustedProxies::none(),
            incoming_request_id: IncomingRequestId::default(),
            rate_limits: RateLimits::default(),
            state: None,
            clock: Arc::new(SystemClock),
            audit: None,
            health_checks: HealthRegistry::new(),
            routes: Router::new(),
            openapi: None,
            principal_layer: None,
            auth: None,
            auth_cookie: None,
            tenancy: None,
            access: None,
            recent_audit: None,
        }
    }
}

impl std::fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayBuilder")
            .field("title", &self.title)
            .field("server", &self.server)
            .field("rate_limits", &self.rate_limits)
            .finish_non_exhaustive()
    }
}

/// Validates CORS origins: explicit `scheme://host[:port]` values, or `*`
/// alone and never with credentials.
pub(crate) fn cors_origins(
    origins: &[String],
    credentials: bool,
) -> Result<Option<AllowOrigin>, GatewayError> {
    if origins.is_empty() {
        return Ok(None);
    }
    if origins.iter().any(|o| o == "*") {
        if origins.len() > 1 {
            return Err(GatewayError::Cors(
                "`*` cannot be combined with explicit origins".into(),
            ));
        }
        if credentials {
            return Err(GatewayError::Cors(
                "credentials are only allowed with explicit origins, never with `*`".into(),
            ));
        }
        return Ok(Some(AllowOrigin::any()));
    }
    let mut values = Vec::with_capacity(origins.len());
    for origin in origins {
        let uri: http::Uri = origin
            .parse()
            .map_err(|_| GatewayError::Cors(format!("origin {origin:?} is not a URL")))?;
        let well_formed = matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.host().is_some()
            && uri
                .path_and_query()
                .is_none_or(|p| p.as_str() == "/" || p.as_str().is_empty())
            && !origin.ends_with('/');
        if !well_formed {
            return Err(GatewayError::Cors(format!(
                "origin {origin:?} must be scheme://host[:port] with no path"
            )));
        }
        values.push(HeaderValue::from_str(origin).map_err(|_| {
            GatewayError::Cors(format!("origin {origin:?} is not a valid header value"))
        })?);
    }
    Ok(Some(AllowOrigin::list(values)))
}

impl GatewayBuilder {
    /// A builder with the defaults of an empty config file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a loaded configuration (everything except the state backend
    /// and audit sink, which [`GatewayBuilder::from_config_with_backends`]
    /// also sets up).
    pub fn from_config(config: &GatewayConfig) -> Result<Self, GatewayError> {
        let quota =
            |r: &Option<crate::config::RateConfig>| -> Result<Option<RateQuota>, GatewayError> {
                r.as_ref()
                    .map(|r| {
                        r.quota()
                            .map_err(|e| GatewayError::RateLimit(e.to_string()))
                    })
                    .transpose()
            };
        let s = &config.server;
        let g = &config.gateway;
        let mut b = Self::new()
            .title(&g.title)
            .version(&g.version)
            .listen(s.listen)
            .max_connections(s.max_connections)
            .max_header_bytes(s.max_header_bytes)
            .max_headers(s.max_headers)
            .header_read_timeout(s.header_read_timeout.0)
            .shutdown_grace(s.shutdown_grace.0)
            .trusted_proxies(TrustedProxies::new(s.trusted_proxies.iter().copied()))
            .incoming_request_id(s.incoming_request_id)
            .request_timeout(g.request_timeout.0)
            .max_body_bytes(g.max_body_bytes)
            .compression(g.compression)
            .tracing(g.tracing)
            .metrics(g.metrics)
            .health(g.health)
            .docs(g.docs)
            .cors_origins(config.cors.origins.iter().cloned())
            .cors_allow_credentials(config.cors.allow_credentials)
            .cors_max_age(config.cors.max_age.0)
            .rate_limits(RateLimits {
                per_ip: quota(&config.rate_limit.per_ip)?,
                per_user: quota(&config.rate_limit.per_user)?,
                per_tenant: quota(&config.rate_limit.per_tenant)?,
                fail_mode: config.rate_limit.fail_mode,
            });
        if let Some(d) = &g.description {
            b = b.description(d);
        }
        if let Some(t) = &s.tls {
            b = b.tls(TlsSettings {
                cert: t.cert.clone(),
                key: t.key.clone(),
                tls13_only: t.tls13_only,
            });
        }
        Ok(b)
    }

    /// [`from_config`](Self::from_config) plus the configured state backend
    /// (memory, or Redis with `state.redis_url`) and a JSON-lines audit file
    /// (`audit.file`, relative paths under `data_dir`).
    pub async fn from_config_with_backends(
        config: &GatewayConfig,
        data_dir: &Path,
    ) -> Result<Self, GatewayError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let state = crate::backends::state_from_config(&config.state, clock.clone()).await?;
        let audit_path = if config.audit.file.is_absolute() {
            config.audit.file.clone()
        } else {
            data_dir.join(&config.audit.file)
        };
        let audit =
            JsonLinesAuditSink::open(&audit_path).map_err(|source| GatewayError::Audit {
                path: audit_path.clone(),
                source,
            })?;
        let audit = RetainingAuditSink::new(audit, config.audit.recent_events);
        let recent = audit.recent().clone();
        let audit: Arc<dyn AuditSink> = Arc::new(audit);
        let mut builder = Self::from_config(config)?
            .clock(clock.clone())
            .state(state.clone())
            .audit(audit.clone());
        builder.recent_audit = Some(recent);
        if let Some(spec) = &config.access {
            let access =
                crate::access_config::from_config(spec, Some(audit.clone()), clock).await?;
            builder = builder.access_control(access);
        }
        if !config.tenants.is_empty() {
            let registry = kailash_tenancy::registry::StaticTenantRegistry::new(
                config.tenants.clone(),
                state.clone(),
            )
            .map_err(|e| GatewayError::Tenancy(e.to_string()))?;
            builder = builder.tenancy(
                Arc::new(registry),
                TenancySettings {
                    header: config.tenancy.header,
                    subdomain_base: config.tenancy.subdomain_base.clone(),
                    custom_domains: config.tenancy.custom_domains,
                },
            );
        }
        if let Some(section) = &config.auth {
            let service =
                crate::backends::auth_from_config(section, &config.users, data_dir, state, audit)?;
            builder = builder.authentication(service);
            if let Some(cookie) = &section.cookie {
                builder = builder.auth_cookie(cookie);
            }
        }
        Ok(builder)
    }

    /// OpenAPI `info.title`.
    pub fn title(mut self, title: &str) -> Self {
        title.clone_into(&mut self.title);
        self
    }

    /// OpenAPI `info.version`.
    pub fn version(mut self, version: &str) -> Self {
        version.clone_into(&mut self.version);
        self
    }

    /// OpenAPI `info.description`.
    pub fn description(mut self, description: &str) -> Self {
        self.description = Some(description.to_owned());
        self
    }

    /// Address [`Gateway::run`] binds.
    pub fn listen(mut self, addr: std::net::SocketAddr) -> Self {
        self.server.listen = addr;
        self
    }

    /// Most concurrent connections; excess ones are refused at once.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.server.max_connections = n;
        self
    }

    /// Largest request head in bytes (≥ 8192); larger answers 431.
    pub fn max_header_bytes(mut self, n: usize) -> Self {
        self.server.max_header_bytes = n;
        self
    }

    /// Most request headers; more answers 431.
    pub fn max_headers(mut self, n: usize) -> Self {
        self.server.max_headers = n;
        self
    }

    /// Time allowed to receive a request head (slowloris defence).
    pub fn header_read_timeout(mut self, d: Duration) -> Self {
        self.server.header_read_timeout = d;
        self
    }

    /// How long in-flight requests may finish after a shutdown signal.
    pub fn shutdown_grace(mut self, d: Duration) -> Self {
        self.server.shutdown_grace = d;
        self
    }

    /// Serves HTTPS with these PEM files.
    pub fn tls(mut self, tls: TlsSettings) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Longest a request may take; then 504 problem+json.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Largest request body in bytes; larger answers 413.
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// Negotiated zstd/br/gzip response compression (default on).
    pub fn compression(mut self, on: bool) -> Self {
        self.compression = on;
        self
    }

    /// A tracing span and log line per request (default on).
    pub fn tracing(mut self, on: bool) -> Self {
        self.tracing = on;
        self
    }

    /// RED metrics and `GET /metrics` (default on).
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// `GET /health/live` and `GET /health/ready` (default on).
    pub fn health(mut self, on: bool) -> Self {
        self.health = on;
        self
    }

    /// `GET /openapi.json` and `GET /docs` (default on).
    pub fn docs(mut self, on: bool) -> Self {
        self.docs = on;
        self
    }

    /// Origins allowed by CORS (`https://app.example.com`, or `*`). None
    /// (the default) means no CORS layer at all.
    pub fn cors_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cors_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Allows credentialed CORS requests (explicit origins only).
    pub fn cors_allow_credentials(mut self, on: bool) -> Self {
        self.cors_credentials = on;
        self
    }

    /// Preflight cache time.
    pub fn cors_max_age(mut self, d: Duration) -> Self {
        self.cors_max_age = d;
        self
    }

    /// Proxies whose `X-Forwarded-For` entries are believed.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// When an incoming `X-Request-Id` is kept.
    pub fn incoming_request_id(mut self, policy: IncomingRequestId) -> Self {
        self.incoming_request_id = policy;
        self
    }

    /// Also accept access tokens from this cookie (with [`authentication`](Self::authentication)).
    pub fn auth_cookie(mut self, name: &str) -> Self {
        self.auth_cookie = Some(name.to_owned());
        self
    }

    /// Rate limits per IP, user and tenant.
    pub fn rate_limits(mut self, limits: RateLimits) -> Self {
        self.rate_limits = limits;
        self
    }

    /// The shared state backend (default: in memory).
    pub fn state(mut self, state: SharedState) -> Self {
        self.state = Some(state);
        self
    }

    /// The clock for the default state backend and request timestamps.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Where audit events go; flushed on shutdown and checked by readiness.
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// Adds a check that must pass for `/health/ready` to answer 200.
    pub fn required_check(mut self, name: &str, check: impl HealthCheck) -> Self {
        self.health_checks = self.health_checks.required(name, check);
        self
    }

    /// Adds a check reported by `/health/ready` without gating it.
    pub fn optional_check(mut self, name: &str, check: impl HealthCheck) -> Self {
        self.health_checks = self.health_checks.optional(name, check);
        self
    }

    /// Your application routes (merged; may be called more than once).
    pub fn routes(mut self, router: Router) -> Self {
        self.routes = std::mem::take(&mut self.routes).merge(router);
        self
    }

    /// The OpenAPI description of your routes, merged into `/openapi.json`.
    pub fn openapi(mut self, doc: utoipa::openapi::OpenApi) -> Self {
        match &mut self.openapi {
            Some(existing) => existing.merge(doc),
            None => self.openapi = Some(doc),
        }
        self
    }

    /// The layer that authenticates requests and inserts a
    /// [`Principal`](kailash_core::Principal) (for example kailash-auth's
    /// `JwtAuthLayer`). It runs after the per-IP rate limit and before the
    /// per-user and per-tenant limits, on your routes only (not on health,
    /// metrics or docs).
    pub fn principal_layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: tower::Service<http::Request<axum::body::Body>, Error = std::convert::Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<http::Request<axum::body::Body>>>::Response:
            axum::response::IntoResponse + 'static,
        <L::Service as tower::Service<http::Request<axum::body::Body>>>::Future: Send + 'static,
    {
        self.principal_layer = Some(Box::new(move |router: Router| router.layer(layer)));
        self
    }

    /// Authentication with kailash-auth: a `JwtAuthLayer` (verified-token
    /// cache, session check, audited failures) in the principal slot, the
    /// `/auth/*` and `/.well-known/jwks.json` routes, and their OpenAPI
    /// paths. Excludes [`principal_layer`](Self::principal_layer).
    pub fn authentication(mut self, service: kailash_auth::service::AuthService) -> Self {
        self.auth = Some(service);
        self
    }

    /// Multi-tenancy with kailash-tenancy: a `TenantLayer` after
    /// authentication (tenant from the token; unknown, inactive, mismatched
    /// or over-quota requests refused), inactive tenants refused at login
    /// and refresh, and `GET /api/tenant/usage`. Needs [`authentication`](Self::authentication).
    pub fn tenancy(mut self, registry: Arc<dyn TenantRegistry>, settings: TenancySettings) -> Self {
        self.tenancy = Some((registry, settings));
        self
    }

    /// Access control with kailash-access: the [`AccessControl`] is put in
    /// every application request, so `RequirePermission` layers on your
    /// routes (and handlers calling [`AccessControl::check`]) find the
    /// policy in force. Needs [`authentication`](Self::authentication) or a
    /// [`principal_layer`](Self::principal_layer).
    pub fn access_control(mut self, access: AccessControl) -> Self {
        self.access = Some(access);
        self
    }

    /// The access control set so far (to build routes that check permissions).
    pub fn access_handle(&self) -> Option<&AccessControl> {
        self.access.as_ref()
    }

    /// The state backend set so far.
    pub fn state_handle(&self) -> Option<&SharedState> {
        self.state.as_ref()
    }

    /// The clock.
    pub fn clock_handle(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The tenant registry set so far (with [`tenancy`](Self::tenancy)).
    pub fn tenant_registry(&self) -> Option<&Arc<dyn TenantRegistry>> {
        self.tenancy.as_ref().map(|(registry, _)| registry)
    }

    /// The newest audit events kept in memory for queries (set by
    /// [`from_config_with_backends`](Self::from_config_with_backends)).
    pub fn recent_audit(&self) -> Option<&Arc<MemoryAuditSink>> {
        self.recent_audit.as_ref()
    }

    /// Validates everything and composes the stack.
    pub fn build(self) -> Result<Gateway, GatewayError> {
        if self.server.max_connections == 0 {
            return Err(GatewayError::Limit("max_connections must be at least 1"));
        }
        if self.server.max_header_bytes < 8192 {
            return Err(GatewayError::Limit(
                "max_header_bytes must be at least 8192",
            ));
        }
        if self.server.max_headers == 0 {
            return Err(GatewayError::Limit("max_headers must be at least 1"));
        }
        if self.request_timeout.is_zero() || self.server.header_read_timeout.is_zero() {
            return Err(GatewayError::Limit("timeouts must be positive"));
        }
        let mut this = self;
        if this.access.is_some() && this.auth.is_none() && this.principal_layer.is_none() {
            return Err(GatewayError::Auth(
                "access control needs authentication: permissions belong to principals".into(),
            ));
        }
        if this.tenancy.is_some() && this.auth.is_none() {
            return Err(GatewayError::Auth(
                "tenancy needs authentication: the tenant comes from the token".into(),
            ));
        }
        if let Some(mut service) = this.auth.take() {
            if let Some((registry, _)) = &this.tenancy {
                service = service.with_tenant_gate(Arc::new(RegistryGate(registry.clone())));
            }
            if this.principal_layer.is_some() {
                return Err(GatewayError::Auth(
                    "authentication and principal_layer both set; use one".into(),
                ));
            }
            let mut layer = kailash_auth::layer::JwtAuthLayer::new(service.access_verifier())
                .cache(service.token_cache())
                .session_check(Arc::new(service.sessions().clone()));
            for path in kailash_auth::http::PUBLIC_PATHS {
                layer = layer.public_path(path);
            }
            if let Some(cookie) = &this.auth_cookie {
                layer = layer.cookie(cookie.clone());
            }
            if let Some(audit) = &this.audit {
                layer = layer.audit(audit.clone());
            }
            this.principal_layer = Some(Box::new(move |router: Router| router.layer(layer)));
            this.routes =
                std::mem::take(&mut this.routes).merge(kailash_auth::http::router(service));
            let auth_doc: utoipa::openapi::OpenApi =
                serde_json::from_value(kailash_auth::http::openapi())
                    .map_err(|e| GatewayError::Auth(e.to_string()))?;
            this = this.openapi(auth_doc);
        }
        if this.tenancy.is_some() {
            let usage_doc: utoipa::openapi::OpenApi =
                serde_json::from_value(crate::usage::openapi())
                    .map_err(|e| GatewayError::Auth(e.to_string()))?;
            this = this.openapi(usage_doc);
        }
        this.build_composed()
    }

    fn build_composed(self) -> Result<Gateway, GatewayError> {
        if (self.rate_limits.per_user.is_some() || self.rate_limits.per_tenant.is_some())
            && self.principal_layer.is_none()
        {
            // Without a layer that inserts a Principal these limits could never apply.
            return Err(GatewayError::RateLimit(
                "per-user and per-tenant limits need an authentication layer (principal_layer)"
                    .into(),
            ));
        }
        let cors = cors_origins(&self.cors_origins, self.cors_credentials)?;
        let tls = self.tls.as_ref().map(tls::server_config).transpose()?;
        let state = self
            .state
            .clone()
            .unwrap_or_else(|| SharedState::memory(self.clock.clone()));

        // Readiness: the state backend (an in-memory one always answers) and,
        // when set, the audit sink.
        let mut health = self.health_checks.clone();
        let s = state.clone();
        health = health.required(
            "state",
            kailash_monitoring::health::from_fn(move || {
                let s = s.clone();
                async move { s.kv.ping().await.map_err(|e| e.to_string()) }
            }),
        );
        if let Some(audit) = &self.audit {
            let a = audit.clone();
            health = health.required(
                "audit",
                kailash_monitoring::health::from_fn(move || {
                    let a = a.clone();
                    async move { a.health().map_err(|e| e.to_string()) }
                }),
            );
        }

        // Application routes: rate limits, authentication and tenancy apply here only.
        let mut routes = self.routes;
        let tenant_layer = match &self.tenancy {
            Some((registry, settings)) => {
                let quotas = kailash_tenancy::quota::Quotas::new(state.clone());
                routes = routes.merge(crate::usage::usage_route(quotas.clone()));
                let mut layer = kailash_tenancy::layer::TenantLayer::builder(registry.clone())
                    .quotas(quotas)
                    .header(settings.header)
                    .custom_domains(settings.custom_domains);
                if let Some(base) = &settings.subdomain_base {
                    layer = layer.subdomains(base.clone());
                }
                for path in kailash_auth::http::PUBLIC_PATHS {
                    layer = layer.public_path(path);
                }
                if let Some(audit) = &self.audit {
                    layer = layer.audit(audit.clone());
                }
                Some(layer.build())
            }
            None => None,
        };
        let mut app = routes.fallback(|| async { Problem::not_found() });
        let limits = self.rate_limits;
        if limits.per_user.is_some() || limits.per_tenant.is_some() {
            let mut layer = RateLimitLayer::new(state.rate.clone()).fail_mode(limits.fail_mode);
            if let Some(q) = limits.per_user {
                layer = layer.per_user(q);
            }
            if let Some(q) = limits.per_tenant {
                layer = layer.per_tenant(q);
            }
            app = app.layer(layer);
        }
        // After authentication (it needs the principal), before the per-user
        // and per-tenant limits (they charge only requests it admits).
        if let Some(layer) = tenant_layer {
            app = app.layer(layer);
        }
        if let Some(principal_layer) = self.principal_layer {
            app = principal_layer(app);
        }
        if let Some(q) = limits.per_ip {
            app = app.layer(
                RateLimitLayer::new(state.rate.clone())
                    .per_ip(q)
                    .fail_mode(limits.fail_mode),
            );
        }

        // Operational routes.
        let metrics = self.metrics.then(MetricsRegistry::new);
        let mut ops = Router::new();
        if self.health {
            ops = ops.merge(ops::health_routes(health));
        }
        if let Some(registry) = &metrics {
            ops = ops.merge(ops::metrics_route(registry.clone()));
        }
        if self.docs {
            let doc = ops::openapi_document(
                &self.title,
                &self.version,
                self.description.as_deref(),
                self.health,
                metrics.is_some(),
                self.openapi.clone(),
            );
            ops = ops.merge(ops::docs_routes(doc));
        }

        // Route-level layers run after routing (metrics needs the route
        // template) and are applied in one `Router::layer` call: every call
        // adds a boxed service level that is cloned on each request.
        let route_stack = ServiceBuilder::new()
            .option_layer(metrics.clone().map(MetricsLayer::new))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::GATEWAY_TIMEOUT,
                self.request_timeout,
            ))
            .layer(RequestBodyLimitLayer::new(self.max_body_bytes))
            .layer(DefaultBodyLimit::disable());
        // `with_state` turns handlers into services once, not per request.
        let routes: Router = app.merge(ops).layer(route_stack).with_state(());

        // Outer layers wrap the router once, as one concrete stack. Optional
        // layers convert their body to axum's so both arms of the option agree.
        let cors = cors.map(|origins| {
            let layer = CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                ])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    HeaderName::from_static("x-request-id"),
                    HeaderName::from_static("x-tenant-id"),
                ])
                .expose_headers([
                    HeaderName::from_static("x-request-id"),
                    header::RETRY_AFTER,
                    header::WWW_AUTHENTICATE,
                ])
                .max_age(self.cors_max_age);
            if self.cors_credentials {
                layer.allow_credentials(true)
            } else {
                layer
            }
        });
        let trace = self.tracing.then(|| {
            TraceLayer::new_for_http()
                .make_span_with(trace::make_span)
                .on_request(())
                .on_response(trace::on_response)
                .on_failure(())
        });
        let compression = self
            .compression
            .then(|| CompressionLayer::new().quality(CompressionLevel::Precise(4)));
        let service = ServiceBuilder::new()
            .layer(ProblemJsonLayer::new())
            .layer(
                RequestContextLayer::new()
                    .trusted_proxies(self.trusted_proxies)
                    .incoming_request_id(self.incoming_request_id)
                    .clock(self.clock.clone()),
            )
            .option_layer(trace.map(|t| {
                ServiceBuilder::new()
                    .map_response(into_axum)
                    .layer(t)
                    .into_inner()
            }))
            .option_layer(cors.map(|c| {
                ServiceBuilder::new()
                    .map_response(into_axum)
                    .layer(c)
                    .into_inner()
            }))
            .option_layer(compression.map(|c| {
                ServiceBuilder::new()
                    .map_response(into_axum)
                    .layer(c)
                    .into_inner()
            }))
            .option_layer(self.access.map(axum::Extension))
            .service(routes);
        let handler: Handler = Arc::new(move |req| {
            let service = service.clone();
            Box::pin(async move {
                let Ok(response) = service.oneshot(req).await;
                into_axum(response)
            })
        });

        Ok(Gateway::new(
            handler,
            self.server,
            tls,
            self.audit,
            state,
            self.clock,
        ))
    }
}

/// An audit event about the gateway itself.
pub(crate) fn lifecycle_event(
    action: &'static str,
    resource: String,
) -> kailash_core::audit::AuditEvent {
    kailash_core::audit::AuditEvent::new(action, AuditDecision::Success).resource(resource)
}
