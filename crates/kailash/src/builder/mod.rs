//! [`GatewayBuilder`]: every option of the gateway, with secure defaults.
//!
//! The builder only collects and checks settings; [`crate::stack`] composes
//! them into the layered service, and [`from_config`] maps a config file
//! onto the setters.

mod from_config;
mod settings;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::Route;
use kailash_access::AccessControl;
use kailash_core::audit::AuditSink;
use kailash_core::clock::{Clock, SystemClock};
use kailash_core::context::{IncomingRequestId, TrustedProxies};
use kailash_core::state::SharedState;
use kailash_monitoring::health::{HealthCheck, HealthPolicy, HealthRegistry};
use kailash_tenancy::registry::TenantRegistry;
use tower::Layer;

pub use settings::{RateLimits, TenancySettings, TlsSettings};

use crate::config::GatewayConfig;
use crate::server::ServerSettings;
use crate::{Gateway, GatewayError};

/// A layer applied to the application routes, type-erased (the principal slot).
pub(crate) type RouterLayerFn = Box<dyn FnOnce(Router) -> Router + Send>;

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
    pub(crate) tls: Option<TlsSettings>,
    pub(crate) request_timeout: Duration,
    pub(crate) max_body_bytes: usize,
    pub(crate) json_limits: kailash_core::json_limits::JsonLimits,
    pub(crate) compression: bool,
    pub(crate) tracing: bool,
    pub(crate) metrics: bool,
    pub(crate) health: bool,
    pub(crate) docs: bool,
    pub(crate) cors_origins: Vec<String>,
    pub(crate) ip_allow: kailash_core::ip_allow::IpAllowLayer,
    pub(crate) https: Option<kailash_core::transport::HttpsPolicyLayer>,
    pub(crate) security_headers: Option<kailash_core::transport::SecurityHeaders>,
    pub(crate) dlp: Option<kailash_core::dlp::DlpLayer>,
    pub(crate) response_cache: Option<kailash_core::cache::ResponseCacheLayer>,
    pub(crate) outbound: kailash_core::outbound::ConnectionPool,
    pub(crate) field_keys: Option<(Arc<kailash_core::field_encryption::FieldKeys>, Duration)>,
    pub(crate) field_targets: Vec<Arc<dyn kailash_core::field_encryption::Reencrypt>>,
    pub(crate) cors_credentials: bool,
    pub(crate) cors_max_age: Duration,
    pub(crate) trusted_proxies: TrustedProxies,
    pub(crate) incoming_request_id: IncomingRequestId,
    pub(crate) rate_limits: RateLimits,
    pub(crate) state: Option<SharedState>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) audit: Option<Arc<dyn AuditSink>>,
    pub(crate) health_checks: HealthRegistry,
    pub(crate) health_policy: HealthPolicy,
    pub(crate) workflow_failure_threshold: f64,
    pub(crate) max_active_sessions: u64,
    pub(crate) routes: Router,
    pub(crate) openapi: Vec<utoipa::openapi::OpenApi>,
    pub(crate) principal_layer: Option<RouterLayerFn>,
    pub(crate) auth: Option<kailash_auth::service::AuthService>,
    pub(crate) auth_cookie: Option<String>,
    pub(crate) oidc: kailash_auth::oidc::OidcProviders,
    #[cfg(feature = "saml")]
    pub(crate) saml: Option<Arc<kailash_auth::saml::SamlServiceProvider>>,
    pub(crate) tenancy: Option<(Arc<dyn TenantRegistry>, TenancySettings)>,
    pub(crate) access: Option<AccessControl>,
    pub(crate) audit_query: Option<Arc<dyn kailash_core::audit::AuditQuery>>,
    pub(crate) audit_erasure: Option<Arc<dyn kailash_core::audit::AuditErasure>>,
    #[cfg(feature = "postgres")]
    pub(crate) databases: Option<kailash_postgres::routing::Databases>,
    #[cfg(feature = "postgres")]
    pub(crate) tenant_admin: Option<kailash_postgres::tenants::PgTenantRegistry>,
    pub(crate) realtime: Option<kailash_realtime::RealtimeConfig>,
    pub(crate) runtime: Option<kailash_runtime::runtime::AccessControlledRuntime>,
    /// Where the realtime hub goes once built, for the runtime's events.
    pub(crate) runtime_events: Option<Arc<std::sync::OnceLock<kailash_realtime::Hub>>>,
    pub(crate) alerting: AlertingSetup,
    pub(crate) ops: crate::ops_access::OpsSettings,
    /// Where [`observe_runs`](Self::observe_runs) adds run observers.
    pub(crate) run_observers: Option<crate::runtime_hooks::RunObservers>,
    /// The anomaly detector whose request layer wraps the application
    /// routes (inside authentication), if requests are observed.
    pub(crate) anomaly_requests: Option<kailash_monitoring::anomaly::AnomalyDetector>,
    /// Usage reports: how they are sent, and when.
    pub(crate) billing: Option<(
        Arc<dyn kailash_tenancy::metering::ReportDelivery>,
        crate::billing::BillingSettings,
    )>,
}

