//! End-to-end behaviour of the gateway over real TCP connections.

mod support;

#[path = "gateway/alerting.rs"]
mod alerting;
#[path = "gateway/health.rs"]
mod health;
#[path = "gateway/ops.rs"]
mod ops;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{self, post};
use kailash::audit::{AuditEvent, AuditSink, MemoryAuditSink};
use kailash::context::{RequestContext, TrustedProxies};
use kailash::health::from_fn;
use kailash::state::RateQuota;
use kailash::{Gateway, Principal, RateLimits};
use support::{get, request, sample, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn app() -> Router {
    Router::new()
        .route("/hello", routing::get(|| async { "hello" }))
        .route("/echo", post(|body: axum::body::Bytes| async move { body }))
        .route("/big", routing::get(|| async { "x".repeat(64 * 1024) }))
        .route(
            "/slow",
            routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "done"
            }),
        )
        .route("/hang", routing::get(std::future::pending::<&'static str>))
        .route(
            "/ip",
            routing::get(|ctx: RequestContext| async move { ctx.client_ip().to_string() }),
        )
        .route(
            "/me",
            routing::get(|p: Principal| async move { p.subject().to_owned() }),
        )
}

#[tokio::test]
async fn operational_routes_answer() {
    let gw = start(
        Gateway::builder()
            .title("Test API")
            .version("9.9.9")
            .routes(app()),
    )
    .await;
    let live = get(gw.addr, "/health/live").await;
    assert_eq!(live.status, 200);
    assert_eq!(live.json()["status"], "ok");
    let ready = get(gw.addr, "/health/ready").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ok");

    const HELLO: &str = "http_requests_total{method=\"GET\",route=\"/hello\",status=\"2xx\"}";
    let before = sample(&get(gw.addr, "/metrics").await.text(), HELLO);
    assert_eq!(get(gw.addr, "/hello").await.text(), "hello");
    let metrics = get(gw.addr, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = metrics.text();
    assert_eq!(sample(&text, HELLO) - before, 1.0, "{text}");
    assert!(
        text.contains(
            "http_request_duration_seconds_bucket{method=\"GET\",route=\"/health/ready\""
        )
    );

    let doc = get(gw.addr, "/openapi.json").await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Test API");
    assert_eq!(doc["info"]["version"], "9.9.9");
    for path in [
        "/health/live",
        "/health/ready",
        "/metrics",
        "/openapi.json",
        "/docs",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    let page = get(gw.addr, "/docs").await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(page.text().contains("<title>Test API 9.9.9"));
    gw.stop().await;
}

/// The `src`/`href` values of an HTML page, in order.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attr in [" src=\"", " href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            rest = &rest[at + attr.len()..];
            let end = rest.find('"').expect("closing quote");
            found.push(rest[..end].to_owned());
        }
    }
    found
}

/// Whether text names another origin: an absolute or protocol-relative URL.
fn is_external(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["http:", "https:", "ws:", "wss:", "\"//", "'//", "(//"]
        .iter()
        .any(|p| lower.contains(p))
}

