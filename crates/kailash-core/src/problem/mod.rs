//! RFC 9457 problem details: the one way kailash-rs turns an error into an
//! HTTP response.
//!
//! Every rejection a kailash-rs layer produces is a [`Problem`] rendered as
//! `application/problem+json` with `type`, `title`, `status`, `detail` and,
//! where the client should wait, `retry_after` plus a `Retry-After` header.
//! [`ProblemJsonLayer`] turns the bodiless or plain-text error responses that
//! other middleware and routers produce (a router's 404/405, a body-limit 413)
//! into the same shape, so clients meet one error format.
//!
//! ```
//! use std::time::Duration;
//! use http::StatusCode;
//! use kailash_core::problem::Problem;
//!
//! let problem = Problem::too_many_requests(Duration::from_millis(1500));
//! let response = problem.to_response::<http_body_util::Empty<bytes::Bytes>>();
//! assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(response.headers()["retry-after"], "2");
//! assert_eq!(response.headers()["content-type"], "application/problem+json");
//! ```
//!
//! Normalising the errors of an axum router:
//!
//! ```
//! use axum::{Router, routing::get};
//! use kailash_core::problem::ProblemJsonLayer;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "ok" }))
//!     .layer(ProblemJsonLayer::new());
//! // GET /missing now answers 404 application/problem+json.
//! ```

mod body;
mod future;
mod layer;
mod service;

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use serde::Serialize;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use layer::ProblemJsonLayer;
pub use service::ProblemJson;

/// The media type of problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Prefix of every problem `type` URI that kailash-rs defines; the list is in
/// `docs/errors.md`.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:kailash:problem:";

