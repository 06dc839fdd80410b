//! Transport policy: HTTPS required ([`HttpsPolicyLayer`]), HTTP Strict
//! Transport Security ([`Hsts`]) and the browser security headers
//! ([`SecurityHeadersLayer`]).
//!
//! Whether a request is secure is decided once, by
//! [`SetRequestContextLayer`](crate::context::SetRequestContextLayer)
//! ([`RequestContext::is_secure`]): it arrived on a TLS connection (the
//! server inserted [`TlsConnection`](crate::context::TlsConnection)), or
//! from a trusted proxy whose own `X-Forwarded-Proto` value is `https`. A
//! client cannot make a plain request secure with a header.
//!
//! [`HttpsPolicyLayer`] answers a plain `GET`/`HEAD` with `308 Permanent
//! Redirect` to the same path on `https://` (the requested host, the
//! configured HTTPS port), and any other plain request with `400`
//! problem+json `urn:kailash:problem:https-required` — a redirected `POST`
//! would already have sent its body in the clear, so it is refused rather
//! than repeated. Paths can be exempted (health probes, which a kubelet
//! sends over plain HTTP). Refusals and redirects are counted in
//! `kailash_security_https_refusals_total{outcome}`. With [`Hsts`], secure
//! responses carry `Strict-Transport-Security` (RFC 6797 forbids it on
//! plain ones). Like the allow-list, the layer fails closed: a request
//! without a [`RequestContext`] counts as plain.
//!
//! ```
//! use http::{Request, Response, StatusCode, header};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use kailash_core::context::{PeerAddr, SetRequestContextLayer, TlsConnection};
//! use kailash_core::transport::{Hsts, HttpsPolicyLayer, SecurityHeaders};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let mut svc = ServiceBuilder::new()
//!     .layer(SecurityHeaders::default().layer())
//!     .layer(SetRequestContextLayer::new())
//!     .layer(
//!         HttpsPolicyLayer::new()
//!             .exempt("/health/live")
//!             .unwrap()
//!             .hsts(Hsts::new(std::time::Duration::from_secs(31_536_000)))
//!             .unwrap(),
//!     )
//!     .service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
//!     });
//!
//! let request = |path: &str, tls: bool| {
//!     let mut req = Request::get(path).header("host", "api.example.com").body(()).unwrap();
//!     req.extensions_mut().insert(PeerAddr("192.0.2.1:9".parse().unwrap()));
//!     if tls {
//!         req.extensions_mut().insert(TlsConnection);
//!     }
//!     req
//! };
//! let plain = svc.ready().await.unwrap().call(request("/orders?page=2", false)).await.unwrap();
//! assert_eq!(plain.status(), StatusCode::PERMANENT_REDIRECT);
//! assert_eq!(plain.headers()[header::LOCATION], "https://api.example.com/orders?page=2");
//! let secure = svc.ready().await.unwrap().call(request("/orders", true)).await.unwrap();
//! assert_eq!(secure.status(), StatusCode::OK);
//! assert_eq!(secure.headers()[header::STRICT_TRANSPORT_SECURITY], "max-age=31536000");
//! assert_eq!(secure.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
//! // The kubelet's probe stays on plain HTTP.
//! let probe = svc.ready().await.unwrap().call(request("/health/live", false)).await.unwrap();
//! assert_eq!(probe.status(), StatusCode::OK);
//! # });
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Method, Request, Response, StatusCode, Uri};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tower_http::set_header::{SetResponseHeader, SetResponseHeaderLayer};

use crate::context::RequestContext;
use crate::problem::{Problem, ResponseBody};

/// The shortest `max-age` the HSTS preload list accepts (one year).
pub const PRELOAD_MIN_AGE: Duration = Duration::from_secs(31_536_000);

/// The most exempt paths one policy holds.
pub const MAX_EXEMPT: usize = 256;

/// An HTTP Strict Transport Security policy (RFC 6797): browsers that saw
/// it use only HTTPS for the host for `max_age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hsts {
    max_age: Duration,
    include_subdomains: bool,
    preload: bool,
}

