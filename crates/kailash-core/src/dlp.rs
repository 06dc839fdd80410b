//! Data loss prevention on responses: [`DlpLayer`] inspects the responses
//! of the routes it is given and redacts or blocks those carrying personal
//! data ([`crate::pii`]) the caller is not cleared for.
//!
//! A rule names a path prefix, the kinds of data it looks for, what to do
//! (`redact` or `block`) and, optionally, the clearance at which a caller
//! sees the response untouched — the caller's `clearance` attribute
//! ([`Principal`]), on an ordered scale (default the seed's `public <
//! internal < confidential < secret`). A caller below it (or with no
//! clearance, or unauthenticated) gets:
//!
//! - **redact**: every finding replaced by `[REDACTED:<kind>]`. JSON bodies
//!   are parsed and each string (member names too) redacted, so the answer
//!   stays valid JSON; `text/*` bodies are redacted as text.
//!   `Content-Length` is recomputed and `ETag` dropped.
//! - **block**: `403` problem+json `urn:kailash:problem:sensitive-data`,
//!   naming the kinds found, never the data.
//!
//! What cannot be inspected fails closed, answered as a block: a body over
//! the size limit (default 1 MiB), an encoded (`Content-Encoding`) body, a
//! JSON body that does not parse, a text body that is not UTF-8. Bodies of
//! other content types (images, octet streams) are not inspected. Every
//! inspected response with findings is counted in
//! `kailash_dlp_findings_total{kind, action}` (`action`: `redacted`,
//! `blocked`, or `allowed` when the caller's clearance let it through).
//!
//! The layer reads the [`Principal`], so it belongs inside authentication;
//! routes outside every rule pass untouched and unbuffered.
//!
//! ```
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//! use kailash_core::Principal;
//! use kailash_core::dlp::{DlpAction, DlpLayer, DlpRule};
//! use kailash_core::pii::PiiKind;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let rule = DlpRule::new("/api/customers", DlpAction::Redact)
//!     .unwrap()
//!     .kinds([PiiKind::Email, PiiKind::PaymentCard])
//!     .clearance("secret");
//! let svc = ServiceBuilder::new()
//!     .layer(DlpLayer::new().rule(rule).unwrap())
//!     .service_fn(|_req: Request<()>| async {
//!         let body = r#"{"name":"Ann","email":"ann@example.com"}"#;
//!         Ok::<_, std::convert::Infallible>(
//!             Response::builder().header("content-type", "application/json")
//!                 .body(Full::new(bytes::Bytes::from(body))).unwrap(),
//!         )
//!     });
//!
//! let as_user = |clearance: &str| {
//!     let mut req = Request::get("/api/customers/7").body(()).unwrap();
//!     req.extensions_mut().insert(Principal::builder("u").attribute("clearance", clearance).build());
//!     req
//! };
//! let seen = svc.clone().oneshot(as_user("internal")).await.unwrap();
//! let body = seen.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(&body[..], br#"{"email":"[REDACTED:email]","name":"Ann"}"#);
//! let cleared = svc.oneshot(as_user("secret")).await.unwrap();
//! let body = cleared.into_body().collect().await.unwrap().to_bytes();
//! assert!(std::str::from_utf8(&body).unwrap().contains("ann@example.com"));
//! # });
//! ```

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use pin_project_lite::pin_project;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tower::{Layer, Service};

use crate::pii::{Finding, PiiDetector, PiiKind, redact_findings};
use crate::principal::Principal;
use crate::problem::{Problem, ResponseBody};

/// What a rule does with a response carrying data the caller may not see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DlpAction {
    /// Replace each finding with `[REDACTED:<kind>]`.
    Redact,
    /// Answer `403 sensitive-data` instead.
    Block,
}

/// Why a DLP rule or layer cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DlpError {
    /// A path prefix that does not start with `/`.
    #[error("path {0:?} must start with '/'")]
    Path(String),
    /// A clearance not on the scale.
    #[error("clearance {0:?} is not one of the clearance levels")]
    Clearance(String),
    /// An empty or repeating clearance scale.
    #[error("clearance levels must be distinct and at least one")]
    Levels,
    /// More than [`MAX_RULES`] rules.
    #[error("at most {MAX_RULES} rules")]
    TooMany,
}

