//! The composition of the gateway's layers, in one place and one order:
//! outer layers (problem bodies, request context, tracing, CORS,
//! compression) around the router; route-level layers (metrics, timeout,
//! body limit) after routing; and on the application routes the per-IP
//! limit, authentication, tenancy and the per-user and per-tenant limits —
//! the last three deferred to one admission (`AdmitLayer`), so the state
//! backend is asked once per request after authentication.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use http::StatusCode;
use kailash_core::admission::AdmitLayer;
use kailash_core::context::SetRequestContextLayer;
use kailash_core::problem::{Problem, ProblemJsonLayer};
use kailash_core::rate_limit::{Limit, RateLimitLayer};
use kailash_core::state::SharedState;
use kailash_core::transport::SecurityHeaders;
use kailash_monitoring::metrics::{MetricsLayer, MetricsRegistry};
use tower::layer::util::Stack;
use tower::util::MapResponseLayer;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::server::Handler;
use crate::{Gateway, GatewayBuilder, GatewayError, ops, tls, trace};

/// Any response into axum's (boxing the body only when it is not already axum's).
fn into_axum<B>(response: http::Response<B>) -> Response
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    response.map(axum::body::Body::new)
}

/// `layer` (when switched on) followed by the conversion of its response
/// body to axum's, so an `option_layer` of it has one response type
/// whether it is on or off.
///
/// Measured (docs/performance.md, 2026-12-01): boxing here, once per
/// switchable layer, costs less than nesting the layers' bodies in one
/// enum and boxing once at the edge — the nested body is moved by value
/// through every layer's future.
fn switchable<L, B>(layer: Option<L>) -> Option<Stack<L, MapResponseLayer<IntoAxum<B>>>>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    layer.map(|layer| Stack::new(layer, MapResponseLayer::new(into_axum as IntoAxum<B>)))
}

/// A service behind one dynamic call: always ready, answering with axum's
/// response.
#[derive(Clone)]
struct Erased(Handler);

impl Erased {
    fn new<S, B>(service: S) -> Self
    where
        S: tower::Service<
                http::Request<axum::body::Body>,
                Response = http::Response<B>,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send,
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        Self(Arc::new(move |req| {
            let service = service.clone();
            Box::pin(async move {
                let Ok(response) = service.oneshot(req).await;
                into_axum(response)
            })
        }))
    }
}

impl tower::Service<http::Request<axum::body::Body>> for Erased {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Answered;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<axum::body::Body>) -> Self::Future {
        Answered((self.0)(req))
    }
}

/// The future of [`Erased`].
struct Answered(std::pin::Pin<Box<dyn Future<Output = Response> + Send>>);

impl Future for Answered {
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.0.as_mut().poll(cx).map(Ok)
    }
}

/// [`into_axum`] for a body type `B`, as a nameable type.
type IntoAxum<B> = fn(http::Response<B>) -> Response;