/// Why a transport policy cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// `preload` without what the preload list requires.
    #[error(
        "HSTS preload needs include_subdomains and a max-age of at least one year (31536000 s)"
    )]
    Preload,
    /// `max_age` is zero (which tells browsers to forget the policy).
    #[error("HSTS max-age must be positive; leave HSTS out instead of sending max-age=0")]
    ZeroAge,
    /// An exempt path that does not start with `/`.
    #[error("exempt path {0:?} must start with '/'")]
    Path(String),
    /// More than [`MAX_EXEMPT`] exempt paths.
    #[error("at most {MAX_EXEMPT} exempt paths")]
    TooMany,
    /// A header value that cannot be sent.
    #[error("{0} is not a valid header value")]
    Header(&'static str),
}

impl Hsts {
    /// A policy for this host only, for `max_age`.
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            include_subdomains: false,
            preload: false,
        }
    }

    /// Covers the host's subdomains too (`includeSubDomains`).
    #[must_use]
    pub fn include_subdomains(mut self) -> Self {
        self.include_subdomains = true;
        self
    }

    /// Asks to be on the browsers' preload list (`preload`; needs
    /// subdomains and a year, checked when the header is made).
    #[must_use]
    pub fn preload(mut self) -> Self {
        self.preload = true;
        self
    }

    /// The `Strict-Transport-Security` value.
    pub fn header_value(&self) -> Result<HeaderValue, TransportError> {
        if self.max_age.is_zero() {
            return Err(TransportError::ZeroAge);
        }
        if self.preload && (!self.include_subdomains || self.max_age < PRELOAD_MIN_AGE) {
            return Err(TransportError::Preload);
        }
        let mut value = format!("max-age={}", self.max_age.as_secs());
        if self.include_subdomains {
            value.push_str("; includeSubDomains");
        }
        if self.preload {
            value.push_str("; preload");
        }
        HeaderValue::try_from(value).map_err(|_| TransportError::Header("HSTS"))
    }
}

#[derive(Debug, Clone)]
struct Policy {
    require: bool,
    exempt: Vec<String>,
    https_port: u16,
    hsts: Option<HeaderValue>,
}

impl Policy {
    fn exempt(&self, path: &str) -> bool {
        self.exempt
            .iter()
            .any(|p| crate::public::exempt_under(path, p))
    }

    /// Where a plain request should have gone, when the request names a
    /// host that can be redirected to (no userinfo, a valid authority).
    fn redirect_target(&self, req_uri: &Uri, host: Option<&HeaderValue>) -> Option<HeaderValue> {
        let authority = match req_uri.authority() {
            Some(a) => a.clone(),
            None => Authority::try_from(host?.as_bytes()).ok()?,
        };
        if authority.as_str().contains('@')
            || (authority.as_str().len() > authority.host().len() && authority.port_u16().is_none())
        {
            return None;
        }
        let host = authority.host();
        let authority = match self.https_port {
            443 => host.to_owned(),
            port => format!("{host}:{port}"),
        };
        let path = req_uri.path_and_query().map_or("/", |p| p.as_str());
        let uri = Uri::builder()
            .scheme(Scheme::HTTPS)
            .authority(authority)
            .path_and_query(path)
            .build()
            .ok()?;
        HeaderValue::try_from(uri.to_string()).ok()
    }
}

/// Requires HTTPS and sets HSTS on secure responses. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct HttpsPolicyLayer {
    policy: Arc<Policy>,
}

impl Default for HttpsPolicyLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpsPolicyLayer {
    /// A policy that requires HTTPS on every path, redirecting to port 443,
    /// without HSTS.
    pub fn new() -> Self {
        Self {
            policy: Arc::new(Policy {
                require: true,
                exempt: Vec::new(),
                https_port: 443,
                hsts: None,
            }),
        }
    }