#[tokio::test]
async fn docs_explorer_is_self_contained() {
    let gw = start(
        Gateway::builder()
            .title("Test <API> & \"Co\"")
            .version("9.9.9")
            .description("Try <b>it</b>")
            .routes(app()),
    )
    .await;
    let page = get(gw.addr, "/docs").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let csp = page.header("content-security-policy").unwrap().to_owned();
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    for want in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(directives.contains(&want), "{want} in {csp}");
    }
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    assert!(!is_external(&csp), "no other origin in {csp}");

    // The configured title, version and description, escaped.
    let html = page.text();
    assert!(
        html.contains("<title>Test &lt;API&gt; &amp; &quot;Co&quot; 9.9.9"),
        "{html}"
    );
    assert!(html.contains("Try &lt;b&gt;it&lt;/b&gt;"), "{html}");
    assert!(!html.contains("<API>") && !html.contains("<b>"), "{html}");
    assert!(!is_external(&html), "no other origin in the page: {html}");
    // No inline script: every script element names its source and is empty.
    let scripts = html.matches("<script").count();
    assert!(scripts >= 2, "{html}");
    assert_eq!(
        scripts,
        html.matches("\"></script>").count(),
        "only `<script src=...></script>`: {html}"
    );
    assert!(!html.contains("<style"), "no inline style element: {html}");

    // Every reference is served from this gateway with the right type.
    let refs = references(&html);
    assert!(refs.len() >= 3, "{refs:?}");
    for r in refs {
        if r.starts_with("data:") {
            continue;
        }
        assert!(
            !is_external(&r) && !r.starts_with("//") && !r.starts_with('/'),
            "{r}: relative to /docs, on this origin"
        );
        // Relative to `/docs`.
        let path = format!("/{r}");
        let asset = get(gw.addr, &path).await;
        assert_eq!(asset.status, 200, "{path}");
        let want = if path.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else if path.ends_with(".json") {
            "application/json"
        } else {
            panic!("unexpected reference {path}")
        };
        assert_eq!(asset.header("content-type"), Some(want), "{path}");
        if path.starts_with("/docs/") {
            assert_eq!(asset.header("x-content-type-options"), Some("nosniff"));
            assert_eq!(asset.header("content-security-policy"), Some(csp.as_str()));
        }
        if path.starts_with("/docs/assets/") {
            // Versioned: cached for good.
            assert_eq!(
                asset.header("cache-control"),
                Some("public, max-age=31536000, immutable"),
                "{path}"
            );
            assert!(asset.body.len() > 1_000_000, "the renderer's bundle");
        }
        if path == "/docs/explorer.js" {
            // The generated configuration: the document on this origin,
            // nothing that reaches another one.
            let js = asset.text();
            assert_eq!(asset.header("cache-control"), Some("no-cache"));
            assert!(js.contains("\"url\":\"openapi.json\""), "{js}");
            assert!(js.contains("\"withDefaultFonts\":false"), "{js}");
            assert!(js.contains("\"telemetry\":false"), "{js}");
            assert!(
                js.contains("\"preferredSecurityScheme\":\"bearer\""),
                "{js}"
            );
            assert!(!is_external(&js), "no other origin in {js}");
        }
    }
    let doc = get(gw.addr, "/openapi.json").await.json();
    assert_eq!(doc["info"]["title"], "Test <API> & \"Co\"");
    gw.stop().await;
}

/// A user's route, documented and validated the way the gateway's own are
/// (docs/api-contract.md shows this example).
mod notes {
    use kailash::Problem;
    use kailash::schema::ValidJson;
    use serde::{Deserialize, Serialize};
    use utoipa::ToSchema;

    /// What a client sends to create a note.
    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct NewNote {
        /// 1 to 200 characters.
        #[schema(min_length = 1, max_length = 200)]
        title: String,
        /// At most 8 tags.
        #[schema(max_items = 8)]
        tags: Vec<String>,
        /// 1 to 5.
        #[schema(minimum = 1, maximum = 5)]
        priority: Option<u8>,
    }

    /// A note.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct Note {
        title: String,
        tags: usize,
        priority: u8,
    }

    #[utoipa::path(post, path = "/notes", security(()),
        request_body = NewNote,
        responses(
            (status = 201, body = Note, description = "Created"),
            (status = 400, body = Problem, content_type = "application/problem+json", description = "Not JSON"),
            (status = 415, body = Problem, content_type = "application/problem+json", description = "Not application/json"),
            (status = 422, body = Problem, content_type = "application/problem+json", description = "Does not match the schema"),
        ))]
    pub(crate) async fn create(
        ValidJson(note): ValidJson<NewNote>,
    ) -> (axum::http::StatusCode, axum::Json<Note>) {
        let note = Note {
            title: note.title,
            tags: note.tags.len(),
            priority: note.priority.unwrap_or(3),
        };
        (axum::http::StatusCode::CREATED, axum::Json(note))
    }

    #[derive(utoipa::OpenApi)]
    #[openapi(paths(create))]
    pub(crate) struct NotesApi;
}

