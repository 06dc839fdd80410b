//! The outbound node types (`http_request`, `llm`) against real local
//! HTTP servers that record and check the exact requests they receive, and
//! `database_query` on a recording `Database`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kailash_core::clock::SystemClock;
use kailash_core::{Principal, TenantId};
use kailash_runtime::database::{Database, DatabaseError, QueryLimits};
use kailash_runtime::definition::Definition;
use kailash_runtime::node::{NodeContext, NodeType, Values};
use kailash_runtime::outbound::{
    HttpRequestType, IntegrationError, IntegrationSpec, Integrations, LlmType, USER_AGENT_VALUE,
};
use kailash_runtime::registry::RegistryError;
use kailash_runtime::transform::TransformType;
use kailash_runtime::{
    CancelToken, DefinitionError, Executor, NodeRegistry, NodeStatus, RunContext, RunStatus,
    compile,
};
use kailash_tenancy::model::{Tenant, TenantSpec};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

// ---------------------------------------------------------------- server

/// One request as the server read it off the wire.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    /// Lowercased names, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        names
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

type Respond = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

enum Reply {
    Bytes(Vec<u8>),
    /// Never answers (for timeouts).
    Hang,
}

/// A raw HTTP/1.1 server on 127.0.0.1: one request per connection, each
/// recorded, answered by `respond`.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    async fn start(respond: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(None, respond).await
    }

    /// The same over TLS, with the `localhost` / `127.0.0.1` test certificate.
    async fn start_tls(respond: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(include_bytes!("fixtures/test-cert.pem"))
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(include_bytes!("fixtures/test-key.pem")).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Self::start_with(
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
            respond,
        )
        .await
    }

    async fn start_with(
        tls: Option<tokio_rustls::TlsAcceptor>,
        respond: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let respond: Respond = Arc::new(respond);
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let respond = Arc::clone(&respond);
                let log = Arc::clone(&log);
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => handle(stream, &respond, &log).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                handle(stream, &respond, &log).await;
                            }
                        }
                    }
                });
            }
        });
        Self { addr, seen }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    respond: &Respond,
    log: &Mutex<Vec<Seen>>,
) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    log.lock().unwrap().push(request.clone());
    match respond(&request) {
        Reply::Bytes(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Reply::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
    }
}

async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Seen> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    assert_eq!(request_line.next(), Some("HTTP/1.1"));
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        method,
        target,
        headers,
        body,
    })
}

fn reply(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut out = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    Reply::Bytes(bytes)
}

fn json_reply(status: u16, body: Value) -> Reply {
    reply(
        status,
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
}

// ---------------------------------------------------------------- helpers

const KEY: &str = "sk-test-0123456789abcdef";

fn integrations(specs: Value) -> Integrations {
    let specs: Vec<IntegrationSpec> = serde_json::from_value(specs).unwrap();
    Integrations::build_with(
        &specs,
        |name| (name == "TEST_KEY").then(|| KEY.to_owned()),
        None,
    )
    .unwrap()
}

fn build_error(specs: Value) -> IntegrationError {
    let specs: Vec<IntegrationSpec> = serde_json::from_value(specs).unwrap();
    Integrations::build_with(&specs, |_| Some(KEY.to_owned()), None).unwrap_err()
}

fn tenant(spec: Value) -> Arc<Tenant> {
    let spec: TenantSpec = serde_json::from_value(spec).unwrap();
    Arc::new(Tenant::try_from(spec).unwrap())
}

/// acme may use the integrations `svc`, `openai`, `claude`.
fn acme() -> Arc<Tenant> {
    tenant(json!({
        "id": "acme",
        "features": ["ai_enabled"],
        "allowed_integrations": ["svc", "openai", "claude"],
    }))
}

fn run_ctx(tenant: Arc<Tenant>) -> RunContext {
    let who = Principal::builder("dave")
        .tenant(TenantId::new(tenant.id.as_str()).unwrap())
        .build();
    RunContext::new("wf-test", tenant, who).unwrap()
}

/// Builds a node of `node_type` from `config` and runs it once on `input`.
async fn run_node(
    node_type: &dyn NodeType,
    config: Value,
    tenant: Arc<Tenant>,
    input: Value,
) -> Result<Values, String> {
    run_node_within(node_type, config, tenant, input, u64::MAX).await
}

/// [`run_node`] with `budget` bytes left in the run's budget.
async fn run_node_within(
    node_type: &dyn NodeType,
    config: Value,
    tenant: Arc<Tenant>,
    input: Value,
    budget: u64,
) -> Result<Values, String> {
    let node = node_type.build(&config).map_err(|e| e.to_string())?;
    let run = run_ctx(tenant);
    let ctx = NodeContext {
        run: &run,
        node_id: "n",
        input_bytes: 0,
        budget_remaining: budget,
    };
    let Value::Object(input) = input else {
        panic!("input must be an object")
    };
    node.run(&ctx, input).await.map_err(|e| e.to_string())
}

fn svc(base: String) -> Value {
    json!([{ "name": "svc", "base_urls": [base], "allow_private": true, "api_key_env": "TEST_KEY" }])
}

// ---------------------------------------------------------------- http_request

#[tokio::test]
async fn http_request_sends_the_exact_request_and_reads_the_answer() {
    let server = Server::start(|_| {
        reply(
            201,
            &[
                ("content-type", "application/json; charset=utf-8"),
                ("x-request-id", "r-1"),
            ],
            br#"{"id": 7, "name": "Ada"}"#,
        )
    })
    .await;
    let node_type = HttpRequestType::new(integrations(svc(format!(
        "http://127.0.0.1:{}/api/",
        server.port()
    ))));
    let out = run_node(
        &node_type,
        json!({
            "integration": "svc", "method": "POST", "path": "/customers",
            "headers": {"X-Trace": "abc", "accept": "application/json"},
            "body": {"ignored": true},
        }),
        acme(),
        json!({
            "body": {"name": "Ada", "tags": ["a"]},
            "query": {"q": "a b&c", "tag": ["x", "y"], "n": 3, "ok": true},
        }),
    )
    .await
    .unwrap();

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.target,
        "/api/customers?n=3&ok=true&q=a%20b%26c&tag=x&tag=y"
    );
    assert_eq!(
        r.names(),
        [
            "accept",
            "authorization",
            "content-length",
            "content-type",
            "host",
            "user-agent",
            "x-trace"
        ]
    );
    assert_eq!(
        r.header("host"),
        Some(format!("127.0.0.1:{}", server.port()).as_str())
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("user-agent"), Some(USER_AGENT_VALUE));
    assert_eq!(r.header("x-trace"), Some("abc"));
    assert_eq!(r.header("accept"), Some("application/json"));
    assert_eq!(r.json(), json!({"name": "Ada", "tags": ["a"]}));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );

    assert_eq!(out["status"], json!(201));
    assert_eq!(out["body"], json!({"id": 7, "name": "Ada"}));
    assert_eq!(out["headers"]["x-request-id"], json!("r-1"));
    assert_eq!(
        out["headers"]["content-type"],
        json!("application/json; charset=utf-8")
    );
}