    /// A policy that lets plain requests through and only sets HSTS on
    /// secure responses (a service that serves both while it migrates).
    pub fn hsts_only(hsts: Hsts) -> Result<Self, TransportError> {
        let mut layer = Self::new().hsts(hsts)?;
        Arc::make_mut(&mut layer.policy).require = false;
        Ok(layer)
    }

    /// Lets plain requests to `prefix` and below it through (whole path
    /// segments: `/health` covers `/health/live`, not `/healthz`; never a
    /// path with a `.` or `..` segment, which a router could resolve to
    /// somewhere else). Refuses
    /// a prefix that does not start with `/` and more than [`MAX_EXEMPT`].
    pub fn exempt(mut self, prefix: &str) -> Result<Self, TransportError> {
        if !prefix.starts_with('/') {
            return Err(TransportError::Path(prefix.chars().take(64).collect()));
        }
        let policy = Arc::make_mut(&mut self.policy);
        if policy.exempt.len() == MAX_EXEMPT {
            return Err(TransportError::TooMany);
        }
        let prefix = if prefix.len() > 1 {
            prefix.trim_end_matches('/')
        } else {
            prefix
        };
        policy.exempt.push(prefix.to_owned());
        Ok(self)
    }

    /// The port redirects point at (default 443, which URLs leave out).
    #[must_use]
    pub fn https_port(mut self, port: u16) -> Self {
        Arc::make_mut(&mut self.policy).https_port = port;
        self
    }

    /// Sends `hsts` on every secure response.
    pub fn hsts(mut self, hsts: Hsts) -> Result<Self, TransportError> {
        let value = hsts.header_value()?;
        Arc::make_mut(&mut self.policy).hsts = Some(value);
        Ok(self)
    }

    /// Whether plain requests are refused or redirected.
    pub fn requires_https(&self) -> bool {
        self.policy.require
    }

    /// Whether plain requests to `path` are refused or redirected.
    pub fn applies_to(&self, path: &str) -> bool {
        self.policy.require && !self.policy.exempt(path)
    }
}

impl<S> Layer<S> for HttpsPolicyLayer {
    type Service = HttpsPolicy<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpsPolicy {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service of [`HttpsPolicyLayer`].
#[derive(Debug, Clone)]
pub struct HttpsPolicy<S> {
    inner: S,
    policy: Arc<Policy>,
}

impl<S> HttpsPolicy<S> {
    crate::inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HttpsPolicy<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = HttpsFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let policy = &*self.policy;
        let secure = req
            .extensions()
            .get::<RequestContext>()
            .is_some_and(RequestContext::is_secure);
        if secure || !policy.require || policy.exempt(req.uri().path()) {
            let hsts = if secure { policy.hsts.clone() } else { None };
            return HttpsFuture::pass(self.inner.call(req), hsts);
        }
        let redirect = matches!(*req.method(), Method::GET | Method::HEAD)
            .then(|| policy.redirect_target(req.uri(), req.headers().get(header::HOST)))
            .flatten();
        let response = match redirect {
            Some(location) => {
                metrics::counter!("kailash_security_https_refusals_total", "outcome" => "redirected")
                    .increment(1);
                let mut response = Response::new(ResponseBody::problem(Bytes::new()));
                *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
                response.headers_mut().insert(header::LOCATION, location);
                response
            }
            None => {
                metrics::counter!("kailash_security_https_refusals_total", "outcome" => "refused")
                    .increment(1);
                Problem::new(StatusCode::BAD_REQUEST, "https-required", "HTTPS Required")
                    .with_detail("this service accepts requests over HTTPS only")
                    .to_response()
            }
        };
        HttpsFuture::answered(response)
    }
}

pin_project! {
    /// The response future of [`HttpsPolicy`].
    pub struct HttpsFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        // Passed on; `hsts` is added to the response.
        Pass { #[pin] future: F, hsts: Option<HeaderValue> },
        // Answered here (a redirect or a refusal).
        Answered { response: Option<Response<ResponseBody<B>>> },
    }
}

impl<F, B> HttpsFuture<F, B> {
    fn pass(future: F, hsts: Option<HeaderValue>) -> Self {
        Self {
            state: State::Pass { future, hsts },
        }
    }