#[tokio::test]
async fn user_routes_are_documented_from_their_types_and_validated_alike() {
    use utoipa::OpenApi as _;
    kailash::schema::check_document(&notes::NotesApi::openapi()).unwrap();
    let gw = start(
        Gateway::builder()
            .routes(app().route("/notes", post(notes::create)))
            .openapi(notes::NotesApi::openapi()),
    )
    .await;
    let doc = get(gw.addr, "/openapi.json").await.json();
    let op = &doc["paths"]["/notes"]["post"];
    let body = &doc["components"]["schemas"]["NewNote"];
    assert_eq!(body["additionalProperties"], false);
    assert_eq!(body["properties"]["title"]["maxLength"], 200);
    // The gateway's own layers' statuses are on the operation too.
    for code in ["201", "400", "413", "415", "422", "429", "503", "504"] {
        assert!(op["responses"][code].is_object(), "{code} documented");
    }
    assert!(doc["paths"]["/metrics"].is_object());

    let send = |body: &'static str| {
        let head = format!(
            "POST /notes HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: {}",
            body.len()
        );
        async move { request(gw.addr, &head, body.as_bytes()).await }
    };
    let ok = send(r#"{"title":"hi","tags":["a"]}"#).await;
    assert_eq!(ok.status, 201, "{}", ok.text());
    let bad = send(r#"{"title":"","tags":[],"priority":9,"colour":"red"}"#).await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.header("content-type"), Some("application/problem+json"));
    let pointers: Vec<String> = bad.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pointers, ["/colour", "/priority", "/title"]);
    gw.stop().await;
}

#[tokio::test]
async fn two_documents_of_one_operation_are_refused_at_build() {
    use utoipa::OpenApi as _;
    let built = Gateway::builder()
        .routes(app().route("/notes", post(notes::create)))
        .openapi(notes::NotesApi::openapi())
        .openapi(notes::NotesApi::openapi())
        .build();
    let Err(error) = built else {
        panic!("a duplicated operation must be refused")
    };
    assert!(error.to_string().contains("/notes"), "{error}");
}

