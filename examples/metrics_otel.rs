//! Metrics and OpenTelemetry: `MetricsLayer` records RED metrics per route
//! template (served at `GET /metrics` as Prometheus text), and the spans of
//! each request are exported over OTLP/HTTP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` names a collector (e.g.
//! `http://127.0.0.1:4318`); without it, only metrics.
//!
//! ```text
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \
//!   cargo run -p kailash-examples --example metrics_otel -- 127.0.0.1:3000
//! curl localhost:3000/orders/42; curl -s localhost:3000/metrics | grep 'orders/{id}'
//! ```

use std::net::SocketAddr;

use axum::extract::Path;
use axum::{Router, routing::get};
use kailash::config::TelemetryConfig;
use kailash::metrics::{MetricsLayer, MetricsRegistry};
use kailash::telemetry::Telemetry;
use tracing::Instrument;
use tracing_subscriber::prelude::*;

async fn order(Path(id): Path<u64>) -> String {
    // Exported as a span (INFO and above go to the collector).
    async { format!("order {id}\n") }
        .instrument(tracing::info_span!("orders.get", order.id = id))
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let addr: SocketAddr = arg
        .parse()
        .map_err(|e| format!("listen address {arg:?}: {e}"))?;
    let config = TelemetryConfig {
        endpoint: std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok(),
        service_name: Some("orders".into()),
        ..TelemetryConfig::default()
    };
    let telemetry = Telemetry::from_config(&config, "orders")?;
    if telemetry.is_none() {
        eprintln!("OTEL_EXPORTER_OTLP_ENDPOINT is not set: metrics only, no traces");
    }
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(telemetry.as_ref().map(Telemetry::layer))
        .init();

    let registry = MetricsRegistry::new();
    let metrics = registry.clone();
    let app = Router::new()
        .route("/orders/{id}", get(order))
        // Labels come from the route template: one series for every id.
        .layer(MetricsLayer::new(registry))
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(kailash::shutdown_signal())
        .await?;
    // Flush what the batch exporter still holds.
    if let Some(t) = telemetry {
        t.shutdown().await;
    }
    Ok(())
}