/// What the builder collected for alerting.
#[derive(Default)]
pub(crate) struct AlertingSetup {
    pub(crate) rules: Vec<kailash_monitoring::alert::AlertRule>,
    pub(crate) routes: Vec<kailash_monitoring::alert::Route>,
    pub(crate) policy: kailash_monitoring::alert::AlertPolicy,
    pub(crate) source: Option<String>,
    /// Application sources, with the signal names each reports.
    pub(crate) sources: Vec<(
        Vec<String>,
        Arc<dyn kailash_monitoring::signal::SignalSource>,
    )>,
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
            json_limits: defaults.gateway.json_limits,
            compression: true,
            tracing: true,
            metrics: true,
            health: true,
            docs: true,
            cors_origins: Vec::new(),
            ip_allow: kailash_core::ip_allow::IpAllowLayer::new(),
            // HSTS for a year on secure responses; plain HTTP still served.
            https: kailash_core::transport::HttpsPolicyLayer::hsts_only(
                kailash_core::transport::Hsts::new(kailash_core::transport::PRELOAD_MIN_AGE),
            )
            .ok(),
            security_headers: Some(kailash_core::transport::SecurityHeaders::default()),
            dlp: None,
            response_cache: None,
            outbound: kailash_core::outbound::ConnectionPool::new(defaults.outbound.pool()),
            field_keys: None,
            field_targets: Vec::new(),
            cors_credentials: false,
            cors_max_age: defaults.cors.max_age.0,
            trusted_proxies: TrustedProxies::none(),
            incoming_request_id: IncomingRequestId::default(),
            rate_limits: RateLimits::default(),
            state: None,
            clock: Arc::new(SystemClock),
            audit: None,
            health_checks: HealthRegistry::new().timeout(defaults.health.timeout.0),
            health_policy: HealthPolicy {
                interval: defaults.health.check_interval.0,
                failure_threshold: defaults.health.failure_threshold,
                recovery_threshold: defaults.health.recovery_threshold,
            },
            workflow_failure_threshold: defaults.health.workflow_failure_threshold,
            max_active_sessions: defaults.health.max_active_sessions,
            routes: Router::new(),
            openapi: Vec::new(),
            principal_layer: None,
            auth: None,
            auth_cookie: None,
            oidc: kailash_auth::oidc::OidcProviders::new(),
            #[cfg(feature = "saml")]
            saml: None,
            tenancy: None,
            access: None,
            audit_query: None,
            audit_erasure: None,
            #[cfg(feature = "postgres")]
            databases: None,
            #[cfg(feature = "postgres")]
            tenant_admin: None,
            realtime: None,
            runtime: None,
            runtime_events: None,
            alerting: AlertingSetup::default(),
            ops: crate::ops_access::OpsSettings::default(),
            run_observers: None,
            anomaly_requests: None,
            billing: None,
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

impl GatewayBuilder {
    /// A builder with the defaults of an empty config file.
    pub fn new() -> Self {
        Self::default()
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

    /// Most connections one peer address holds at once (IPv6 peers by
    /// their /64; default 256); excess ones are refused at once (429
    /// problem+json on plain HTTP, closed before the handshake on TLS).
    /// Peers in [`trusted_proxies`](Self::trusted_proxies) are exempt.
    pub fn max_connections_per_ip(mut self, n: usize) -> Self {
        self.server.max_connections_per_ip = n;
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

    /// Time allowed to receive a request head (slowloris defence): the
    /// first one from the moment the client connects (TLS handshake
    /// included), later ones from their first byte.
    pub fn header_read_timeout(mut self, d: Duration) -> Self {
        self.server.header_read_timeout = d;
        self
    }

    /// How long a connection with no request in flight stays open (HTTP/1
    /// keep-alive between requests, HTTP/2 without open streams; default 30 s).
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.server.idle_timeout = d;
        self
    }

    /// HTTP/2 keep-alive: a PING after `interval` without frames from the
    /// client; no acknowledgement within `timeout` closes the connection
    /// (defaults 20 s and 10 s).
    pub fn http2_keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.server.http2_keepalive_interval = interval;
        self.server.http2_keepalive_timeout = timeout;
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

    /// The shape every JSON body read by the schema-enforcing extractor
    /// (`ValidJson`) must keep (`[gateway.json_limits]`), checked before it
    /// is parsed; default [`JsonLimits::default`](kailash_core::json_limits::JsonLimits).
    pub fn json_limits(mut self, limits: kailash_core::json_limits::JsonLimits) -> Self {
        self.json_limits = limits;
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

    /// IP allow-lists checked on every request of the main listener before
    /// anything else (after the client address is resolved): a global list
    /// and/or lists per path prefix (`[security]`). The layer's audit sink
    /// is set to the gateway's when it has none. The operations listener
    /// (`ops_listen`) is not behind it.
    pub fn ip_allow(mut self, layer: kailash_core::ip_allow::IpAllowLayer) -> Self {
        self.ip_allow = layer;
        self
    }

    /// The transport policy (`[security] require_ssl`, `hsts…`): HTTPS
    /// required on the main listener and/or HSTS on its secure responses.
    /// Default: HSTS (`max-age` one year) on secure responses only, plain
    /// HTTP served. `None`: neither. Whether a request is secure is the
    /// request context's ([`RequestContext::is_secure`](kailash_core::context::RequestContext::is_secure)):
    /// this server's TLS, or a trusted proxy's `X-Forwarded-Proto`.
    pub fn https_policy(
        mut self,
        layer: Option<kailash_core::transport::HttpsPolicyLayer>,
    ) -> Self {
        self.https = layer;
        self
    }

    /// The security headers on every response of the main listener that
    /// does not set its own (`[security] headers`; default
    /// [`SecurityHeaders::default`](kailash_core::transport::SecurityHeaders)).
    /// `None`: none.
    pub fn security_headers(
        mut self,
        headers: Option<kailash_core::transport::SecurityHeaders>,
    ) -> Self {
        self.security_headers = headers;
        self
    }

    /// Response DLP (`[[security.dlp]]`): on the application routes, inside
    /// authentication (it reads the caller's clearance), redacting or
    /// blocking responses that carry personal data. `None` (the default):
    /// no inspection.
    pub fn dlp(mut self, layer: Option<kailash_core::dlp::DlpLayer>) -> Self {
        self.dlp = layer.filter(|l| !l.is_empty());
        self
    }

    /// Field-level encryption (`[security.field_encryption]`): the
    /// authentication service seals sessions' client addresses and TOTP
    /// secrets with `keys`, and while the gateway serves, a maintenance
    /// round every `every` rotates the data key when due, re-wraps keys
    /// after a KEK rotation and re-encrypts what older keys sealed
    /// ([`FieldKeys::maintain`](kailash_core::field_encryption::FieldKeys::maintain)).
    /// Pass the same `keys` to your own [`Encrypted`](kailash_core::field_encryption::Encrypted)
    /// fields ([`Gateway::field_keys`] hands them back) and register your
    /// records with [`field_reencryption`](Self::field_reencryption):
    /// after a rotation, a data key is deleted once a complete pass over
    /// every registered target no longer needs it.
    pub fn field_encryption(
        mut self,
        keys: Arc<kailash_core::field_encryption::FieldKeys>,
        every: Duration,
    ) -> Self {
        self.field_keys = Some((keys, every));
        self
    }

    /// Your own records sealed with the [`field_encryption`](Self::field_encryption)
    /// keys, re-encrypted by the same maintenance rounds. A value sealed
    /// with those keys in records that are not registered becomes
    /// unreadable once its data key is retired.
    pub fn field_reencryption(
        mut self,
        target: Arc<dyn kailash_core::field_encryption::Reencrypt>,
    ) -> Self {
        self.field_targets.push(target);
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

    /// Proxies whose `X-Forwarded-For` entries are believed; they are also
    /// exempt from [`max_connections_per_ip`](Self::max_connections_per_ip).
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.server.trusted_proxies = proxies.clone();
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

    /// Signs users in with these OpenID Connect providers (with
    /// [`authentication`](Self::authentication)): serves
    /// `GET /auth/oidc/{provider}/login` and `.../callback`, public to the
    /// authentication layer, in the OpenAPI document.
    pub fn oidc(mut self, providers: kailash_auth::oidc::OidcProviders) -> Self {
        self.oidc = providers;
        self
    }

    /// Signs users in with this SAML 2.0 identity provider (with
    /// [`authentication`](Self::authentication); feature `saml`): serves
    /// `GET /auth/saml/metadata`, `GET /auth/saml/login` and
    /// `POST /auth/saml/acs`, public to the authentication layer, in the
    /// OpenAPI document.
    #[cfg(feature = "saml")]
    pub fn saml(mut self, provider: Arc<kailash_auth::saml::SamlServiceProvider>) -> Self {
        self.saml = Some(provider);
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

    /// How often the health checks run in the background and how many
    /// consecutive results flip a check (default: every 30 s, failing after
    /// 3 failures, passing again after 2 successes).
    pub fn health_policy(mut self, policy: HealthPolicy) -> Self {
        self.health_policy = policy;
        self
    }

    /// Longest one health check may take (default 5 s); a slower one fails.
    pub fn health_check_timeout(mut self, timeout: Duration) -> Self {
        self.health_checks = self.health_checks.timeout(timeout);
        self
    }

    /// With [`runtime`](Self::runtime): the failure ratio of the runs
    /// ended over one check interval above which the (non-readiness)
    /// `workflow_failure_rate` check fails (default 0.05).
    pub fn workflow_failure_threshold(mut self, ratio: f64) -> Self {
        self.workflow_failure_threshold = ratio;
        self
    }

    /// With [`authentication`](Self::authentication): the number of live
    /// sessions (every instance together) above which the (non-readiness)
    /// `active_sessions` check fails (default 100 000).
    pub fn max_active_sessions(mut self, sessions: u64) -> Self {
        self.max_active_sessions = sessions;
        self
    }

    /// Adds an alert rule (see [`kailash_monitoring::alert`]). Its signal
    /// must be one the gateway reports — `<check>_health` for every health
    /// check, the value of a measuring check under its name
    /// (`memory_usage`, `disk_usage`, `workflow_failure_rate`,
    /// `active_sessions`) — or one
    /// declared with [`alert_signals`](Self::alert_signals); the build
    /// refuses a rule nobody could make fire.
    pub fn alert_rule(mut self, rule: kailash_monitoring::alert::AlertRule) -> Self {
        self.alerting.rules.push(rule);
        self
    }

    /// Adds a notification channel for the alert rules.
    pub fn alert_route(mut self, route: kailash_monitoring::alert::Route) -> Self {
        self.alerting.routes.push(route);
        self
    }

    /// How often rules are evaluated, repeats, retries and queue bounds.
    pub fn alert_policy(mut self, policy: kailash_monitoring::alert::AlertPolicy) -> Self {
        self.alerting.policy = policy;
        self
    }

    /// The service notifications name (default: the [`title`](Self::title)).
    pub fn alert_source(mut self, source: &str) -> Self {
        self.alerting.source = Some(source.to_owned());
        self
    }

    /// Adds an application's source of signals for alert rules, with the
    /// names it reports.
    pub fn alert_signals(
        mut self,
        names: &[&str],
        source: impl kailash_monitoring::signal::SignalSource,
    ) -> Self {
        self.alerting.sources.push((
            names.iter().map(|n| (*n).to_owned()).collect(),
            Arc::new(source),
        ));
        self
    }

    /// Anomaly detection: the detector's signals for alert rules
    /// (`security_anomalies`, …) and, with `observe_requests`, its request
    /// layer on the application routes (after authentication, so requests
    /// count per client IP and per user). Its audit input is the
    /// [`AnomalyAuditSink`](kailash_monitoring::anomaly::AnomalyAuditSink)
    /// you give to [`audit`](Self::audit) and to the services that audit;
    /// start the detector ([`AnomalyDetector::start`](kailash_monitoring::anomaly::AnomalyDetector::start)).
    pub fn anomaly_detection(
        mut self,
        detector: kailash_monitoring::anomaly::AnomalyDetector,
        observe_requests: bool,
    ) -> Self {
        self = self.alert_signals(
            &kailash_monitoring::anomaly::AnomalySignals::NAMES,
            detector.signals(),
        );
        self.anomaly_requests = observe_requests.then_some(detector);
        self
    }

    /// Adds a check that must pass for `/health/ready` to answer 200.
    pub fn required_check(mut self, name: &str, check: impl HealthCheck) -> Self {
        self.health_checks = self.health_checks.required(name, check);
        self
    }

    /// The names of the health checks registered so far (built in, from
    /// the config's backends, and your own).
    pub fn health_check_names(&self) -> Vec<&str> {
        self.health_checks.names()
    }

    /// Adds a check reported by `/health/ready` without gating it (a
    /// failure makes the report `degraded`, the instance stays ready).
    pub fn optional_check(mut self, name: &str, check: impl HealthCheck) -> Self {
        self.health_checks = self.health_checks.optional(name, check);
        self
    }

    /// Your application routes (merged; may be called more than once).
    pub fn routes(mut self, router: Router) -> Self {
        self.routes = std::mem::take(&mut self.routes).merge(router);
        self
    }

    /// The OpenAPI description of your routes, merged into `/openapi.json`
    /// (may be called more than once). Derive it from your types with
    /// utoipa (`#[derive(OpenApi)]`, `#[utoipa::path]`) and take request
    /// bodies and parameters with `kailash::schema::{ValidJson, ValidQuery,
    /// ValidPath}`, so what the document publishes is what your handlers
    /// enforce (see docs/api-contract.md).
    ///
    /// [`build`](Self::build) refuses two documents that describe the same
    /// operation, or two different schemas under one name; it adds to
    /// every operation the statuses the gateway's own layers answer with.
    pub fn openapi(mut self, doc: utoipa::openapi::OpenApi) -> Self {
        self.openapi.push(doc);
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

    /// Multi-tenancy with kailash-tenancy: a `TenancyLayer` after
    /// authentication (tenant from the token; unknown, inactive, mismatched
    /// or over-quota requests refused), inactive tenants refused at login
    /// and refresh, and `GET /api/tenant/usage`. Needs [`authentication`](Self::authentication).
    pub fn tenancy(mut self, registry: Arc<dyn TenantRegistry>, settings: TenancySettings) -> Self {
        self.tenancy = Some((registry, settings));
        self
    }

    /// Billing metering (see [`crate::billing`]): each tenant's usage per
    /// UTC day (API calls; the runs of the runtime built from `[runtime]`)
    /// reported through `delivery` once the day is over and
    /// `settings.settle` has passed, every `settings.interval`, and shown
    /// under `billing` at `GET /api/tenant/usage`. Needs
    /// [`tenancy`](Self::tenancy). `delivery` is usually a
    /// [`WebhookDelivery`](crate::billing::WebhookDelivery).
    pub fn billing(
        mut self,
        delivery: Arc<dyn kailash_tenancy::metering::ReportDelivery>,
        settings: crate::billing::BillingSettings,
    ) -> Self {
        self.billing = Some((delivery, settings));
        self
    }

    /// Access control with kailash-access: the [`AccessControl`] is put in
    /// every application request, so `RequirePermissionLayer` layers on your
    /// routes (and handlers calling [`AccessControl::check`]) find the
    /// policy in force. Needs [`authentication`](Self::authentication) or a
    /// [`principal_layer`](Self::principal_layer).
    pub fn access_control(mut self, access: AccessControl) -> Self {
        self.access = Some(access);
        self
    }

    /// Serves authenticated realtime endpoints with kailash-realtime: the
    /// WebSocket at `config.ws_path` and server-sent events at
    /// `config.sse_path` (outside the authentication layer: they
    /// authenticate with the same verifier and session check themselves,
    /// answering a bad token with close code 4001), and, with
    /// [`access_control`](Self::access_control), `POST /api/events`
    /// (`system:configure`, into the caller's own tenant). Every
    /// application request carries the
    /// [`Hub`](kailash_realtime::Hub) as an `axum::Extension`, for handlers
    /// that publish events. `config.origins` left unset takes the
    /// [CORS origins](Self::cors_origins). Needs
    /// [`authentication`](Self::authentication).
    pub fn realtime(mut self, config: kailash_realtime::RealtimeConfig) -> Self {
        self.realtime = Some(config);
        self
    }

    /// Serves the execution API of `runtime` (agent sessions and workflow
    /// runs: `/api/sessions…`, `/api/executions…`, see
    /// [`kailash_runtime::http`]) behind authentication and tenancy, adds
    /// its OpenAPI paths, and at shutdown records the runs still in flight
    /// as `abandoned` before the audit trail is flushed. Needs
    /// [`authentication`](Self::authentication) and
    /// [`tenancy`](Self::tenancy). [`from_config_with_backends`](Self::from_config_with_backends)
    /// builds one from `[runtime]`, sending run events to the realtime hub
    /// (channel `executions`).
    pub fn runtime(mut self, runtime: kailash_runtime::runtime::AccessControlledRuntime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// A response cache for your routes (`None`: none, the default).
    ///
    /// The gateway does not wrap routes in it by itself: a stored answer
    /// skips everything inside the cache, so it must sit inside each
    /// route's access check. Take the layer back with
    /// [`response_cache_layer`](Self::response_cache_layer) and add it to
    /// the routes whose answers may be stored, *before* their
    /// `RequirePermissionLayer` (axum's later `.layer` wraps the earlier):
    /// authentication, the session check, tenancy, rate limits and the
    /// access decision (audited) then run on every request, hit or miss,
    /// so a logout or a revoked role stops it at once. With
    /// [`access_control`](Self::access_control) the entries are keyed by
    /// the policy's generation: a policy reload starts afresh. See
    /// [`kailash_core::cache`] for what is stored and for whom.
    pub fn response_cache(
        mut self,
        layer: Option<kailash_core::cache::ResponseCacheLayer>,
    ) -> Self {
        self.response_cache = layer;
        self
    }

    /// The connection pool the gateway's outbound callers it builds from
    /// configuration draw from — alert channels, external-API health
    /// checks, billing, OpenID Connect providers and workflow
    /// integrations (`[outbound]`; [`from_config`](Self::from_config) sets
    /// it). Set it before those are added; callers added by hand take it
    /// from [`outbound_pool_handle`](Self::outbound_pool_handle).
    pub fn outbound_pool(mut self, pool: kailash_core::outbound::ConnectionPool) -> Self {
        self.outbound = pool;
        self
    }

    /// The outbound connection pool (see
    /// [`outbound_pool`](Self::outbound_pool)), for outbound callers of
    /// your own (`HttpsJwksSource::pool`, `Telemetry::from_config_with_pool`,
    /// `Target::with_pool`).
    pub fn outbound_pool_handle(&self) -> &kailash_core::outbound::ConnectionPool {
        &self.outbound
    }

    /// The response cache set so far (with
    /// [`response_cache`](Self::response_cache)), to add to routes.
    pub fn response_cache_layer(&self) -> Option<&kailash_core::cache::ResponseCacheLayer> {
        self.response_cache.as_ref()
    }

    /// The workflow runtime set so far (with [`runtime`](Self::runtime)).
    pub fn runtime_handle(&self) -> Option<&kailash_runtime::runtime::AccessControlledRuntime> {
        self.runtime.as_ref()
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

    /// The audit sink set so far (with [`audit`](Self::audit)).
    pub fn audit_handle(&self) -> Option<&Arc<dyn AuditSink>> {
        self.audit.as_ref()
    }

    /// The trail's query side (set by
    /// [`from_config_with_backends`](Self::from_config_with_backends)): the
    /// newest events each instance keeps in memory with the file sink, the
    /// shared table with the PostgreSQL sink.
    pub fn audit_query(&self) -> Option<&Arc<dyn kailash_core::audit::AuditQuery>> {
        self.audit_query.as_ref()
    }

    /// `[database]`'s pools and routing (set by
    /// [`from_config_with_backends`](Self::from_config_with_backends) when
    /// `[database.primary]` is configured): give your handlers
    /// `databases().writer()`, `.reader()` or `.analytics()`.
    #[cfg(feature = "postgres")]
    pub fn databases(&self) -> Option<&kailash_postgres::routing::Databases> {
        self.databases.as_ref()
    }

    /// The trail's erasure side: set by
    /// [`from_config_with_backends`](Self::from_config_with_backends) when
    /// the PostgreSQL sink seals personal data
    /// (`audit.personal_data_keyring_*`), `None` otherwise (a trail that
    /// chains personal fields as written cannot erase them).
    pub fn audit_erasure(&self) -> Option<&Arc<dyn kailash_core::audit::AuditErasure>> {
        self.audit_erasure.as_ref()
    }

    /// Sets the trail that erases one person's personal fields (see
    /// [`audit_erasure`](Self::audit_erasure)).
    pub fn with_audit_erasure(
        mut self,
        erasure: Arc<dyn kailash_core::audit::AuditErasure>,
    ) -> Self {
        self.audit_erasure = Some(erasure);
        self
    }

    /// Sets the trail's query side (`GET /api/audit` of the reference
    /// deployment reads it).
    pub fn with_audit_query(mut self, query: Arc<dyn kailash_core::audit::AuditQuery>) -> Self {
        self.audit_query = Some(query);
        self
    }

    /// Validates everything and composes the stack.
    pub fn build(self) -> Result<Gateway, GatewayError> {
        crate::stack::compose(self)
    }
}