/// The most rules one layer holds.
pub const MAX_RULES: usize = 64;

/// The seed's clearance scale, lowest first.
pub const DEFAULT_LEVELS: [&str; 4] = ["public", "internal", "confidential", "secret"];

/// One route's rule; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct DlpRule {
    prefix: String,
    detector: PiiDetector,
    action: DlpAction,
    clearance: Option<String>,
}

impl DlpRule {
    /// Responses to `prefix` and below it (whole segments), looking for
    /// every kind, exempting nobody.
    pub fn new(prefix: &str, action: DlpAction) -> Result<Self, DlpError> {
        if !prefix.starts_with('/') {
            return Err(DlpError::Path(prefix.chars().take(64).collect()));
        }
        let prefix = if prefix.len() > 1 {
            prefix.trim_end_matches('/')
        } else {
            prefix
        };
        Ok(Self {
            prefix: prefix.to_owned(),
            detector: PiiDetector::all(),
            action,
            clearance: None,
        })
    }

    /// Looks for these kinds only.
    #[must_use]
    pub fn kinds(mut self, kinds: impl IntoIterator<Item = PiiKind>) -> Self {
        self.detector = PiiDetector::new(kinds);
        self
    }

    /// Callers with at least this clearance see responses untouched.
    #[must_use]
    pub fn clearance(mut self, level: &str) -> Self {
        self.clearance = Some(level.to_owned());
        self
    }

    fn applies(&self, path: &str) -> bool {
        crate::public::under(path, &self.prefix)
    }
}

#[derive(Debug, Clone)]
struct Rule {
    rule: DlpRule,
    /// Index on the scale of the rule's clearance.
    cleared_at: Option<usize>,
}

#[derive(Debug, Clone)]
struct Config {
    rules: Vec<Rule>,
    levels: Vec<String>,
    max_body: usize,
}

/// Redacts or blocks responses carrying personal data; see the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct DlpLayer {
    config: Arc<Config>,
}

impl Default for DlpLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl DlpLayer {
    /// A layer without rules (every response passes), on the default
    /// clearance scale, inspecting bodies up to 1 MiB.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                rules: Vec::new(),
                levels: DEFAULT_LEVELS.iter().map(|l| (*l).to_owned()).collect(),
                max_body: 1024 * 1024,
            }),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// The clearance scale, lowest first (set it before the rules).
    pub fn clearance_levels<I, S>(mut self, levels: I) -> Result<Self, DlpError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let levels: Vec<String> = levels.into_iter().map(Into::into).collect();
        let distinct: BTreeSet<&String> = levels.iter().collect();
        if levels.is_empty() || distinct.len() != levels.len() {
            return Err(DlpError::Levels);
        }
        let config = self.config_mut();
        config.levels = levels;
        let levels = config.levels.clone();
        for r in &mut config.rules {
            r.cleared_at = match &r.rule.clearance {
                Some(c) => Some(
                    levels
                        .iter()
                        .position(|l| l == c)
                        .ok_or_else(|| DlpError::Clearance(c.clone()))?,
                ),
                None => None,
            };
        }
        Ok(self)
    }

    /// Adds a rule (the first that applies to a path is used).
    pub fn rule(mut self, rule: DlpRule) -> Result<Self, DlpError> {
        let config = self.config_mut();
        if config.rules.len() == MAX_RULES {
            return Err(DlpError::TooMany);
        }
        let cleared_at = match &rule.clearance {
            Some(c) => Some(
                config
                    .levels
                    .iter()
                    .position(|l| l == c)
                    .ok_or_else(|| DlpError::Clearance(c.chars().take(64).collect()))?,
            ),
            None => None,
        };
        config.rules.push(Rule { rule, cleared_at });
        Ok(self)
    }

    /// The largest body inspected; larger ones are withheld.
    #[must_use]
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.config_mut().max_body = n;
        self
    }

    /// Whether any rule is set.
    pub fn is_empty(&self) -> bool {
        self.config.rules.is_empty()
    }
}