#[tokio::test]
async fn http_request_get_without_body_gives_text_and_any_status() {
    let server =
        Server::start(|_| reply(404, &[("content-type", "text/plain")], b"no such thing")).await;
    let node_type = HttpRequestType::new(integrations(json!([{
        "name": "svc", "base_urls": [format!("http://127.0.0.1:{}", server.port())], "allow_private": true,
    }])));
    let out = run_node(
        &node_type,
        json!({"integration": "svc", "method": "GET", "path": "/things/1"}),
        acme(),
        json!({}),
    )
    .await
    .unwrap();
    let r = &server.seen()[0];
    assert_eq!((r.method.as_str(), r.target.as_str()), ("GET", "/things/1"));
    // No key configured: no authorization; no body: no content headers.
    assert_eq!(r.names(), ["host", "user-agent"]);
    assert!(r.body.is_empty());
    assert_eq!(out["status"], json!(404));
    assert_eq!(out["body"], json!("no such thing"));
}

/// A keep-alive HTTP/1.1 server answering `ok` to every request; the
/// connections it accepted.
async fn keep_alive_server() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                while read_request(&mut stream).await.is_some() {
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, accepted)
}

/// Connections are kept alive and reused by the integration that opened
/// them, through the shared pool — never by another integration (whose
/// address rules may differ), nor by a rebuild of the same one.
#[tokio::test]
async fn connections_are_reused_per_integration_and_never_across() {
    use kailash_core::outbound::{ConnectionPool, PoolConfig};
    use std::sync::atomic::Ordering;
    let (port, accepted) = keep_alive_server().await;
    let base = format!("http://127.0.0.1:{port}");
    let specs = json!([
        { "name": "svc", "base_urls": [base], "allow_private": true },
        { "name": "other", "base_urls": [base], "allow_private": true },
    ]);
    let pool = ConnectionPool::new(PoolConfig::default().max_connections(10));
    let node_type = HttpRequestType::new(integrations(specs.clone()).with_pool(&pool));
    let both = tenant(json!({"id": "acme", "allowed_integrations": ["svc", "other"]}));
    let get = |name: &'static str| json!({"integration": name, "method": "GET", "path": "/x"});
    for _ in 0..3 {
        let out = run_node(&node_type, get("svc"), both.clone(), json!({}))
            .await
            .unwrap();
        assert_eq!(out["body"], json!("ok"));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    for _ in 0..2 {
        run_node(&node_type, get("other"), both.clone(), json!({}))
            .await
            .unwrap();
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    run_node(&node_type, get("svc"), both.clone(), json!({}))
        .await
        .unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    let stats = pool.stats();
    assert_eq!((stats.opened, stats.reused), (2, 4), "{stats:?}");
    // Rebuilt (a reload, say): its own connections.
    let rebuilt = HttpRequestType::new(integrations(specs).with_pool(&pool));
    run_node(&rebuilt, get("svc"), both, json!({}))
        .await
        .unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn https_verifies_the_certificate_for_the_host_name() {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let server = Server::start_tls(|_| json_reply(200, json!({"secure": true}))).await;
    let specs: Vec<IntegrationSpec> = serde_json::from_value(json!([{
        "name": "svc", "base_urls": [format!("https://localhost:{}/api", server.port())],
        "allow_private": true, "api_key_env": "TEST_KEY",
    }]))
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(include_bytes!("fixtures/test-ca.pem")) {
        roots.add(cert.unwrap()).unwrap();
    }
    let env = |_: &str| Some(KEY.to_owned());
    let request = json!({"integration": "svc", "method": "GET", "path": "/secure"});

    let trusted = HttpRequestType::new(Integrations::build_with(&specs, env, Some(roots)).unwrap());
    let out = run_node(&trusted, request.clone(), acme(), json!({}))
        .await
        .unwrap();
    assert_eq!(out["body"], json!({"secure": true}));
    let r = &server.seen()[0];
    assert_eq!(r.target, "/api/secure");
    assert_eq!(
        r.header("host"),
        Some(format!("localhost:{}", server.port()).as_str())
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );

    // Trusting other roots, the handshake fails and nothing is sent.
    let untrusted = HttpRequestType::new(
        Integrations::build_with(&specs, env, Some(rustls::RootCertStore::empty())).unwrap(),
    );
    let err = run_node(&untrusted, request, acme(), json!({}))
        .await
        .unwrap_err();
    assert!(err.contains("TLS handshake"), "{err}");
    assert!(!err.contains(KEY));
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn loopback_is_refused_without_allow_private() {
    let server = Server::start(|_| json_reply(200, json!({}))).await;
    for host in [
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        "[::ffff:127.0.0.1]".to_owned(),
    ] {
        let node_type = HttpRequestType::new(integrations(json!([{
            "name": "svc", "base_urls": [format!("http://{host}:{}", server.port())],
        }])));
        let err = run_node(
            &node_type,
            json!({"integration": "svc", "method": "GET", "path": "/"}),
            acme(),
            json!({}),
        )
        .await
        .unwrap_err();
        assert!(err.contains("loopback"), "{host}: {err}");
        assert!(err.contains("allow_private"), "{err}");
        assert!(err.contains("\"svc\""), "{err}");
    }
    assert!(server.seen().is_empty(), "nothing reached the server");
}

#[tokio::test]
async fn unspecified_addresses_are_refused_even_with_allow_private() {
    let node_type = HttpRequestType::new(integrations(json!([{
        "name": "svc", "base_urls": ["http://0.0.0.0:9"], "allow_private": true,
    }])));
    let err = run_node(
        &node_type,
        json!({"integration": "svc", "method": "GET", "path": "/"}),
        acme(),
        json!({}),
    )
    .await
    .unwrap_err();
    assert!(err.contains("unspecified"), "{err}");
}

#[tokio::test]
async fn redirects_are_followed_within_the_integration_only() {
    let other = Server::start(|_| json_reply(200, json!({"stolen": true}))).await;
    let other_port = other.port();
    let server = Server::start(move |r| match r.target.as_str() {
        "/api/start" => reply(307, &[("location", "/api/next?x=1")], b""),
        "/api/next?x=1" => reply(303, &[("location", "done")], b""),
        "/api/done" => json_reply(200, json!({"ok": true})),
        "/api/escape-host" => reply(
            302,
            &[("location", &format!("http://localhost:{other_port}/api/x"))],
            b"",
        ),
        "/api/escape-path" => reply(302, &[("location", "/admin")], b""),
        "/api/escape-dots" => reply(302, &[("location", "/api/../admin")], b""),
        _ => reply(302, &[("location", "/api/loop")], b""),
    })
    .await;
    let node_type = HttpRequestType::new(integrations(svc(format!(
        "http://127.0.0.1:{}/api",
        server.port()
    ))));
    let request = |path: &str| json!({"integration": "svc", "method": "POST", "path": path, "body": {"n": 1}});

    // 307 keeps method and body; 303 continues as GET without a body.
    let out = run_node(&node_type, request("/start"), acme(), json!({}))
        .await
        .unwrap();
    assert_eq!(out["body"], json!({"ok": true}));
    let seen = server.seen();
    let hops: Vec<(&str, &str, usize)> = seen
        .iter()
        .map(|r| (r.method.as_str(), r.target.as_str(), r.body.len()))
        .collect();
    assert_eq!(
        hops,
        [
            ("POST", "/api/start", 7),
            ("POST", "/api/next?x=1", 7),
            ("GET", "/api/done", 0)
        ]
    );
    assert_eq!(seen[2].header("content-type"), None);

    for (path, expect) in [
        ("/escape-host", "outside the integration"),
        ("/escape-path", "outside the integration"),
        ("/escape-dots", "`.` or `..`"),
        ("/loop", "more than 5 redirects"),
    ] {
        let err = run_node(&node_type, request(path), acme(), json!({}))
            .await
            .unwrap_err();
        assert!(err.contains(expect), "{path}: {err}");
    }
    assert!(
        other.seen().is_empty(),
        "the other host was never contacted"
    );
    // The loop: the request to /loop and the five redirects followed; the
    // sixth redirect is refused.
    let loops = server
        .seen()
        .iter()
        .filter(|r| r.target == "/api/loop")
        .count();
    assert_eq!(loops, 6);
}

#[tokio::test]
async fn the_response_cap_stops_reading() {
    let big = vec![b'x'; 5000];
    let chunked = {
        let mut out =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
        for _ in 0..10 {
            out.extend_from_slice(b"1f4\r\n");
            out.extend_from_slice(&[b'y'; 500]);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    };
    let server = Server::start(move |r| match r.target.as_str() {
        "/declared" => reply(200, &[], &big),
        "/chunked" => Reply::Bytes(chunked.clone()),
        _ => reply(200, &[], &[b'z'; 1000]),
    })
    .await;
    let node_type = HttpRequestType::new(integrations(json!([{
        "name": "svc", "base_urls": [format!("http://127.0.0.1:{}", server.port())],
        "allow_private": true, "max_response_bytes": 1000,
    }])));
    for path in ["/declared", "/chunked"] {
        let err = run_node(
            &node_type,
            json!({"integration": "svc", "method": "GET", "path": path}),
            acme(),
            json!({}),
        )
        .await
        .unwrap_err();
        assert!(err.contains("larger than 1000 bytes"), "{path}: {err}");
        assert!(err.contains("max_response_bytes"), "{err}");
    }
    // Exactly the cap is fine.
    let out = run_node(
        &node_type,
        json!({"integration": "svc", "method": "GET", "path": "/exact"}),
        acme(),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(out["body"].as_str().map(str::len), Some(1000));
    // A run with less budget left than the integration's cap: the budget caps.
    let err = run_node_within(
        &node_type,
        json!({"integration": "svc", "method": "GET", "path": "/exact"}),
        acme(),
        json!({}),
        999,
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("larger than 999 bytes (the bytes left in the run's budget)"),
        "{err}"
    );
}

#[tokio::test]
async fn redirects_may_move_between_the_integrations_base_urls() {
    let second = Server::start(|r| json_reply(200, json!({"at": r.target}))).await;
    let second_port = second.port();
    let first = Server::start(move |_| {
        reply(
            308,
            &[(
                "location",
                &format!("http://localhost:{second_port}/v2/items"),
            )],
            b"",
        )
    })
    .await;
    let node_type = HttpRequestType::new(integrations(json!([{
        "name": "svc", "allow_private": true,
        "base_urls": [format!("http://127.0.0.1:{}/v1", first.port()), format!("http://localhost:{second_port}/v2")],
    }])));
    let out = run_node(
        &node_type,
        json!({"integration": "svc", "method": "PUT", "path": "/items", "body": [1]}),
        acme(),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(out["body"], json!({"at": "/v2/items"}));
    let hop = &second.seen()[0];
    assert_eq!((hop.method.as_str(), hop.json()), ("PUT", json!([1])));
    assert_eq!(
        hop.header("host"),
        Some(format!("localhost:{second_port}").as_str())
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let server = Server::start(|_| Reply::Hang).await;
    let node_type = HttpRequestType::new(integrations(json!([{
        "name": "svc", "base_urls": [format!("http://127.0.0.1:{}", server.port())],
        "allow_private": true, "timeout_ms": 300,
    }])));
    let started = Instant::now();
    let err = run_node(
        &node_type,
        json!({"integration": "svc", "method": "GET", "path": "/slow"}),
        acme(),
        json!({}),
    )
    .await
    .unwrap_err();
    assert!(err.contains("timeout of 300 ms"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_connect_that_hangs_hits_the_connect_timeout() {
    // A listener that never accepts, its backlog filled: further SYNs are dropped.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        fillers.push(tokio::spawn(tokio::net::TcpStream::connect(addr)));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let node_type = HttpRequestType::new(integrations(json!([{
        "name": "svc", "base_urls": [format!("http://127.0.0.1:{}", addr.port())],
        "allow_private": true, "connect_timeout_ms": 200, "timeout_ms": 10000,
    }])));
    let started = Instant::now();
    let err = run_node(
        &node_type,
        json!({"integration": "svc", "method": "GET", "path": "/"}),
        acme(),
        json!({}),
    )
    .await
    .unwrap_err();
    assert!(err.contains("took longer than 200 ms"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    for f in fillers {
        f.abort();
    }
    drop(listener);
}

#[tokio::test]
async fn the_tenant_must_allow_the_integration() {
    let server = Server::start(|_| json_reply(200, json!({}))).await;
    let node_type = HttpRequestType::new(integrations(svc(format!(
        "http://127.0.0.1:{}",
        server.port()
    ))));
    let globex = tenant(json!({"id": "globex", "allowed_integrations": ["other"]}));
    let err = run_node(
        &node_type,
        json!({"integration": "svc", "method": "GET", "path": "/"}),
        globex,
        json!({}),
    )
    .await
    .unwrap_err();
    assert_eq!(err, "tenant \"globex\" may not use integration \"svc\"");
    assert!(server.seen().is_empty());
}

#[test]
fn http_request_configs_are_checked_at_validation() {
    let node_type = HttpRequestType::new(integrations(svc("http://127.0.0.1:9/api".into())));
    let refuse = |config: Value, expect: &str| {
        let err = node_type
            .build(&config)
            .err()
            .map(|e| e.to_string())
            .unwrap();
        assert!(err.contains(expect), "{config}: {err}");
    };
    let base = |path: &str| json!({"integration": "svc", "method": "GET", "path": path});
    refuse(
        json!({"integration": "nope", "method": "GET", "path": "/"}),
        "unknown integration \"nope\"",
    );
    refuse(
        json!({"integration": "svc", "method": "TRACE", "path": "/"}),
        "method \"TRACE\"",
    );
    refuse(
        json!({"integration": "svc", "method": "get", "path": "/"}),
        "method \"get\"",
    );
    for path in [
        "http://evil.com/x",
        "//evil.com/x",
        "/../x",
        "/a/%2e%2e/x",
        "x",
        "/a b",
        "/a?b=1",
    ] {
        refuse(base(path), "path");
    }
    for header in [
        "Host",
        "authorization",
        "X-Api-Key",
        "connection",
        "transfer-encoding",
        "content-length",
        "accept-encoding",
    ] {
        let mut config = base("/");
        config["headers"] = json!({ header: "v" });
        refuse(config, "may not be set");
    }
    let mut config = base("/");
    config["headers"] = json!({"bad name": "v"});
    refuse(config, "invalid header name");
    let mut config = base("/");
    config["headers"] = json!({"x-ok": "line\nbreak"});
    refuse(config, "characters not allowed");
    refuse(
        json!({"integration": "svc", "method": "GET", "path": "/", "extra": 1}),
        "unknown field",
    );
    assert!(node_type.build(&base("/v2/items")).is_ok());
}

// ---------------------------------------------------------------- integrations

#[test]
fn integrations_read_from_toml_tables() {
    #[derive(serde::Deserialize)]
    struct Config {
        integrations: Vec<IntegrationSpec>,
    }
    let config: Config = toml::from_str(
        r#"
        [[integrations]]
        name = "openai"
        base_urls = ["https://api.openai.com/v1"]
        kind = "openai"
        api_key_env = "TEST_KEY"
        timeout_ms = 60000

        [[integrations]]
        name = "crm"
        base_urls = ["http://10.0.0.5:8080/api", "http://10.0.0.6:8080/api"]
        allow_private = true
        max_response_bytes = 65536
        "#,
    )
    .unwrap();
    let built = Integrations::build_with(
        &config.integrations,
        |name| (name == "TEST_KEY").then(|| KEY.to_owned()),
        Some(rustls::RootCertStore::empty()),
    )
    .unwrap();
    assert_eq!(built.names().collect::<Vec<_>>(), ["crm", "openai"]);
    let openai = built.get("openai").unwrap();
    assert_eq!(openai.timeout(), Duration::from_secs(60));
    assert!(openai.has_key() && !openai.allow_private());
    let crm = built.get("crm").unwrap();
    assert_eq!(crm.base_urls()[1].host(), "10.0.0.6");
    assert_eq!(
        (crm.base_urls()[0].port(), crm.base_urls()[0].path()),
        (8080, "/api")
    );
    assert_eq!(crm.max_response_bytes(), 65536);
    assert_eq!(crm.connect_timeout(), Duration::from_secs(5));
    assert!(
        toml::from_str::<Config>(
            "[[integrations]]\nname = \"a\"\nbase_urls = []\nallowed_private = true"
        )
        .is_err()
    );
}

#[test]
fn integrations_are_validated_naming_the_entry() {
    let one = |extra: Value| {
        let mut spec = json!({"name": "svc", "base_urls": ["https://api.example.com/v1"]});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!([spec])
    };
    let cases = [
        (
            one(json!({"base_urls": ["ftp://x.com"]})),
            "\"svc\": base URL \"ftp://x.com\" must start with http:// or https://",
        ),
        (
            one(json!({"base_urls": ["http://user:pw@x.com"]})),
            "user information",
        ),
        (one(json!({"base_urls": ["http://x.com/a?b"]})), "query"),
        (one(json!({"base_urls": ["http://x.com/../a"]})), "bad path"),
        (one(json!({"base_urls": ["http://x_y.com"]})), "host"),
        (one(json!({"base_urls": []})), "must have 1-16 base_urls"),
        (
            one(json!({"kind": "gemini"})),
            "integration \"svc\": unknown kind \"gemini\"",
        ),
        (one(json!({"timeout_ms": 0})), "timeout_ms = 0"),
        (
            one(json!({"max_response_bytes": 1u64 << 40})),
            "max_response_bytes",
        ),
        (
            one(json!({"name": "bad name"})),
            "integration name \"bad name\"",
        ),
        (
            json!([{"name": "a", "base_urls": ["http://x.com"]}, {"name": "a", "base_urls": ["http://y.com"]}]),
            "integration \"a\" is configured twice",
        ),
    ];
    for (specs, expect) in cases {
        let err = build_error(specs.clone()).to_string();
        assert!(err.contains(expect), "{specs}: {err}");
    }
    // Unknown fields are refused when parsing.
    assert!(
        serde_json::from_value::<IntegrationSpec>(
            json!({"name": "a", "base_urls": [], "allowPrivate": true})
        )
        .is_err()
    );

    // A key: unset → error naming the variable; the value never appears.
    let specs: Vec<IntegrationSpec> = serde_json::from_value(
        json!([{"name": "a", "base_urls": ["http://x.com"], "api_key_env": "A_KEY"}]),
    )
    .unwrap();
    // Unset: built, and the integration says which variable is missing.
    let unset = Integrations::build_with(&specs, |_| None, None).unwrap();
    assert_eq!(unset.get("a").unwrap().missing_key(), Some("A_KEY"));
    let err = Integrations::build_with(&specs, |_| Some("k".repeat(5000)), None).unwrap_err();
    assert!(
        matches!(&err, IntegrationError::Key { integration, env, .. } if integration == "a" && env == "A_KEY")
    );
    let err =
        Integrations::build_with(&specs, |_| Some("bad\nkey-SECRET".into()), None).unwrap_err();
    assert!(!err.to_string().contains("SECRET"), "{err}");
    let built = Integrations::build_with(&specs, |_| Some(KEY.into()), None).unwrap();
    assert!(!format!("{built:?}").contains(KEY));
    assert!(format!("{built:?}").contains("<redacted>"));
    assert!(built.get("a").unwrap().has_key());
}

// ---------------------------------------------------------------- llm

#[tokio::test]
async fn llm_speaks_the_openai_chat_completions_format() {
    let server = Server::start(|_| {
        json_reply(200, json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello, Ada."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
        }))
    })
    .await;
    let node_type = LlmType::new(integrations(json!([{
        "name": "openai", "base_urls": [format!("http://127.0.0.1:{}/v1", server.port())],
        "kind": "openai", "api_key_env": "TEST_KEY", "allow_private": true,
    }])));
    let out = run_node(
        &node_type,
        json!({"integration": "openai", "model": "gpt-4o-mini", "system": "Be brief.", "max_tokens": 50, "temperature": 0.5}),
        acme(),
        json!({"prompt": "Greet Ada."}),
    )
    .await
    .unwrap();
    let r = &server.seen()[0];
    assert_eq!(
        (r.method.as_str(), r.target.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        r.names(),
        [
            "accept",
            "authorization",
            "content-length",
            "content-type",
            "host",
            "user-agent"
        ]
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("accept"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Greet Ada."},
            ],
            "max_tokens": 50,
            "temperature": 0.5,
        })
    );
    assert_eq!(
        Value::Object(out),
        json!({
            "text": "Hello, Ada.", "model": "gpt-4o-mini-2024-07-18",
            "usage": {"input_tokens": 12, "output_tokens": 4}, "finish_reason": "stop",
        })
    );
}

#[tokio::test]
async fn llm_speaks_the_anthropic_messages_format() {
    let server = Server::start(|_| {
        json_reply(200, json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "Bonjour"}, {"type": "text", "text": ", Ada."}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 20, "output_tokens": 5},
        }))
    })
    .await;
    let node_type = LlmType::new(integrations(json!([{
        "name": "claude", "base_urls": [format!("http://127.0.0.1:{}", server.port())],
        "kind": "anthropic", "api_key_env": "TEST_KEY", "allow_private": true,
    }])));
    let out = run_node(
        &node_type,
        json!({"integration": "claude", "model": "claude-sonnet-4-5", "system": "French only."}),
        acme(),
        json!({"messages": [
            {"role": "user", "content": "Greet Ada."},
            {"role": "assistant", "content": "Hi"},
            {"role": "user", "content": "In French."},
        ]}),
    )
    .await
    .unwrap();
    let r = &server.seen()[0];
    assert_eq!(
        (r.method.as_str(), r.target.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(
        r.names(),
        [
            "accept",
            "anthropic-version",
            "content-length",
            "content-type",
            "host",
            "user-agent",
            "x-api-key"
        ]
    );
    assert_eq!(r.header("x-api-key"), Some(KEY));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        r.json(),
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": "French only.",
            "messages": [
                {"role": "user", "content": "Greet Ada."},
                {"role": "assistant", "content": "Hi"},
                {"role": "user", "content": "In French."},
            ],
        })
    );
    assert_eq!(
        Value::Object(out),
        json!({
            "text": "Bonjour, Ada.", "model": "claude-sonnet-4-5",
            "usage": {"input_tokens": 20, "output_tokens": 5}, "finish_reason": "end_turn",
        })
    );
}

