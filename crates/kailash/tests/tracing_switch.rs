//! The tracing switch. In a binary of its own: tracing caches each
//! callsite's interest globally, so a test on another thread that hits the
//! span first (with no subscriber) would make this one flaky.

mod support;

#[cfg(feature = "otel")]
#[path = "tracing_switch/telemetry.rs"]
mod telemetry;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use kailash::Gateway;
use support::{get as http_get, start};

fn app() -> Router {
    Router::new().route("/hello", get(|| async { "hello" }))
}

/// Counts `request` spans; stands in for a real tracing subscriber.
struct SpanCounter(Arc<std::sync::atomic::AtomicUsize>);

impl tracing::Subscriber for SpanCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        if span.metadata().name() == "request" {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

// Current-thread runtime: the scoped subscriber sees every task of the test.
#[tokio::test(flavor = "current_thread")]
async fn the_tracing_switch_adds_and_removes_the_request_span() {
    let spans = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let _guard = tracing::subscriber::set_default(SpanCounter(spans.clone()));
    for (enabled, expected) in [(true, 2), (false, 0)] {
        spans.store(0, std::sync::atomic::Ordering::SeqCst);
        let gw = start(Gateway::builder().routes(app()).tracing(enabled)).await;
        http_get(gw.addr, "/hello").await;
        http_get(gw.addr, "/nope").await;
        gw.stop().await;
        assert_eq!(
            spans.load(std::sync::atomic::Ordering::SeqCst),
            expected,
            "tracing({enabled})"
        );
    }
}