    fn answered(response: Response<ResponseBody<B>>) -> Self {
        Self {
            state: State::Answered {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for HttpsFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Pass { future, hsts } => {
                let mut response = ready!(future.poll(cx))?;
                if let Some(value) = hsts.take()
                    && !response
                        .headers()
                        .contains_key(header::STRICT_TRANSPORT_SECURITY)
                {
                    response
                        .headers_mut()
                        .insert(header::STRICT_TRANSPORT_SECURITY, value);
                }
                Poll::Ready(Ok(response.map(ResponseBody::new)))
            }
            StateProj::Answered { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Pending,
            },
        }
    }
}

/// The `Content-Security-Policy` [`SecurityHeaders`] sends by default:
/// no page of this service may be framed (clickjacking), and nothing else
/// is restricted, so pages that set their own policy keep it.
pub const DEFAULT_CSP: &str = "frame-ancestors 'none'";

/// The security headers every response gets unless it sets its own:
/// `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
/// `Content-Security-Policy: frame-ancestors 'none'` and its predecessor
/// `X-Frame-Options: DENY`. Each can be changed or left out; a response
/// that already carries a header (the API explorer's strict policy, a
/// route's own) keeps its value.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    content_type_options: Option<HeaderValue>,
    referrer_policy: Option<HeaderValue>,
    content_security_policy: Option<HeaderValue>,
    frame_options: Option<HeaderValue>,
}

impl Default for SecurityHeaders {
    fn default() -> Self {
        Self {
            content_type_options: Some(HeaderValue::from_static("nosniff")),
            referrer_policy: Some(HeaderValue::from_static("no-referrer")),
            content_security_policy: Some(HeaderValue::from_static(DEFAULT_CSP)),
            frame_options: Some(HeaderValue::from_static("DENY")),
        }
    }
}

fn header_value(
    value: Option<&str>,
    name: &'static str,
) -> Result<Option<HeaderValue>, TransportError> {
    value
        .map(|v| HeaderValue::from_str(v).map_err(|_| TransportError::Header(name)))
        .transpose()
}

impl SecurityHeaders {
    /// The `Content-Security-Policy` (`None`: leave it out).
    pub fn content_security_policy(mut self, value: Option<&str>) -> Result<Self, TransportError> {
        self.content_security_policy = header_value(value, "Content-Security-Policy")?;
        Ok(self)
    }

    /// The `Referrer-Policy` (`None`: leave it out).
    pub fn referrer_policy(mut self, value: Option<&str>) -> Result<Self, TransportError> {
        self.referrer_policy = header_value(value, "Referrer-Policy")?;
        Ok(self)
    }

    /// The `X-Frame-Options` (`None`: leave it out).
    pub fn frame_options(mut self, value: Option<&str>) -> Result<Self, TransportError> {
        self.frame_options = header_value(value, "X-Frame-Options")?;
        Ok(self)
    }

