//! OpenTelemetry traces (feature `otel`): every request a span with the
//! HTTP semantic conventions, its children for authentication, access
//! decisions, state-backend round trips and workflow runs, exported over
//! OTLP/HTTP (protobuf) through the gateway's own hyper client — no tonic,
//! no reqwest.
//!
//! W3C `traceparent`/`tracestate` of an incoming request become the
//! request span's parent; outgoing calls (JWKS fetches, alert webhooks,
//! workflow `http_request` nodes) carry the current context; problem+json
//! bodies and audit events name the trace id (`trace_id`).
//!
//! The `tracing` subscriber is the application's: [`Telemetry::layer`] is
//! one more layer on it. Install telemetry **before** building the gateway
//! (the request span takes its OpenTelemetry fields only when telemetry is
//! installed, so a gateway without it pays nothing).
//!
//! ```no_run
//! use kailash::config::GatewayConfig;
//! use kailash::telemetry::Telemetry;
//! use tracing_subscriber::prelude::*;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = GatewayConfig::load("gateway.toml")?;
//! let telemetry = Telemetry::from_config(&config.telemetry, &config.gateway.title)?;
//! tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer())
//!     .with(telemetry.as_ref().map(Telemetry::layer))
//!     .init();
//! // … build and run the gateway, then:
//! if let Some(t) = telemetry {
//!     t.shutdown().await;
//! }
//! # Ok(()) }
//! ```

use bytes::Bytes;
use http::{Request, Response};
use kailash_monitoring::outbound::Target;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{KeyValue, global};
use opentelemetry_http::{HeaderExtractor, HeaderInjector, HttpClient, HttpError};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{Filtered, Targets};
use tracing_subscriber::registry::LookupSpan;

use crate::config::TelemetryConfig;

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
#[error("telemetry: {0}")]
pub struct TelemetryError(String);

/// Exported traces: the tracer provider, its `tracing` layer, and the
/// hooks that put trace ids into problem bodies and audit events.
#[derive(Debug, Clone)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

/// The `tracing` layer [`Telemetry::layer`] returns: spans and events at
/// INFO and above from everywhere, and kailash's DEBUG child spans.
pub type TelemetryLayer<S> = Filtered<
    tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>,
    Targets,
    S,
>;

impl Telemetry {
    /// Starts exporting when `config.endpoint` is set (`None` otherwise):
    /// the batch span processor, the sampler (`sampling_ratio` of new
    /// traces; a request that comes with a sampled parent is always kept),
    /// the W3C trace-context propagator, and the hooks of
    /// [`kailash_core::trace_context`]. Call within a tokio runtime.
    pub fn from_config(
        config: &TelemetryConfig,
        default_service: &str,
    ) -> Result<Option<Self>, TelemetryError> {
        Self::from_config_with_pool(config, default_service, None)
    }