#[tokio::test]
async fn a_failing_required_check_makes_ready_503_and_names_it() {
    let gw = start(
        Gateway::builder()
            .required_check(
                "database",
                from_fn(|| async { Err("connection refused".to_owned()) }),
            )
            .optional_check("mailer", from_fn(|| async { Ok(()) })),
    )
    .await;
    let ready = get(gw.addr, "/health/ready").await;
    assert_eq!(ready.status, 503);
    let report = ready.json();
    assert_eq!(report["status"], "fail");
    assert_eq!(report["checks"][0]["name"], "database");
    assert_eq!(report["checks"][0]["error"], "connection refused");
    assert_eq!(
        get(gw.addr, "/health/live").await.status,
        200,
        "liveness is unaffected"
    );
    gw.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_problems() {
    let gw = start(Gateway::builder().routes(app())).await;
    let r = get(gw.addr, "/no/such/route").await;
    r.assert_problem(404);
    assert_eq!(r.header("x-request-id").map(str::len), Some(32));
    request(gw.addr, "DELETE /hello HTTP/1.1\nHost: x", b"")
        .await
        .assert_problem(405);
    gw.stop().await;
}

#[tokio::test]
async fn oversize_bodies_get_413_whether_declared_or_streamed() {
    let gw = start(Gateway::builder().routes(app()).max_body_bytes(1024)).await;
    let ok = request(
        gw.addr,
        "POST /echo HTTP/1.1\nHost: x\nContent-Length: 5",
        b"hello",
    )
    .await;
    assert_eq!((ok.status, ok.text().as_str()), (200, "hello"));

    let big = vec![b'a'; 4096];
    let declared = request(
        gw.addr,
        "POST /echo HTTP/1.1\nHost: x\nContent-Length: 4096",
        &big,
    )
    .await;
    declared.assert_problem(413);

    let mut chunked = Vec::new();
    for _ in 0..4 {
        chunked.extend_from_slice(b"400\r\n");
        chunked.extend_from_slice(&[b'b'; 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let streamed = request(
        gw.addr,
        "POST /echo HTTP/1.1\nHost: x\nTransfer-Encoding: chunked",
        &chunked,
    )
    .await;
    streamed.assert_problem(413);
    gw.stop().await;
}

#[tokio::test]
async fn oversize_and_too_many_headers_get_431() {
    let gw = start(
        Gateway::builder()
            .routes(app())
            .max_header_bytes(8192)
            .max_headers(20),
    )
    .await;
    let long = format!(
        "GET /hello HTTP/1.1\nHost: x\nX-Big: {}",
        "a".repeat(10_000)
    );
    assert_eq!(request(gw.addr, &long, b"").await.status, 431);
    let mut many = String::from("GET /hello HTTP/1.1\nHost: x");
    for i in 0..30 {
        many.push_str(&format!("\nX-H{i}: v"));
    }
    assert_eq!(request(gw.addr, &many, b"").await.status, 431);
    assert_eq!(
        get(gw.addr, "/hello").await.status,
        200,
        "the server keeps serving"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_slow_client_is_disconnected_after_the_header_read_timeout() {
    let gw = start(
        Gateway::builder()
            .routes(app())
            .header_read_timeout(Duration::from_millis(300)),
    )
    .await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buf = Vec::new();
    // The server must end the connection by itself, long before this bound.
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "connection still open after 10 s");
    assert_eq!(get(gw.addr, "/hello").await.status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_at_once() {
    let gw = start(Gateway::builder().routes(app()).max_connections(2)).await;
    let held_a = TcpStream::connect(gw.addr).await.unwrap();
    let held_b = TcpStream::connect(gw.addr).await.unwrap();
    // Let the server accept both before the third arrives.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = tokio::time::timeout(Duration::from_secs(5), get(gw.addr, "/hello"))
        .await
        .expect("refused quickly, not queued");
    let body = refused.assert_problem(503);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("connection limit")
    );
    drop(held_a);
    drop(held_b);
    let mut served = false;
    for _ in 0..50 {
        if get(gw.addr, "/hello").await.status == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "a freed slot serves again");
    gw.stop().await;
}

#[tokio::test]
async fn slow_handlers_time_out_with_504() {
    let gw = start(
        Gateway::builder()
            .routes(app())
            .request_timeout(Duration::from_millis(200)),
    )
    .await;
    const HANG: &str = "http_requests_total{method=\"GET\",route=\"/hang\",status=\"5xx\"}";
    let before = sample(&get(gw.addr, "/metrics").await.text(), HANG);
    get(gw.addr, "/hang").await.assert_problem(504);
    let metrics = get(gw.addr, "/metrics").await.text();
    assert_eq!(sample(&metrics, HANG) - before, 1.0, "{metrics}");
    gw.stop().await;
}

#[tokio::test]
async fn per_ip_rate_limit_answers_429_with_retry_after_but_spares_health() {
    let limits = RateLimits {
        per_ip: Some(RateQuota::per_minute(2).unwrap()),
        ..RateLimits::default()
    };
    let gw = start(Gateway::builder().routes(app()).rate_limits(limits)).await;
    const REFUSED: &str = "kailash_tenancy_refusals_total{kind=\"rate_limit\",scope=\"ip\"}";
    let before = sample(&get(gw.addr, "/metrics").await.text(), REFUSED);
    assert_eq!(get(gw.addr, "/hello").await.status, 200);
    assert_eq!(get(gw.addr, "/hello").await.status, 200);
    let limited = get(gw.addr, "/hello").await;
    let body = limited.assert_problem(429);
    assert_eq!(body["limit"], "ip");
    // Other tests' gateways share the process's metrics: at least one.
    let after = sample(&get(gw.addr, "/metrics").await.text(), REFUSED);
    assert!(after - before >= 1.0, "{before} -> {after}");
    assert_eq!(limited.header("retry-after"), Some("30"));
    for _ in 0..5 {
        assert_eq!(
            get(gw.addr, "/health/ready").await.status,
            200,
            "probes are never limited"
        );
    }
    gw.stop().await;
}

/// A stand-in authentication layer: `X-Test-User: name@tenant` becomes a Principal.
#[derive(Clone)]
struct TestAuth;
impl<S> tower::Layer<S> for TestAuth {
    type Service = TestAuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TestAuthService(inner)
    }
}
#[derive(Clone)]
struct TestAuthService<S>(S);
impl<S, B> tower::Service<http::Request<B>> for TestAuthService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }
    fn call(&mut self, mut req: http::Request<B>) -> S::Future {
        let who = req
            .headers()
            .get("x-test-user")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some((user, tenant)) = who.as_deref().and_then(|w| w.split_once('@')) {
            let p = Principal::builder(user)
                .tenant(tenant.parse().unwrap())
                .build();
            req.extensions_mut().insert(p);
        }
        self.0.call(req)
    }
}

#[tokio::test]
async fn per_user_and_per_tenant_limits_apply_after_the_principal_layer() {
    let limits = RateLimits {
        per_user: Some(RateQuota::per_minute(2).unwrap()),
        per_tenant: Some(RateQuota::per_minute(3).unwrap()),
        ..RateLimits::default()
    };
    let gw = start(
        Gateway::builder()
            .routes(app())
            .principal_layer(TestAuth)
            .rate_limits(limits),
    )
    .await;
    let call = |who: &'static str| {
        let addr = gw.addr;
        async move {
            request(
                addr,
                &format!("GET /me HTTP/1.1\nHost: x\nX-Test-User: {who}"),
                b"",
            )
            .await
        }
    };
    assert_eq!(call("alice@acme").await.text(), "alice");
    assert_eq!(call("alice@acme").await.status, 200);
    assert_eq!(
        call("alice@acme").await.assert_problem(429)["limit"],
        "user"
    );
    assert_eq!(call("bob@acme").await.status, 200);
    assert_eq!(
        call("bob@acme").await.assert_problem(429)["limit"],
        "tenant"
    );
    assert_eq!(
        call("carol@globex").await.status,
        200,
        "other tenants are unaffected"
    );
    get(gw.addr, "/me").await.assert_problem(401);
    gw.stop().await;
}

#[tokio::test]
async fn compression_is_negotiated_and_can_be_switched_off() {
    let gw = start(Gateway::builder().routes(app())).await;
    for encoding in ["gzip", "br", "zstd"] {
        let r = request(
            gw.addr,
            &format!("GET /big HTTP/1.1\nHost: x\nAccept-Encoding: {encoding}"),
            b"",
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some(encoding));
        assert!(
            r.body.len() < 64 * 1024 / 10,
            "{encoding}: {} bytes",
            r.body.len()
        );
    }
    let plain = get(gw.addr, "/big").await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.body.len(), 64 * 1024);
    gw.stop().await;

    let off = start(Gateway::builder().routes(app()).compression(false)).await;
    let r = request(
        off.addr,
        "GET /big HTTP/1.1\nHost: x\nAccept-Encoding: gzip",
        b"",
    )
    .await;
    assert_eq!(r.header("content-encoding"), None);
    off.stop().await;
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let gw = start(
        Gateway::builder()
            .routes(app())
            .cors_origins(["https://app.example.com"])
            .cors_allow_credentials(true),
    )
    .await;
    let preflight = "OPTIONS /hello HTTP/1.1\nHost: x\nAccess-Control-Request-Method: GET";
    let ok = request(
        gw.addr,
        &format!("{preflight}\nOrigin: https://app.example.com"),
        b"",
    )
    .await;
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    let evil = request(
        gw.addr,
        &format!("{preflight}\nOrigin: https://evil.example"),
        b"",
    )
    .await;
    assert_eq!(evil.header("access-control-allow-origin"), None);
    gw.stop().await;

    let no_cors = start(Gateway::builder().routes(app())).await;
    let r = request(
        no_cors.addr,
        "GET /hello HTTP/1.1\nHost: x\nOrigin: https://app.example.com",
        b"",
    )
    .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        None,
        "no CORS unless configured"
    );
    no_cors.stop().await;
}