    /// The layer setting these headers.
    pub fn layer(&self) -> SecurityHeadersLayer {
        SecurityHeadersLayer {
            headers: self.clone(),
        }
    }
}

/// Sets [`SecurityHeaders`] on responses that do not carry them, with
/// tower-http's [`SetResponseHeaderLayer`] (`if_not_present`).
#[derive(Debug, Clone)]
pub struct SecurityHeadersLayer {
    headers: SecurityHeaders,
}

type Set<S> = SetResponseHeader<S, Option<HeaderValue>>;

/// The service of [`SecurityHeadersLayer`].
pub type SecurityHeadersService<S> = Set<Set<Set<Set<S>>>>;

fn set(
    name: HeaderName,
    value: &Option<HeaderValue>,
) -> SetResponseHeaderLayer<Option<HeaderValue>> {
    SetResponseHeaderLayer::if_not_present(name, value.clone())
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeadersService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let h = &self.headers;
        let inner = set(header::X_FRAME_OPTIONS, &h.frame_options).layer(inner);
        let inner = set(header::CONTENT_SECURITY_POLICY, &h.content_security_policy).layer(inner);
        let inner = set(header::REFERRER_POLICY, &h.referrer_policy).layer(inner);
        set(header::X_CONTENT_TYPE_OPTIONS, &h.content_type_options).layer(inner)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{ServiceBuilder, ServiceExt};

    use super::*;
    use crate::context::{PeerAddr, SetRequestContextLayer, TlsConnection, TrustedProxies};

    async fn call(
        layer: HttpsPolicyLayer,
        method: Method,
        uri: &str,
        host: Option<&str>,
        tls: bool,
    ) -> Response<ResponseBody<String>> {
        let svc = ServiceBuilder::new()
            .layer(
                SetRequestContextLayer::new()
                    .trusted_proxies(TrustedProxies::new(["10.0.0.0/8".parse().unwrap()])),
            )
            .layer(layer)
            .service_fn(|_req: Request<()>| async {
                Ok::<_, Infallible>(Response::new("handled".to_owned()))
            });
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(host) = host {
            req = req.header("host", host);
        }
        let mut req = req.body(()).unwrap();
        req.extensions_mut()
            .insert(PeerAddr("192.0.2.1:9".parse().unwrap()));
        if tls {
            req.extensions_mut().insert(TlsConnection);
        }
        svc.oneshot(req).await.unwrap()
    }

    fn location(response: &Response<ResponseBody<String>>) -> &str {
        response.headers()[header::LOCATION].to_str().unwrap()
    }

    #[tokio::test]
    async fn plain_reads_are_redirected_to_the_same_place() {
        let layer = HttpsPolicyLayer::new();
        let r = call(
            layer.clone(),
            Method::GET,
            "/a/b?x=1&y=%20",
            Some("example.com"),
            false,
        )
        .await;
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(location(&r), "https://example.com/a/b?x=1&y=%20");
        // The plain port is dropped; a configured HTTPS port is named.
        let r = call(
            layer.clone(),
            Method::HEAD,
            "/",
            Some("example.com:80"),
            false,
        )
        .await;
        assert_eq!(location(&r), "https://example.com/");
        let r = call(
            layer.clone().https_port(8443),
            Method::GET,
            "/",
            Some("example.com:8080"),
            false,
        )
        .await;
        assert_eq!(location(&r), "https://example.com:8443/");
        let r = call(
            layer.clone(),
            Method::GET,
            "/",
            Some("[2001:db8::1]:80"),
            false,
        )
        .await;
        assert_eq!(location(&r), "https://[2001:db8::1]/");
        // HTTP/2 (and absolute-form) requests name the authority in the URI.
        let r = call(
            layer.clone(),
            Method::GET,
            "http://api.example.com/x",
            None,
            false,
        )
        .await;
        assert_eq!(location(&r), "https://api.example.com/x");
        assert!(!r.headers().contains_key(header::STRICT_TRANSPORT_SECURITY));
    }

    #[tokio::test]
    async fn what_cannot_be_redirected_is_refused() {
        let layer = HttpsPolicyLayer::new();
        for (method, host) in [
            (Method::POST, Some("example.com")),
            (Method::DELETE, Some("example.com")),
            (Method::GET, None),
            (Method::GET, Some("user:pw@example.com")),
            (Method::GET, Some("exa mple.com")),
            (Method::GET, Some("example.com:99999")),
        ] {
            let r = call(layer.clone(), method.clone(), "/orders", host, false).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{method} {host:?}");
            assert_eq!(
                r.headers()[header::CONTENT_TYPE],
                crate::problem::PROBLEM_JSON
            );
            assert!(!r.headers().contains_key(header::LOCATION));
        }
    }

    #[tokio::test]
    async fn secure_requests_pass_with_hsts_and_exempt_paths_pass_plain() {
        let layer = HttpsPolicyLayer::new()
            .exempt("/health/")
            .unwrap()
            .hsts(Hsts::new(Duration::from_secs(600)).include_subdomains())
            .unwrap();
        let r = call(layer.clone(), Method::POST, "/orders", None, true).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::STRICT_TRANSPORT_SECURITY],
            "max-age=600; includeSubDomains"
        );
        for path in ["/health", "/health/live"] {
            let r = call(layer.clone(), Method::GET, path, Some("h"), false).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            // Never HSTS over plain HTTP (RFC 6797 §7.2).
            assert!(!r.headers().contains_key(header::STRICT_TRANSPORT_SECURITY));
        }
        let r = call(layer.clone(), Method::GET, "/healthz", Some("h"), false).await;
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert!(layer.applies_to("/healthz") && !layer.applies_to("/health/ready"));
        // A dot segment never rides an exemption to another path.
        assert!(layer.applies_to("/health/../auth/login"));
        assert!(layer.applies_to("/health/%2E%2E/auth/login"));
        // HSTS alone lets plain requests through.
        let only = HttpsPolicyLayer::hsts_only(Hsts::new(Duration::from_secs(60))).unwrap();
        let r = call(only.clone(), Method::POST, "/x", None, false).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(!r.headers().contains_key(header::STRICT_TRANSPORT_SECURITY));
        let r = call(only, Method::POST, "/x", None, true).await;
        assert_eq!(r.headers()[header::STRICT_TRANSPORT_SECURITY], "max-age=60");
    }

    #[test]
    fn policies_that_cannot_work_are_refused() {
        let year = PRELOAD_MIN_AGE;
        assert_eq!(
            Hsts::new(year)
                .include_subdomains()
                .preload()
                .header_value()
                .unwrap(),
            "max-age=31536000; includeSubDomains; preload"
        );
        assert_eq!(
            Hsts::new(year).preload().header_value(),
            Err(TransportError::Preload)
        );
        assert_eq!(
            Hsts::new(year - Duration::from_secs(1))
                .include_subdomains()
                .preload()
                .header_value(),
            Err(TransportError::Preload)
        );
        assert_eq!(
            Hsts::new(Duration::ZERO).header_value(),
            Err(TransportError::ZeroAge)
        );
        assert!(matches!(
            HttpsPolicyLayer::new().exempt("health"),
            Err(TransportError::Path(_))
        ));
        let mut layer = HttpsPolicyLayer::new();
        for i in 0..MAX_EXEMPT {
            layer = layer.exempt(&format!("/p{i}")).unwrap();
        }
        assert_eq!(
            layer.exempt("/one-more").unwrap_err(),
            TransportError::TooMany
        );
        assert!(
            SecurityHeaders::default()
                .content_security_policy(Some("bad\nvalue"))
                .is_err()
        );
    }

    #[tokio::test]
    async fn security_headers_keep_a_responses_own() {
        let svc = ServiceBuilder::new()
            .layer(
                SecurityHeaders::default()
                    .referrer_policy(None)
                    .unwrap()
                    .layer(),
            )
            .service_fn(|req: Request<()>| async move {
                let mut response = Response::new(());
                if req.uri().path() == "/docs" {
                    response.headers_mut().insert(
                        header::CONTENT_SECURITY_POLICY,
                        HeaderValue::from_static("default-src 'none'"),
                    );
                }
                Ok::<_, Infallible>(response)
            });
        let r = svc
            .clone()
            .oneshot(Request::get("/x").body(()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], DEFAULT_CSP);
        assert_eq!(r.headers()[header::X_FRAME_OPTIONS], "DENY");
        assert!(!r.headers().contains_key(header::REFERRER_POLICY));
        let r = svc
            .oneshot(Request::get("/docs").body(()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            r.headers()[header::CONTENT_SECURITY_POLICY],
            "default-src 'none'"
        );
    }
}