/// An RFC 9457 problem detail.
///
/// Build one with a constructor named after the status, refine it with
/// [`Problem::with_detail`] and friends, and render it with
/// [`Problem::to_response`] (or, with the `axum` feature, return it from a
/// handler). The `detail` is for the client: never put secrets, internal
/// errors or anything that tells an attacker which check failed into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    status: StatusCode,
    kind: Cow<'static, str>,
    title: Cow<'static, str>,
    detail: Option<Cow<'static, str>>,
    retry_after: Option<Duration>,
    www_authenticate: Option<HeaderValue>,
    extensions: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    #[serde(flatten)]
    extensions: &'a serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    /// A problem with an explicit status, `type` slug and title.
    ///
    /// `slug` becomes the type URI `urn:kailash:problem:<slug>`.
    pub fn new(
        status: StatusCode,
        slug: impl Into<Cow<'static, str>>,
        title: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            kind: slug.into(),
            title: title.into(),
            detail: None,
            retry_after: None,
            www_authenticate: None,
            extensions: serde_json::Map::new(),
        }
    }

    /// The generic problem for a status code (type slug and title derived from it).
    pub fn from_status(status: StatusCode) -> Self {
        let title = status.canonical_reason().unwrap_or("Error");
        let slug = title.to_ascii_lowercase().replace([' ', '\''], "-");
        Self::new(status, slug, title)
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", "Bad Request").with_detail(detail)
    }

    /// 401 with `WWW-Authenticate: Bearer error="<error>"` (RFC 6750).
    ///
    /// `error` is one of RFC 6750's codes (`invalid_request`, `invalid_token`)
    /// or `None` when no credentials were sent at all.
    pub fn unauthorized(error: Option<&'static str>) -> Self {
        let challenge = match error {
            None => HeaderValue::from_static("Bearer"),
            Some(code) => HeaderValue::from_str(&format!("Bearer error=\"{code}\""))
                .unwrap_or(HeaderValue::from_static("Bearer")),
        };
        let mut p = Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized");
        p.www_authenticate = Some(challenge);
        p
    }

    /// 403: authenticated but not allowed.
    pub fn forbidden(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden").with_detail(detail)
    }

    /// 404.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not Found")
    }

    /// 413: the body is larger than the configured limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload Too Large",
        )
        .with_detail(format!(
            "the request body exceeds the limit of {limit} bytes"
        ))
    }

    /// 429 with `Retry-After`.
    pub fn too_many_requests(retry_after: Duration) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too Many Requests",
        )
        .with_retry_after(retry_after)
    }

    /// 423 with `Retry-After` (an account lockout).
    pub fn locked(retry_after: Duration) -> Self {
        Self::new(StatusCode::LOCKED, "locked", "Locked").with_retry_after(retry_after)
    }

    /// 503: a backend the request needs is unavailable.
    pub fn service_unavailable(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service Unavailable",
        )
        .with_detail(detail)
    }

    /// 504: the request did not finish within the configured time.
    pub fn timeout(limit: Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "gateway-timeout",
            "Gateway Timeout",
        )
        .with_detail(format!(
            "the request did not complete within {} ms",
            limit.as_millis()
        ))
    }

    /// 500 with no detail: the cause goes to the log, never to the client.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal Server Error",
        )
    }

    /// Sets the human-readable detail.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets how long the client should wait (rendered as whole seconds, rounded up).
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// Adds an extension member (RFC 9457 §3.2), such as the name of a limit.
    #[must_use]
    pub fn with_extension(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        // The standard members are not overridable through extensions.
        if !matches!(name, "type" | "title" | "status" | "detail" | "retry_after") {
            self.extensions.insert(name.to_owned(), value.into());
        }
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The full `type` URI.
    pub fn type_uri(&self) -> String {
        format!("{PROBLEM_TYPE_PREFIX}{}", self.kind)
    }

    /// The title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The detail, if any.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The retry delay, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|d| {
            let secs = d.as_secs();
            if d.subsec_nanos() > 0 {
                secs + 1
            } else {
                secs.max(1)
            }
        })
    }

    /// The JSON body. When a tracing backend is installed and a span is
    /// current, it carries the trace id (`trace_id`) so a client's report
    /// leads to the trace.
    pub fn to_json(&self) -> Bytes {
        self.to_json_traced(crate::trace_context::current_trace_id())
    }

    /// The JSON body with `trace_id` set to `trace` (unless the problem
    /// has its own `trace_id` extension).
    pub fn to_json_traced(&self, trace: Option<String>) -> Bytes {
        let traced;
        let extensions = match trace {
            Some(id) if !self.extensions.contains_key("trace_id") => {
                let mut e = self.extensions.clone();
                e.insert("trace_id".to_owned(), serde_json::Value::String(id));
                traced = e;
                &traced
            }
            _ => &self.extensions,
        };
        let wire = Wire {
            kind: self.type_uri(),
            title: &self.title,
            status: self.status.as_u16(),
            detail: self.detail.as_deref(),
            retry_after: self.retry_after_secs(),
            extensions,
        };
        // Serialising a struct of strings and numbers cannot fail.
        Bytes::from(serde_json::to_vec(&wire).unwrap_or_default())
    }

    /// Renders the problem as a response whose body type wraps `B`, so a
    /// middleware can return it in place of its inner service's response.
    ///
    /// The response carries the problem in its extensions too, so an outer
    /// layer can re-render the refusal for another protocol
    /// ([`crate::grpc::GrpcStatusLayer`]) without parsing the body.
    pub fn to_response<B>(&self) -> Response<ResponseBody<B>> {
        self.to_response_traced(crate::trace_context::current_trace_id())
    }

    /// [`to_response`](Self::to_response) naming `trace` as the trace id.
    pub fn to_response_traced<B>(&self, trace: Option<String>) -> Response<ResponseBody<B>> {
        let mut response = Response::new(ResponseBody::problem(self.to_json_traced(trace)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after_secs() {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = &self.www_authenticate {
            headers.insert(WWW_AUTHENTICATE, challenge.clone());
        }
        response.extensions_mut().insert(self.clone());
        response
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.title)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for Problem {
    fn into_response(self) -> axum::response::Response {
        self.to_response::<axum::body::Body>()
            .map(axum::body::Body::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(p: &Problem) -> serde_json::Value {
        serde_json::from_slice(&p.to_json()).unwrap()
    }

    #[test]
    fn renders_rfc9457_members() {
        let p = Problem::forbidden("tenant mismatch").with_extension("limit", "max_workflows");
        let v = json(&p);
        assert_eq!(v["type"], "urn:kailash:problem:forbidden");
        assert_eq!(v["title"], "Forbidden");
        assert_eq!(v["status"], 403);
        assert_eq!(v["detail"], "tenant mismatch");
        assert_eq!(v["limit"], "max_workflows");
        assert!(v.get("retry_after").is_none());
    }

    #[test]
    fn extensions_cannot_override_standard_members() {
        let v = json(&Problem::not_found().with_extension("status", 200));
        assert_eq!(v["status"], 404);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let r = Problem::too_many_requests(Duration::from_millis(100)).to_response::<()>();
        assert_eq!(r.headers()[RETRY_AFTER], "1");
        let r = Problem::locked(Duration::from_secs(900)).to_response::<()>();
        assert_eq!(r.headers()[RETRY_AFTER], "900");
        assert_eq!(
            json(&Problem::locked(Duration::from_secs(900)))["retry_after"],
            900
        );
    }

    #[test]
    fn unauthorized_carries_a_bearer_challenge() {
        let r = Problem::unauthorized(Some("invalid_token")).to_response::<()>();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
        let r = Problem::unauthorized(None).to_response::<()>();
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn the_response_carries_the_problem_for_outer_layers() {
        let p = Problem::forbidden("no").with_extension("permission", "data:read");
        let r = p.to_response::<()>();
        assert_eq!(r.extensions().get::<Problem>(), Some(&p));
    }

    #[test]
    fn from_status_derives_a_slug() {
        let p = Problem::from_status(StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(p.type_uri(), "urn:kailash:problem:method-not-allowed");
        assert_eq!(p.title(), "Method Not Allowed");
    }
}
