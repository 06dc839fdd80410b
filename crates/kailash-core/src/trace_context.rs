//! The current distributed trace, for the parts of kailash that report it
//! without depending on OpenTelemetry: problem+json bodies and audit
//! events carry the trace id; outgoing calls (JWKS fetches, webhooks,
//! workflow `http_request` nodes) carry the W3C `traceparent`.
//!
//! Nothing is installed by default: every function here is then a cheap
//! no-op. The gateway's telemetry (`kailash` with the `otel` feature)
//! installs [`TraceHooks`] once per process.
//!
//! ```
//! use kailash_core::trace_context::{self, TraceHooks};
//!
//! struct Fixed;
//! impl TraceHooks for Fixed {
//!     fn current_trace_id(&self) -> Option<String> {
//!         Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned())
//!     }
//!     fn inject(&self, headers: &mut http::HeaderMap) {
//!         headers.insert("traceparent", http::HeaderValue::from_static(
//!             "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
//!     }
//! }
//! trace_context::install(Fixed);
//! assert_eq!(trace_context::current_trace_id().as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
//! let mut headers = http::HeaderMap::new();
//! trace_context::inject(&mut headers);
//! assert!(headers.contains_key("traceparent"));
//! ```

use std::sync::OnceLock;

/// What a tracing backend provides.
pub trait TraceHooks: Send + Sync + 'static {
    /// The trace id of the current span (32 lowercase hex digits), if any.
    fn current_trace_id(&self) -> Option<String>;

    /// Adds the current trace context to an outgoing request's headers
    /// (`traceparent`, `tracestate`).
    fn inject(&self, headers: &mut http::HeaderMap);
}

static HOOKS: OnceLock<Box<dyn TraceHooks>> = OnceLock::new();

/// Installs `hooks` for the process; `false` (and nothing changes) when
/// some were installed already.
pub fn install(hooks: impl TraceHooks) -> bool {
    HOOKS.set(Box::new(hooks)).is_ok()
}

/// Whether hooks are installed.
pub fn installed() -> bool {
    HOOKS.get().is_some()
}

/// The current trace id, when a tracing backend is installed and a span
/// is current.
pub fn current_trace_id() -> Option<String> {
    HOOKS.get()?.current_trace_id()
}

/// Adds the current trace context to `headers` (nothing without a backend).
pub fn inject(headers: &mut http::HeaderMap) {
    if let Some(hooks) = HOOKS.get() {
        hooks.inject(headers);
    }
}

/// A response extension carrying the trace id of the request it answers,
/// set inside the request's span so layers outside it (the problem+json
/// layer) can name the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceId(pub String);