impl<S> Layer<S> for DlpLayer {
    type Service = Dlp<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Dlp {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`DlpLayer`].
#[derive(Debug, Clone)]
pub struct Dlp<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Dlp<S> {
    crate::inner_service_accessors!();
}

/// What a request's rule asks of its response.
#[derive(Debug, Clone, Copy)]
struct Inspect {
    detector: PiiDetector,
    action: DlpAction,
    /// The caller is cleared: findings are counted, nothing changed.
    cleared: bool,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Dlp<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = DlpFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let path = req.uri().path();
        let Some(rule) = self.config.rules.iter().find(|r| r.rule.applies(path)) else {
            return DlpFuture::pass(self.inner.call(req));
        };
        let cleared = rule.cleared_at.is_some_and(|at| {
            req.extensions()
                .get::<Principal>()
                .and_then(|p| p.attribute("clearance"))
                .and_then(|v| v.as_str())
                .and_then(|c| self.config.levels.iter().position(|l| l == c))
                .is_some_and(|level| level >= at)
        });
        let inspect = Inspect {
            detector: rule.rule.detector,
            action: rule.rule.action,
            cleared,
        };
        let max = self.config.max_body;
        let future = self.inner.call(req);
        DlpFuture::inspect(Box::pin(async move {
            let response = future.await?;
            Ok(inspect_response(response, inspect, max).await)
        }))
    }
}

type Boxed<B, E> = Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

pin_project! {
    /// The response future of [`Dlp`].
    pub struct DlpFuture<F, B, E> {
        #[pin]
        state: State<F, B, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B, E> {
        Pass { #[pin] future: F },
        Inspect { future: Boxed<B, E> },
    }
}

impl<F, B, E> DlpFuture<F, B, E> {
    fn pass(future: F) -> Self {
        Self {
            state: State::Pass { future },
        }
    }

    fn inspect(future: Boxed<B, E>) -> Self {
        Self {
            state: State::Inspect { future },
        }
    }
}

impl<F, B, E> Future for DlpFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Pass { future } => future
                .poll(cx)
                .map(|r| r.map(|response| response.map(ResponseBody::new))),
            StateProj::Inspect { future } => future.as_mut().poll(cx),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Json,
    Text,
}

fn content_kind(headers: &http::HeaderMap) -> Option<Kind> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = ct.split(';').next()?.trim().to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        Some(Kind::Json)
    } else if essence.starts_with("text/") {
        Some(Kind::Text)
    } else {
        None
    }
}

fn withheld<B>(kinds: &BTreeSet<PiiKind>) -> Response<ResponseBody<B>> {
    let detail = if kinds.is_empty() {
        "the response could not be inspected for personal data, so it is withheld"
    } else {
        "the response holds data above your clearance"
    };
    let mut problem =
        Problem::new(StatusCode::FORBIDDEN, "sensitive-data", "Forbidden").with_detail(detail);
    if !kinds.is_empty() {
        problem = problem.with_extension(
            "kinds",
            kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        );
    }
    crate::guard::GuardRefusal::response(&problem)
}

fn count(kinds: &BTreeSet<PiiKind>, action: &'static str) {
    for kind in kinds {
        metrics::counter!("kailash_dlp_findings_total", "kind" => kind.as_str(), "action" => action)
            .increment(1);
    }
}

/// Findings in every string of `value` (member names too), redacting them
/// when `redact`.
fn walk(value: &mut Value, detector: &PiiDetector, redact: bool, kinds: &mut BTreeSet<PiiKind>) {
    match value {
        Value::String(s) => scan(s, detector, redact, kinds),
        Value::Array(items) => {
            for item in items {
                walk(item, detector, redact, kinds);
            }
        }
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (mut key, mut item) in entries {
                scan(&mut key, detector, redact, kinds);
                walk(&mut item, detector, redact, kinds);
                map.insert(key, item);
            }
        }
        _ => {}
    }
}

