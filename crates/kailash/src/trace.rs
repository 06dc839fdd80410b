//! The per-request span and log line.
//!
//! The span carries the method, the path (never the query string, which may
//! hold a token) and the request id; the log line adds status and latency.
//! With no subscriber listening at `INFO`, neither formats anything.
//!
//! With telemetry installed ([`crate::telemetry`], feature `otel`) the span
//! follows OpenTelemetry's HTTP server conventions: named `GET /route`
//! (the route template, set once routing matched; `GET` alone before),
//! kind `server`, attributes `http.request.method`, `url.path`,
//! `http.route`, `http.response.status_code`, status `error` on a 5xx,
//! and the incoming `traceparent` as its parent. Without telemetry the
//! span stays lean (no OpenTelemetry fields to format per request).

use std::time::Duration;

use http::{Request, Response};
use kailash_core::context::RequestContext;
use tracing::Span;
use tracing::field::Empty;

pub(crate) fn make_span<B>(req: &Request<B>) -> Span {
    let ctx = req.extensions().get::<RequestContext>();
    if kailash_core::trace_context::installed() {
        let span = tracing::info_span!(
            "request",
            otel.name = %req.method(),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = %req.method(),
            url.path = %req.uri().path(),
            http.route = Empty,
            http.response.status_code = Empty,
            request_id = ctx.map(|c| tracing::field::display(c.request_id())),
        );
        #[cfg(feature = "otel")]
        crate::telemetry::set_parent(&span, req.headers());
        return span;
    }
    // Fields are recorded through `Display` only when a subscriber wants the span.
    match ctx {
        Some(ctx) => tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = %ctx.request_id(),
        ),
        None => tracing::info_span!("request", method = %req.method(), path = %req.uri().path()),
    }
}

pub(crate) fn on_response<B>(res: &Response<B>, latency: Duration, span: &Span) {
    if kailash_core::trace_context::installed() {
        span.record("http.response.status_code", res.status().as_u16());
        if res.status().is_server_error() {
            span.record("otel.status_code", "error");
        }
    }
    tracing::info!(
        status = res.status().as_u16(),
        latency_us = latency.as_micros() as u64,
        "response"
    );
}

/// Names the current request span after its route once routing matched
/// (`GET /api/users/{id}`), and keeps its trace id on an error response
/// for the problem+json layer outside the span. Only with telemetry.
pub(crate) fn record_route<B>(req: Request<B>) -> Request<B> {
    if let Some(route) = req.extensions().get::<axum::extract::MatchedPath>() {
        let span = Span::current();
        span.record("http.route", route.as_str());
        span.record("otel.name", format!("{} {}", req.method(), route.as_str()));
    }
    req
}

/// Puts the trace id on error responses (see [`record_route`]).
pub(crate) fn keep_trace_id<B>(mut res: Response<B>) -> Response<B> {
    if res.status().as_u16() >= 400
        && let Some(id) = kailash_core::trace_context::current_trace_id()
    {
        res.extensions_mut()
            .insert(kailash_core::trace_context::TraceId(id));
    }
    res
}