/// Validates the builder and composes the stack: the gateway's one place
/// where layers are put in order.
pub(crate) fn compose(builder: GatewayBuilder) -> Result<Gateway, GatewayError> {
    if builder.server.max_connections == 0 {
        return Err(GatewayError::Limit("max_connections must be at least 1"));
    }
    if builder.server.max_header_bytes < 8192 {
        return Err(GatewayError::Limit(
            "max_header_bytes must be at least 8192",
        ));
    }
    if builder.server.max_headers == 0 {
        return Err(GatewayError::Limit("max_headers must be at least 1"));
    }
    if builder.request_timeout.is_zero() || builder.server.header_read_timeout.is_zero() {
        return Err(GatewayError::Limit("timeouts must be positive"));
    }
    builder.server.check()?;
    let mut this = builder;
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
    if this.realtime.is_some() && this.auth.is_none() {
        return Err(GatewayError::Realtime(
            "realtime endpoints need authentication: every socket is authenticated".into(),
        ));
    }
    if this.runtime.is_some() && (this.auth.is_none() || this.tenancy.is_none()) {
        return Err(GatewayError::Runtime(
            "the workflow runtime needs authentication and tenancy: runs belong to a user in a tenant"
                .into(),
        ));
    }
    // Cached answers are keyed by the access policy's generation: a reload
    // starts afresh. (A store already given a source keeps it.)
    if let (Some(cache), Some(access)) = (&this.response_cache, &this.access) {
        cache.store().set_generation(Arc::new(access.clone()));
    }
    // One state for every part (the realtime hub is built here, the rest
    // in `compose_checked`).
    if this.state.is_none() {
        this.state = Some(SharedState::memory(this.clock.clone()));
    }
    let mut hub = None;
    let mut sessions = None;
    let mut field_targets = Vec::new();
    if let Some(mut service) = this.auth.take() {
        if let Some((keys, _)) = &this.field_keys {
            let same = service
                .field_keys()
                .is_some_and(|held| Arc::ptr_eq(held, keys));
            if !same && !service.set_field_keys(keys.clone()) {
                return Err(GatewayError::Security(
                    "the authentication service already seals with other field keys".into(),
                ));
            }
            field_targets = service.reencryption_targets();
        }
        field_targets.append(&mut this.field_targets);
        if let Some((registry, _)) = &this.tenancy {
            service = service
                .with_tenant_gate(Arc::new(crate::tenant_gate::RegistryGate(registry.clone())));
        }
        if this.principal_layer.is_some() {
            return Err(GatewayError::Auth(
                "authentication and principal_layer both set; use one".into(),
            ));
        }
        // Deferred: the AdmitLayer composed inside (`compose_checked`) asks
        // the session together with the quota and the principal limits.
        // How a credential is verified (verifier, cache, session, cookie):
        // one for the HTTP stack and the realtime endpoints alike.
        let mut verifying = kailash_auth::layer::JwtAuthLayer::new(service.access_verifier())
            .cache(service.token_cache())
            .session_check(Arc::new(service.sessions().clone()));
        if let Some(cookie) = &this.auth_cookie {
            verifying = verifying.cookie(cookie.clone());
        }
        let mut layer = verifying.clone().defer_session_check();
        for path in kailash_auth::http::PUBLIC_PATHS {
            layer = layer.public_path(path);
        }
        if !this.oidc.is_empty() {
            layer = layer.public_prefix(kailash_auth::oidc::routes::PUBLIC_PREFIX);
        }
        #[allow(unused_mut, reason = "SAML's entry is added with the saml feature")]
        let mut providers = kailash_auth::oidc::fingerprints(&this.oidc);
        #[cfg(feature = "saml")]
        if let Some(saml) = &this.saml {
            layer = layer.public_prefix(kailash_auth::saml::routes::PUBLIC_PREFIX);
            providers.push((saml.spec().name.clone(), saml.fingerprint()));
        }
        // Records of single sign-on users made by a provider that is no
        // longer configured (or configured otherwise) stop serving
        // refreshes; a shared service keeps the registry it was given.
        service.set_external_providers(providers);
        if let Some(audit) = &this.audit {
            layer = layer.audit(audit.clone());
        }
        if let (Some(mut config), Some(state)) = (this.realtime.take(), this.state.clone()) {
            if config.origins.is_none() {
                config.origins = Some(this.cors_origins.clone());
            }
            // The endpoints verify like the layer, but ask the session
            // themselves (not deferred to an admission).
            let mut builder = kailash_realtime::Hub::builder(state.clone(), verifying, config)
                .clock(this.clock.clone());
            if let Some(access) = &this.access {
                builder = builder.access(access.clone());
            }
            // Open-socket time is metered for billing.
            if this.billing.is_some() {
                builder = builder.usage(Arc::new(crate::billing::Metering::new(state)));
            }
            let built = builder
                .build()
                .map_err(|e| GatewayError::Realtime(e.to_string()))?;
            // A session that ends closes its sockets on every instance at
            // once (the hub's sweep re-checks liveness every second anyway).
            service
                .sessions()
                .set_listener(Arc::new(crate::realtime_hooks::CloseSockets(built.clone())));
            hub = Some(built);
        }
        sessions = Some(service.sessions().clone());
        this.principal_layer = Some(Box::new(move |router: Router| router.layer(layer)));
        let mut routes = std::mem::take(&mut this.routes);
        if this.access.is_some() {
            // Account administration needs someone allowed to do it: the
            // permission check is the access control's, like every route's.
            let guard = kailash_access::layer::RequirePermissionLayer::new(
                kailash_auth::http::ADMIN_PERMISSION,
            );
            routes = routes.merge(kailash_auth::http::admin_router(service.clone(), guard));
            this = this.openapi(kailash_auth::http::admin_openapi());
            // Explaining decisions: the access control's route, finding
            // other users among the authentication service's.
            if let Some(access) = this.access.clone() {
                let directory = Arc::new(crate::access_directory::AuthDirectory(service.clone()));
                routes = routes.merge(kailash_access::http::router(access, directory));
                this = this.openapi(kailash_access::http::openapi());
            }
            #[cfg(feature = "postgres")]
            if let (Some(registry), Some(access)) = (this.tenant_admin.clone(), this.access.clone())
            {
                routes = routes.merge(crate::tenant_admin::router(
                    registry,
                    access,
                    this.audit.clone(),
                ));
                this = this.openapi(crate::tenant_admin::openapi());
            }
        }
        if !this.oidc.is_empty() {
            routes = routes.merge(kailash_auth::oidc::routes::router(
                service.clone(),
                this.oidc.clone(),
            ));
            this = this.openapi(kailash_auth::oidc::routes::openapi());
        }
        #[cfg(feature = "saml")]
        if let Some(saml) = this.saml.clone() {
            routes = routes.merge(kailash_auth::saml::routes::router(service.clone(), saml));
            this = this.openapi(kailash_auth::saml::routes::openapi());
        }
        this.routes = routes.merge(kailash_auth::http::router(service));
        this = this.openapi(kailash_auth::http::openapi());
    }
    if this.tenancy.is_some() {
        this = this.openapi(kailash_tenancy::http::openapi());
    }
    if let (Some(slot), Some(hub)) = (&this.runtime_events, &hub) {
        let _ = slot.set(hub.clone());
    }
    if this.runtime.is_some() {
        this = this.openapi(kailash_runtime::http::openapi());
    }
    if let Some(hub) = &hub {
        this = this.openapi(kailash_realtime::http::openapi_for(hub.config()));
    }
    compose_checked(this, hub, sessions, field_targets)
}

