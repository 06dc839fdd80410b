//! The per-request span and log line.
//!
//! The span carries the method, the path (never the query string, which may
//! hold a token) and the request id; the log line adds status and latency.
//! With no subscriber listening at `INFO`, neither formats anything.

use std::time::Duration;

use http::{Request, Response};
use kailash_core::context::RequestContext;
use tracing::Span;

pub(crate) fn make_span<B>(req: &Request<B>) -> Span {
    // Fields are recorded through `Display` only when a subscriber wants the span.
    match req.extensions().get::<RequestContext>() {
        Some(ctx) => tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = %ctx.request_id(),
        ),
        None => tracing::info_span!("request", method = %req.method(), path = %req.uri().path()),
    }
}

pub(crate) fn on_response<B>(res: &Response<B>, latency: Duration, _span: &Span) {
    tracing::info!(
        status = res.status().as_u16(),
        latency_us = latency.as_micros() as u64,
        "response"
    );
}