#[tokio::test]
async fn provider_errors_never_echo_the_key() {
    let server = Server::start(|_| {
        json_reply(
            401,
            json!({"error": {
                "message": format!("Incorrect API key provided: {KEY}"),
                "type": "invalid_request_error", "code": "invalid_api_key",
            }}),
        )
    })
    .await;
    let node_type = LlmType::new(integrations(json!([{
        "name": "openai", "base_urls": [format!("http://127.0.0.1:{}/v1", server.port())],
        "kind": "openai", "api_key_env": "TEST_KEY", "allow_private": true,
    }])));
    let err = run_node(
        &node_type,
        json!({"integration": "openai", "model": "gpt-4o"}),
        acme(),
        json!({"prompt": "hi"}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        "integration \"openai\" answered status 401, error type \"invalid_request_error\", error code \"invalid_api_key\""
    );
    assert!(!err.contains(&KEY[3..12]));
}

#[test]
fn llm_is_refused_at_validation_for_a_tenant_without_ai_enabled() {
    let registry = NodeRegistry::builtin().with_outbound(&integrations(json!([{
        "name": "openai", "base_urls": ["http://llm.internal/v1"], "kind": "openai",
    }])));
    let def: Definition = serde_json::from_value(json!({"nodes": [
        {"id": "t", "type": "transform"},
        {"id": "ask", "type": "llm", "config": {"integration": "openai", "model": "gpt-4o"}},
    ]}))
    .unwrap();
    let globex = tenant(json!({"id": "globex", "allowed_integrations": ["openai"]}));
    let err = compile(&def, &globex, &registry).unwrap_err();
    assert_eq!(
        err,
        DefinitionError::FeatureRequired {
            node: "ask".into(),
            node_type: "llm".into(),
            feature: "ai_enabled".into(),
        }
    );
    assert!(compile(&def, &acme(), &registry).is_ok());

    // An integration without `kind` cannot serve an llm node; bad inputs to config.
    let node_type = LlmType::new(integrations(json!([
        {"name": "plain", "base_urls": ["http://x.com"]},
        {"name": "claude", "base_urls": ["http://x.com"], "kind": "anthropic"},
    ])));
    for (config, expect) in [
        (
            json!({"integration": "plain", "model": "m"}),
            "has no `kind`",
        ),
        (
            json!({"integration": "nope", "model": "m"}),
            "unknown integration",
        ),
        (json!({"integration": "claude", "model": ""}), "`model`"),
        (
            json!({"integration": "claude", "model": "m", "temperature": 1.5}),
            "`temperature`",
        ),
        (
            json!({"integration": "claude", "model": "m", "max_tokens": 0}),
            "`max_tokens`",
        ),
    ] {
        let err = node_type
            .build(&config)
            .err()
            .map(|e| e.to_string())
            .unwrap();
        assert!(err.contains(expect), "{config}: {err}");
    }
}

#[test]
fn built_in_names_cannot_be_registered_by_users() {
    let mut registry = NodeRegistry::builtin();
    for name in ["http_request", "llm", "database_query", "transform"] {
        assert_eq!(
            registry.register_custom(name, TransformType).err(),
            Some(RegistryError::Reserved(name.into()))
        );
        assert!(registry.register_open(name, TransformType).is_err());
    }
    // Not offered until configured.
    assert_eq!(registry.required_feature("http_request"), None);
    let registry = registry.with_outbound(&Integrations::default());
    assert_eq!(registry.required_feature("http_request"), Some(None));
    assert_eq!(registry.required_feature("llm"), Some(Some("ai_enabled")));
}

// ---------------------------------------------------------------- end to end

#[tokio::test]
async fn a_workflow_calls_an_integration_through_the_executor() {
    let server = Server::start(|r| {
        let q = r.target.split_once('?').map_or("", |(_, q)| q).to_owned();
        json_reply(
            200,
            json!({"items": [{"id": 1, "q": q}, {"id": 2, "q": q}]}),
        )
    })
    .await;
    let registry = NodeRegistry::builtin().with_outbound(&integrations(svc(format!(
        "http://127.0.0.1:{}/api",
        server.port()
    ))));
    let def: Definition = serde_json::from_value(json!({
        "inputs": ["customer"],
        "nodes": [
            {"id": "params", "type": "transform", "config": {"expression": "{customer: c}"}},
            {"id": "fetch", "type": "http_request",
             "config": {"integration": "svc", "method": "GET", "path": "/orders"}},
            {"id": "ids", "type": "transform", "config": {"expression": "b.items[].id"}},
        ],
        "connections": [
            {"from": {"input": "customer"}, "to": {"node": "params", "input": "c"}},
            {"from": {"node": "params", "output": "result"}, "to": {"node": "fetch", "input": "query"}},
            {"from": {"node": "fetch", "output": "body"}, "to": {"node": "ids", "input": "b"}},
        ],
        "outputs": {
            "ids": {"node": "ids", "output": "result"},
            "status": {"node": "fetch", "output": "status"},
        },
    }))
    .unwrap();
    let executor = Executor::new(Arc::new(SystemClock));

    let workflow = compile(&def, &acme(), &registry).unwrap();
    let run = executor
        .run(
            &run_ctx(acme()),
            &workflow,
            json!({"customer": "c-42"}),
            &CancelToken::new(),
        )
        .await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.reason);
    assert_eq!(run.outputs, Some(json!({"ids": [1, 2], "status": 200})));
    assert_eq!(server.seen()[0].target, "/api/orders?customer=c-42");
    assert!(!serde_json::to_string(&run).unwrap().contains(KEY));

    // A tenant that does not allow the integration: the run fails at that node.
    let globex = tenant(json!({"id": "globex"}));
    let workflow = compile(&def, &globex, &registry).unwrap();
    let run = executor
        .run(
            &run_ctx(globex),
            &workflow,
            json!({"customer": "c-42"}),
            &CancelToken::new(),
        )
        .await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.failed_node.as_deref(), Some("fetch"));
    let fetch = run.nodes.iter().find(|n| n.id == "fetch").unwrap();
    assert_eq!(fetch.status, NodeStatus::Failed);
    assert!(
        fetch
            .error
            .as_deref()
            .unwrap()
            .contains("integration \"svc\"")
    );
    assert_eq!(server.seen().len(), 1);
}