fn compose_checked(
    mut builder: GatewayBuilder,
    hub: Option<kailash_realtime::Hub>,
    sessions: Option<kailash_auth::session::SessionStore>,
    field_targets: Vec<Arc<dyn kailash_core::field_encryption::Reencrypt>>,
) -> Result<Gateway, GatewayError> {
    if (builder.rate_limits.per_user.is_some() || builder.rate_limits.per_tenant.is_some())
        && builder.principal_layer.is_none()
    {
        // Without a layer that inserts a Principal these limits could never apply.
        return Err(GatewayError::RateLimit(
            "per-user and per-tenant limits need an authentication layer (principal_layer)".into(),
        ));
    }
    let cors = crate::cors::origins(&builder.cors_origins, builder.cors_credentials)?;
    let tls = builder.tls.as_ref().map(tls::server_config).transpose()?;
    let state = builder
        .state
        .clone()
        .unwrap_or_else(|| SharedState::memory(builder.clock.clone()));

    // Readiness: the state backend (an in-memory one always answers; with
    // Redis this is the cache's status), its pub/sub connection and, when
    // set, the audit sink. The checks run in the background (`HealthRunner`).
    let mut health = builder.health_checks.clone();
    let s = state.clone();
    health = health.required(
        "state",
        kailash_monitoring::health::from_fn(move || {
            let s = s.clone();
            async move { s.kv.ping().await.map_err(|e| e.to_string()) }
        }),
    );
    // Pub/sub (realtime fan-out) keeps its own connection: lost subscribers
    // make the instance not ready until they are re-subscribed. No round trip.
    let s = state.clone();
    health = health.required(
        "pubsub",
        kailash_monitoring::health::from_fn(move || {
            let s = s.clone();
            async move { s.pubsub.health().map_err(|e| e.to_string()) }
        }),
    );
    if let Some(audit) = &builder.audit {
        let a = audit.clone();
        health = health.required(
            "audit",
            kailash_monitoring::health::from_fn(move || {
                let a = a.clone();
                async move { a.health().map_err(|e| e.to_string()) }
            }),
        );
    }

    // Reported, never gating readiness: every instance runs the same workload.
    if let Some(runtime) = &builder.runtime {
        health = health.optional(
            "workflow_failure_rate",
            crate::health_checks::ExecutionRateCheck::new(
                runtime.clone(),
                builder.workflow_failure_threshold,
            ),
        );
    }
    if let Some(sessions) = sessions {
        health = health.optional(
            "active_sessions",
            crate::health_checks::ActiveSessionsCheck::new(sessions, builder.max_active_sessions),
        );
    }
    let health = kailash_monitoring::health::HealthRunner::new(health, builder.health_policy)
        .map_err(|e| GatewayError::Health(e.to_string()))?;
    // The recorder is installed before the first round, so the checks'
    // gauges of that round are kept.
    let metrics = builder.metrics.then(MetricsRegistry::global);
    // Within a runtime the first round starts now; otherwise at `serve` or
    // at the first readiness probe.
    health.start();
    let alerting = crate::alerting::build(
        std::mem::take(&mut builder.alerting),
        &health,
        &state,
        builder.clock.clone(),
        &builder.title,
    )?;

    // Application routes: rate limits, authentication and tenancy apply here only.
    let mut routes = builder.routes;
    if let (Some(hub), Some(access)) = (&hub, &builder.access) {
        routes = routes.merge(kailash_realtime::http::router(hub.clone(), access.clone()));
    }
    if let Some(runtime) = &builder.runtime {
        routes = routes.merge(kailash_runtime::http::router(runtime.clone()));
    }
    let billing = match (builder.billing.take(), &builder.tenancy) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(GatewayError::Tenancy(
                "billing needs tenancy (usage is metered per tenant)".into(),
            ));
        }
        (Some((delivery, settings)), Some((registry, _))) => {
            let billing = crate::billing::Billing::new(
                state.clone(),
                delivery,
                settings.settle,
                settings.timeout,
            );
            // The runs of the runtime built from the config are metered.
            if let Some(observers) = &builder.run_observers {
                observers
                    .write()
                    .map_err(|_| GatewayError::Runtime("the run observers are unusable".into()))?
                    .push(crate::billing::RunUsage::new(billing.metering().clone()));
            }
            Some(crate::billing::BillingLoop {
                billing,
                registry: registry.clone(),
                interval: settings.interval,
            })
        }
    };
    let tenant_layer = match &builder.tenancy {
        Some((registry, settings)) => {
            let quotas = kailash_tenancy::quota::Quotas::new(state.clone());
            routes = routes.merge(kailash_tenancy::http::router_with_billing(
                quotas.clone(),
                billing.as_ref().map(|b| b.billing.clone()),
            ));
            let mut layer = kailash_tenancy::layer::TenancyLayer::new(registry.clone())
                .quotas(quotas)
                .deferred()
                .header(settings.header)
                .custom_domains(settings.custom_domains);
            if let Some(base) = &settings.subdomain_base {
                layer = layer.subdomains(base.clone());
            }
            if settings.allow_tenantless_principals {
                layer = layer.allow_tenantless_principals();
            }
            for path in kailash_auth::http::PUBLIC_PATHS {
                layer = layer.public_path(path);
            }
            if !builder.oidc.is_empty() {
                // Sign-in precedes any tenant: the provider's claims name it.
                layer = layer.public_prefix(kailash_auth::oidc::routes::PUBLIC_PREFIX);
            }
            #[cfg(feature = "saml")]
            if builder.saml.is_some() {
                // Likewise SAML's: the assertion names the tenant.
                layer = layer.public_prefix(kailash_auth::saml::routes::PUBLIC_PREFIX);
            }
            if let Some(audit) = &builder.audit {
                layer = layer.audit(audit.clone());
            }
            Some(layer)
        }
        None => None,
    };
    let mut app = routes.fallback(|| async { Problem::not_found() });
    // Which of the gateway's layers wrap the routes, for the document.
    let layers = crate::contract::Layers {
        outside: hub
            .as_ref()
            .map(|h| vec![h.config().ws_path.clone(), h.config().sse_path.clone()])
            .unwrap_or_default(),
        authentication: builder.principal_layer.is_some(),
        tenancy: builder.tenancy.is_some(),
        tenant_header: builder.tenancy.as_ref().is_some_and(|(_, s)| s.header),
        ip_allow: builder.ip_allow.clone(),
        https: builder.https.clone(),
    };
    let limits = builder.rate_limits;
    let principal_limits = match (limits.per_user, limits.per_tenant) {
        (Some(user), tenant) => {
            let layer = RateLimitLayer::new(state.rate.clone(), Limit::PerUser(user));
            Some(match tenant {
                Some(q) => layer.per_tenant(q),
                None => layer,
            })
        }
        (None, Some(tenant)) => Some(RateLimitLayer::new(
            state.rate.clone(),
            Limit::PerTenant(tenant),
        )),
        (None, None) => None,
    };
    // Innermost of the guards after authentication: runs the checks the
    // session check, the tenant's quota and the principal limits deferred
    // to it, in one call to the backend (one round trip on Redis).
    // (Only behind an authentication layer: nothing defers without one.)
    // Innermost: DLP sees the handlers' responses, knowing the caller.
    if let Some(dlp) = builder.dlp.take() {
        app = app.layer(dlp);
    }
    if builder.principal_layer.is_some() {
        app = app.layer(AdmitLayer::new(state.clone()));
    }
    if let Some(layer) = principal_limits {
        app = app.layer(layer.fail_mode(limits.fail_mode).deferred());
    }
    // After authentication (it needs the principal), before the per-user
    // and per-tenant limits (they charge only requests it admits).
    if let Some(layer) = tenant_layer {
        app = app.layer(layer);
    }
    // Requests are observed after authentication (per user as well as
    // per IP); the layer only queues, it asks no backend.
    if let Some(detector) = builder.anomaly_requests.take() {
        app = app.layer(detector.request_layer());
    }
    if let Some(principal_layer) = builder.principal_layer {
        app = principal_layer(app);
    }
    if let Some(q) = limits.per_ip {
        app = app.layer(
            RateLimitLayer::new(state.rate.clone(), Limit::PerIp(q))
                .ip_prefixes(limits.ip_prefixes)
                .fail_mode(limits.fail_mode),
        );
    }

    // Operational routes.
    if let (Some(registry), Some(hub)) = (&metrics, &hub) {
        registry.register(Arc::new(crate::realtime_hooks::RealtimeMetrics(
            hub.stats_handle(),
        )));
    }
    // Health and metrics: on this listener, or on the operations listener
    // (`ops_access`), behind the operations token when one is set.
    let operational = crate::ops_access::routes(
        std::mem::take(&mut builder.ops),
        builder.health.then(|| health.clone()),
        metrics.clone(),
        &builder.server,
    )?;
    let mut ops = operational.main;
    // The realtime endpoints authenticate themselves (a WebSocket closes
    // with 4001 rather than answering 401), outside the application stack.
    if let Some(hub) = &hub {
        ops = ops.merge(kailash_realtime::router(hub));
    }
    if builder.docs {
        let doc = ops::openapi_document(
            &builder.title,
            &builder.version,
            builder.description.as_deref(),
            operational.docs,
            std::mem::take(&mut builder.openapi),
            layers,
        )?;
        ops = ops.merge(ops::docs_routes(doc));
    }

    // Route-level layers run after routing (metrics needs the route
    // template) and are applied in one `Router::layer` call: every call
    // adds a boxed service level that is cloned on each request.
    // With telemetry: the request span takes the route template as its
    // name, and error responses keep the trace id for the problem layer.
    let traced = builder.tracing && kailash_core::trace_context::installed();
    let route_stack =
        ServiceBuilder::new()
            .option_layer(traced.then(|| {
                tower::util::MapRequestLayer::new(trace::record_route::<axum::body::Body>)
            }))
            .option_layer(metrics.clone().map(MetricsLayer::new))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::GATEWAY_TIMEOUT,
                builder.request_timeout,
            ))
            .layer(RequestBodyLimitLayer::new(builder.max_body_bytes))
            .layer(DefaultBodyLimit::disable())
            .option_layer(
                traced.then(|| MapResponseLayer::new(trace::keep_trace_id::<axum::body::Body>)),
            );
    // `with_state` turns handlers into services once, not per request.
    let routes: Router = app.merge(ops).layer(route_stack).with_state(());

    // Outer layers wrap the router once, as one concrete stack. A layer the
    // configuration can switch off answers with axum's body (`switchable`),
    // so both arms of its option agree.
    let cors = cors
        .map(|origins| crate::cors::layer(origins, builder.cors_credentials, builder.cors_max_age));
    let trace = builder.tracing.then(|| {
        TraceLayer::new_for_http()
            .make_span_with(trace::make_span)
            .on_request(())
            .on_response(trace::on_response)
            .on_failure(())
    });
    let ip_allow = (!builder.ip_allow.is_empty()).then(|| match &builder.audit {
        Some(sink) if !builder.ip_allow.has_audit() => builder.ip_allow.clone().audit(sink.clone()),
        _ => builder.ip_allow.clone(),
    });
    let compression = builder
        .compression
        .then(|| CompressionLayer::new().quality(CompressionLevel::Precise(4)));
    // The inner part behind one dynamic call (an `Arc`, cloned per
    // request, and one boxed future): the edge layers below are composed
    // over a named type instead of over this whole stack, which keeps the
    // crate's compile time and memory in bounds as edge layers are added.
    let inner = ServiceBuilder::new()
        .option_layer(switchable(trace))
        .option_layer(switchable(cors))
        .option_layer(switchable(compression))
        .option_layer(builder.access.map(axum::Extension))
        .option_layer(hub.clone().map(axum::Extension))
        // The extractor's defaults need no extension on every request.
        .option_layer(
            (builder.json_limits != kailash_core::json_limits::JsonLimits::default())
                .then_some(axum::Extension(builder.json_limits)),
        )
        .service(routes);
    let inner = Erased::new(inner);
    // The edge: headers on every answer (refusals included), the request
    // context, then — before any other work — the network and transport
    // policies (a refused request costs no trace, CORS or handler work;
    // the problem layer still shapes its answer).
    let service = ServiceBuilder::new()
        .option_layer(
            builder
                .security_headers
                .as_ref()
                .map(SecurityHeaders::layer),
        )
        .layer(ProblemJsonLayer::new())
        .layer(
            SetRequestContextLayer::new()
                .trusted_proxies(builder.trusted_proxies)
                .incoming_request_id(builder.incoming_request_id)
                .clock(builder.clock.clone()),
        )
        .option_layer(switchable(ip_allow))
        .option_layer(switchable(builder.https))
        .service(inner);
    let handler: Handler = Arc::new(move |req| {
        let service = service.clone();
        Box::pin(async move {
            let Ok(response) = service.oneshot(req).await;
            into_axum(response)
        })
    });

    Ok(Gateway::new(
        handler,
        builder.server,
        tls,
        builder.audit,
        state,
        builder.clock,
        hub,
    )
    .with_runtime(builder.runtime)
    .with_health(health)
    .with_alerting(alerting)
    .with_field_maintenance(
        builder
            .field_keys
            .map(|(keys, every)| (keys, field_targets, every)),
    )
    .with_ops(operational.listener)
    .with_billing(billing))
}