    /// [`from_config`](Self::from_config), the exports drawing their
    /// connection from `pool` (the gateway's outbound pool, made before the
    /// gateway with `ConnectionPool::new(config.outbound.pool())` and
    /// handed to
    /// [`GatewayBuilder::from_config_with_backends_and_pool`](crate::GatewayBuilder::from_config_with_backends_and_pool));
    /// `None` keeps a connection of its own.
    pub fn from_config_with_pool(
        config: &TelemetryConfig,
        default_service: &str,
        pool: Option<&kailash_core::outbound::ConnectionPool>,
    ) -> Result<Option<Self>, TelemetryError> {
        let Some(endpoint) = &config.endpoint else {
            return Ok(None);
        };
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| TelemetryError("must start within a tokio runtime".into()))?;
        let url = traces_url(endpoint);
        let mut target = Target::new(&url, config.timeout.0)
            .map_err(|e| TelemetryError(format!("endpoint: {e}")))?;
        if let Some(pool) = pool {
            target = target.with_pool(pool);
        }
        let client = Client { target, handle };
        let mut headers = std::collections::HashMap::new();
        if let Some(var) = &config.headers_env {
            let text = std::env::var(var)
                .map_err(|_| TelemetryError(format!("environment variable {var} is not set")))?;
            for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    TelemetryError(format!(
                        "{var}: expected key=value pairs separated by commas"
                    ))
                })?;
                headers.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(url)
            .with_timeout(config.timeout.0)
            .with_headers(headers)
            .build()
            .map_err(|e| TelemetryError(e.to_string()))?;
        let service = config
            .service_name
            .clone()
            .unwrap_or_else(|| default_service.to_owned());
        let resource = Resource::builder_empty()
            .with_service_name(service)
            .with_attributes(
                config
                    .resource_attributes
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .with_attributes([
                KeyValue::new("telemetry.sdk.name", "opentelemetry"),
                KeyValue::new("telemetry.sdk.language", "rust"),
            ])
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sampling_ratio,
            ))))
            .with_resource(resource)
            .build();
        global::set_text_map_propagator(TraceContextPropagator::new());
        kailash_core::trace_context::install(Hooks);
        Ok(Some(Self { provider }))
    }

    /// The `tracing` layer exporting spans to OpenTelemetry. Its own filter
    /// enables kailash's DEBUG child spans (`auth.authenticate`,
    /// `access.decide`, `redis`, `workflow.run`) for export only, so the
    /// application's log level does not change.
    pub fn layer<S>(&self) -> TelemetryLayer<S>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        use tracing_subscriber::Layer as _;
        let tracer = self.provider.tracer("kailash");
        let filter = Targets::new()
            .with_default(tracing::Level::INFO)
            .with_target("kailash_auth", tracing::Level::DEBUG)
            .with_target("kailash_access", tracing::Level::DEBUG)
            .with_target("kailash_redis", tracing::Level::DEBUG)
            .with_target("kailash_runtime", tracing::Level::DEBUG);
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_tracked_inactivity(false)
            .with_threads(false)
            // The OpenTelemetry span starts when it ends (or when its
            // context is asked for), not when first entered: the request
            // span is renamed after its route once routing matched.
            .with_context_activation(false)
            .with_location(false)
            .with_filter(filter)
    }

    /// Sends what is buffered now.
    pub fn force_flush(&self) -> Result<(), TelemetryError> {
        self.provider
            .force_flush()
            .map_err(|e| TelemetryError(e.to_string()))
    }

    /// Flushes and stops the exporter (off the async worker threads: the
    /// batch processor blocks while it sends).
    pub async fn shutdown(self) {
        let provider = self.provider;
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = done {
            tracing::warn!(%error, "telemetry did not shut down cleanly");
        }
    }
}

/// `endpoint` with `/v1/traces` (the OTLP/HTTP traces path) unless it has it.
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// The hooks that give kailash's crates the current trace.
struct Hooks;

impl kailash_core::trace_context::TraceHooks for Hooks {
    fn current_trace_id(&self) -> Option<String> {
        let cx = Span::current().context();
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| sc.trace_id().to_string())
    }

    fn inject(&self, headers: &mut http::HeaderMap) {
        let cx = Span::current().context();
        if cx.span().span_context().is_valid() {
            TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
        }
    }
}

/// Makes `span` a child of the W3C trace context in `headers`, if any.
pub(crate) fn set_parent(span: &Span, headers: &http::HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The OTLP exporter's HTTP client: [`kailash_monitoring::outbound`] (a
/// kept-alive HTTP/1.1 connection, a batch every few seconds; rustls with
/// the system's roots). The batch processor runs its exports on a thread of
/// its own, without a tokio reactor: the request runs on the runtime the
/// telemetry was started in.
#[derive(Debug, Clone)]
struct Client {
    target: Target,
    handle: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let target = self.target.clone();
        let task = self
            .handle
            .spawn(async move { target.send(request, true).await });
        match task.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(error.message.into()),
            Err(_) => Err("the export task was cancelled".into()),
        }
    }
}