// ---------------------------------------------------------------- database_query

/// One call: the SQL text, the params, the analytics flag, the limits.
type Call = (String, Vec<Value>, bool, QueryLimits);

#[derive(Default)]
struct Recording {
    calls: Mutex<Vec<Call>>,
}

#[async_trait]
impl Database for Recording {
    async fn query(
        &self,
        tenant: &kailash_core::TenantId,
        sql: &str,
        params: &[Value],
        analytics: bool,
        limits: QueryLimits,
    ) -> Result<Vec<Value>, DatabaseError> {
        // The run's tenant reaches the database with every statement.
        assert_eq!(tenant.as_str(), "acme");
        self.calls
            .lock()
            .unwrap()
            .push((sql.to_owned(), params.to_vec(), analytics, limits));
        let n = params.first().and_then(Value::as_u64).unwrap_or(1);
        Ok((0..n).map(|i| json!({"row": i})).collect())
    }
}

#[tokio::test]
async fn database_query_passes_params_apart_from_the_sql() {
    let db = Arc::new(Recording::default());
    let registry = NodeRegistry::builtin().with_database(db.clone());
    const SQL: &str = "SELECT id FROM orders WHERE customer = $1 AND note = $2";
    let def = |analytics: bool| -> Definition {
        serde_json::from_value(json!({
            "inputs": ["p"],
            "nodes": [{"id": "q", "type": "database_query",
                       "config": {"sql": SQL, "analytics": analytics, "max_rows": 3}}],
            "connections": [{"from": {"input": "p"}, "to": {"node": "q", "input": "params"}}],
            "outputs": {"rows": {"node": "q", "output": "rows"}, "n": {"node": "q", "output": "row_count"}},
        }))
        .unwrap()
    };
    let executor = Executor::new(Arc::new(SystemClock));
    let hostile = "x'); DROP TABLE orders; --";
    let workflow = compile(&def(false), &acme(), &registry).unwrap();
    let run = executor
        .run(
            &run_ctx(acme()),
            &workflow,
            json!({"p": [2, hostile]}),
            &CancelToken::new(),
        )
        .await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.reason);
    assert_eq!(
        run.outputs,
        Some(json!({"rows": [{"row": 0}, {"row": 1}], "n": 2}))
    );
    {
        let calls = db.calls.lock().unwrap();
        let (sql, params, analytics, limits) = &calls[0];
        assert_eq!(sql, SQL);
        assert_eq!(params, &[json!(2), json!(hostile)]);
        assert!(!analytics);
        assert_eq!(limits.max_rows, 3);
    }

    // More rows than max_rows fail the node.
    let run = executor
        .run(
            &run_ctx(acme()),
            &workflow,
            json!({"p": [5]}),
            &CancelToken::new(),
        )
        .await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.reason.unwrap().contains("max_rows"));
    // Params must be an array.
    let run = executor
        .run(
            &run_ctx(acme()),
            &workflow,
            json!({"p": "1; DROP"}),
            &CancelToken::new(),
        )
        .await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(db.calls.lock().unwrap().len(), 2);

    // Analytics needs `advanced_analytics`; with it the flag reaches the database.
    let err = compile(&def(true), &acme(), &registry).unwrap_err();
    assert!(
        matches!(err, DefinitionError::FeatureRequired { ref feature, .. } if feature == "advanced_analytics")
    );
    let analyst = tenant(json!({"id": "acme", "features": ["advanced_analytics"]}));
    let workflow = compile(&def(true), &analyst, &registry).unwrap();
    let run = executor
        .run(
            &run_ctx(analyst),
            &workflow,
            json!({"p": [1]}),
            &CancelToken::new(),
        )
        .await;
    assert_eq!(run.status, RunStatus::Completed);
    assert!(db.calls.lock().unwrap()[2].2);

    // Not offered without a database; the SQL must be in the config.
    assert!(matches!(
        compile(&def(false), &acme(), &NodeRegistry::builtin()),
        Err(DefinitionError::UnknownNodeType { .. })
    ));
    let no_sql: Definition = serde_json::from_value(
        json!({"nodes": [{"id": "q", "type": "database_query", "config": {}}]}),
    )
    .unwrap();
    assert!(matches!(
        compile(&no_sql, &acme(), &registry),
        Err(DefinitionError::InvalidConfig { ref node, .. }) if node == "q"
    ));
}