#[test]
fn invalid_cors_settings_stop_the_build() {
    let wildcard_credentials = Gateway::builder()
        .cors_origins(["*"])
        .cors_allow_credentials(true)
        .build();
    assert!(matches!(
        wildcard_credentials,
        Err(kailash::GatewayError::Cors(_))
    ));
    let with_path = Gateway::builder()
        .cors_origins(["https://a.example/app"])
        .build();
    assert!(matches!(with_path, Err(kailash::GatewayError::Cors(_))));
    assert!(matches!(
        Gateway::builder().max_header_bytes(1024).build(),
        Err(kailash::GatewayError::Limit(_))
    ));
}

#[tokio::test]
async fn switches_remove_their_routes() {
    let gw = start(Gateway::builder().metrics(false).docs(false).health(false)).await;
    for path in [
        "/metrics",
        "/openapi.json",
        "/docs",
        "/health/live",
        "/health/ready",
    ] {
        get(gw.addr, path).await.assert_problem(404);
    }
    gw.stop().await;
}

#[tokio::test]
async fn client_ip_follows_the_trusted_proxy_policy() {
    let gw = start(
        Gateway::builder()
            .routes(app())
            .trusted_proxies(TrustedProxies::new(["127.0.0.0/8".parse().unwrap()])),
    )
    .await;
    let r = request(
        gw.addr,
        "GET /ip HTTP/1.1\nHost: x\nX-Forwarded-For: 6.6.6.6, 203.0.113.7",
        b"",
    )
    .await;
    assert_eq!(r.text(), "203.0.113.7");
    gw.stop().await;

    let untrusting = start(Gateway::builder().routes(app())).await;
    let r = request(
        untrusting.addr,
        "GET /ip HTTP/1.1\nHost: x\nX-Forwarded-For: 203.0.113.7",
        b"",
    )
    .await;
    assert_eq!(r.text(), "127.0.0.1", "a spoofed header is ignored");
    untrusting.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_and_flushes_audit() {
    let audit = Arc::new(MemoryAuditSink::new());
    let mut gw = start(Gateway::builder().routes(app()).audit(audit.clone())).await;
    let addr = gw.addr;
    let in_flight = tokio::spawn(async move { get(addr, "/slow").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.trigger_stop();
    let finished = in_flight.await.unwrap();
    assert_eq!((finished.status, finished.text().as_str()), (200, "done"));
    gw.stop().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
    let actions: Vec<_> = audit
        .events()
        .into_iter()
        .map(|e| e.action.into_owned())
        .collect();
    assert_eq!(actions, ["gateway.start", "gateway.stop"]);
}

#[tokio::test]
async fn an_audit_sink_that_cannot_write_fails_readiness() {
    struct Broken;
    #[async_trait::async_trait]
    impl AuditSink for Broken {
        async fn record(&self, _: AuditEvent) -> Result<(), kailash::audit::AuditError> {
            Err(kailash::audit::AuditError::Closed)
        }
        async fn flush(&self) -> Result<(), kailash::audit::AuditError> {
            Err(kailash::audit::AuditError::Closed)
        }
        fn health(&self) -> Result<(), kailash::audit::AuditError> {
            Err(kailash::audit::AuditError::Closed)
        }
    }
    let gw = start(Gateway::builder().audit(Arc::new(Broken))).await;
    let ready = get(gw.addr, "/health/ready").await;
    assert_eq!(ready.status, 503);
    let report = ready.json();
    let audit = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "audit")
        .unwrap();
    assert_eq!(audit["status"], "fail");
    gw.stop().await;
}

#[test]
fn user_limits_without_an_authentication_layer_are_refused() {
    let limits = RateLimits {
        per_user: Some(RateQuota::per_minute(10).unwrap()),
        ..RateLimits::default()
    };
    let err = Gateway::builder()
        .rate_limits(limits)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("authentication layer"), "{err}");
}