/// Findings in one string, redacted when `redact`.
fn scan(s: &mut String, detector: &PiiDetector, redact: bool, kinds: &mut BTreeSet<PiiKind>) {
    let found: Vec<Finding> = detector.find(s);
    if !found.is_empty() {
        kinds.extend(found.iter().map(|f| f.kind));
        if redact {
            *s = redact_findings(s, &found);
        }
    }
}

async fn inspect_response<B>(
    response: Response<B>,
    inspect: Inspect,
    max: usize,
) -> Response<ResponseBody<B>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let none = BTreeSet::new();
    let Some(kind) = content_kind(response.headers()) else {
        return response.map(ResponseBody::new);
    };
    if response.headers().contains_key(header::CONTENT_ENCODING) {
        tracing::warn!("DLP: an encoded response cannot be inspected; withheld");
        return withheld(&none);
    }
    let (mut parts, body) = response.into_parts();
    let Ok(collected) = Limited::new(body, max).collect().await else {
        tracing::warn!(
            max,
            "DLP: a response over the inspection limit (or failing) was withheld"
        );
        return withheld(&none);
    };
    let bytes = collected.to_bytes();
    let mut kinds = BTreeSet::new();
    let redact = inspect.action == DlpAction::Redact && !inspect.cleared;
    let new_body = match kind {
        Kind::Json => {
            let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
                tracing::warn!("DLP: a JSON response that does not parse was withheld");
                return withheld(&none);
            };
            walk(&mut value, &inspect.detector, redact, &mut kinds);
            (redact && !kinds.is_empty()).then(|| {
                serde_json::to_vec(&value)
                    .map(Bytes::from)
                    .unwrap_or_default()
            })
        }
        Kind::Text => {
            let Ok(text) = std::str::from_utf8(&bytes) else {
                tracing::warn!("DLP: a text response that is not UTF-8 was withheld");
                return withheld(&none);
            };
            let found = inspect.detector.find(text);
            kinds.extend(found.iter().map(|f| f.kind));
            (redact && !found.is_empty()).then(|| Bytes::from(redact_findings(text, &found)))
        }
    };
    if kinds.is_empty() {
        return Response::from_parts(parts, ResponseBody::problem(bytes));
    }
    if inspect.cleared {
        count(&kinds, "allowed");
        return Response::from_parts(parts, ResponseBody::problem(bytes));
    }
    match (inspect.action, new_body) {
        (DlpAction::Redact, Some(body)) => {
            count(&kinds, "redacted");
            parts.headers.remove(header::ETAG);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            Response::from_parts(parts, ResponseBody::problem(body))
        }
        _ => {
            count(&kinds, "blocked");
            withheld(&kinds)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::Full;
    use tower::{ServiceBuilder, ServiceExt};

    use super::*;

    async fn call(
        layer: DlpLayer,
        path: &str,
        clearance: Option<&str>,
        content_type: &str,
        body: &'static str,
    ) -> (StatusCode, http::HeaderMap, String) {
        let ct = content_type.to_owned();
        let svc = ServiceBuilder::new()
            .layer(layer)
            .service_fn(move |_req: Request<()>| {
                let ct = ct.clone();
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", ct)
                            .header("etag", "\"v1\"")
                            .header("content-length", body.len())
                            .body(Full::new(Bytes::from(body)))
                            .unwrap(),
                    )
                }
            });
        let mut req = Request::get(path).body(()).unwrap();
        if let Some(c) = clearance {
            req.extensions_mut()
                .insert(Principal::builder("u").attribute("clearance", c).build());
        }
        let r = svc.oneshot(req).await.unwrap();
        let (parts, body) = r.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    const CUSTOMER: &str = r#"{"id":7,"contact":{"email":"ann@example.com","note":"card 4111-1111-1111-1111 \"ok\""},"tags":["x"]}"#;

    #[tokio::test]
    async fn redaction_keeps_json_valid_and_updates_headers() {
        let layer = DlpLayer::new()
            .rule(
                DlpRule::new("/api/customers", DlpAction::Redact)
                    .unwrap()
                    .clearance("secret"),
            )
            .unwrap();
        let (status, headers, body) = call(
            layer.clone(),
            "/api/customers/7",
            Some("confidential"),
            "application/json",
            CUSTOMER,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["contact"]["email"], "[REDACTED:email]");
        assert_eq!(v["contact"]["note"], "card [REDACTED:payment_card] \"ok\"");
        assert_eq!(headers["content-length"], body.len().to_string().as_str());
        assert!(!headers.contains_key("etag"));
        // Cleared, outside the rule, or nothing found: untouched.
        let (_, headers, body) = call(
            layer.clone(),
            "/api/customers/7",
            Some("secret"),
            "application/json",
            CUSTOMER,
        )
        .await;
        assert_eq!(body, CUSTOMER);
        assert!(headers.contains_key("etag"));
        let (_, _, body) = call(
            layer.clone(),
            "/api/customersx",
            None,
            "application/json",
            CUSTOMER,
        )
        .await;
        assert_eq!(body, CUSTOMER);
        let (_, _, body) = call(
            layer.clone(),
            "/api/customers",
            None,
            "application/json",
            r#"{"a":1}"#,
        )
        .await;
        assert_eq!(body, r#"{"a":1}"#);
        // Text is redacted as text; other types pass.
        let (_, _, body) = call(
            layer.clone(),
            "/api/customers",
            None,
            "text/plain",
            "mail ann@example.com",
        )
        .await;
        assert_eq!(body, "mail [REDACTED:email]");
        let (_, _, body) = call(
            layer,
            "/api/customers",
            None,
            "image/png",
            "ann@example.com",
        )
        .await;
        assert_eq!(body, "ann@example.com");
    }

    #[tokio::test]
    async fn blocking_and_what_cannot_be_inspected_fail_closed() {
        let layer = DlpLayer::new()
            .rule(
                DlpRule::new("/reports/", DlpAction::Block)
                    .unwrap()
                    .kinds([PiiKind::UsSsn]),
            )
            .unwrap()
            .max_body_bytes(64);
        let (status, headers, body) = call(
            layer.clone(),
            "/reports/q1",
            Some("secret"),
            "application/json",
            r#"{"ssn":"123-45-6789"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(headers["content-type"], crate::problem::PROBLEM_JSON);
        assert!(
            body.contains("sensitive-data") && body.contains("us_ssn"),
            "{body}"
        );
        assert!(!body.contains("6789"));
        // Only the chosen kinds.
        let (status, _, _) = call(
            layer.clone(),
            "/reports/q1",
            None,
            "application/json",
            r#"{"mail":"ann@example.com"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        // Too large, not JSON, not UTF-8: withheld.
        let big: &'static str = Box::leak(format!("[{}]", "1,".repeat(40) + "1").into_boxed_str());
        for (ct, body) in [("application/json", big), ("application/json", "{nope")] {
            let (status, _, _) = call(layer.clone(), "/reports", None, ct, body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        }
    }

    #[test]
    fn rules_and_scales_that_cannot_work_are_refused() {
        assert!(matches!(
            DlpRule::new("api", DlpAction::Block),
            Err(DlpError::Path(_))
        ));
        let rule = DlpRule::new("/a", DlpAction::Block)
            .unwrap()
            .clearance("top");
        assert!(matches!(
            DlpLayer::new().rule(rule.clone()),
            Err(DlpError::Clearance(_))
        ));
        let custom = DlpLayer::new().clearance_levels(["low", "top"]).unwrap();
        assert!(custom.rule(rule).is_ok());
        assert_eq!(
            DlpLayer::new().clearance_levels(["a", "a"]).unwrap_err(),
            DlpError::Levels
        );
        assert_eq!(
            DlpLayer::new()
                .clearance_levels(Vec::<String>::new())
                .unwrap_err(),
            DlpError::Levels
        );
    }
}
