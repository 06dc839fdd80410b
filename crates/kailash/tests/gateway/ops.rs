//! Who reads the operational details: the operations listener
//! (`ops_listen`) and the operations token (`ops_token`), over real TCP
//! connections, with the OpenAPI document describing what each listener
//! serves.

use super::support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing;
use kailash::config::GatewayConfig;
use kailash::health::from_fn;
use kailash::{Gateway, GatewayBuilder, GatewayError};
use support::{Resp, get, request, sample, start};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const TOKEN: &str = "ops-7f3c9a1e5b2d4c68";

fn app() -> Router {
    Router::new().route("/hello", routing::get(|| async { "hello" }))
}

/// A builder whose readiness has a detail to hide: an optional check that
/// fails with an error message.
fn builder() -> GatewayBuilder {
    Gateway::builder().routes(app()).optional_check(
        "mailer",
        from_fn(|| async { Err("smtp.internal:25 refused".to_owned()) }),
    )
}

/// A gateway serving its main listener and its operations listener.
struct Both {
    main: SocketAddr,
    ops: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), GatewayError>>,
}

impl Both {
    async fn start(builder: GatewayBuilder) -> Self {
        let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ops = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (main_addr, ops_addr) = (main.local_addr().unwrap(), ops.local_addr().unwrap());
        // The configured address only has to differ from the main one: the
        // test hands over listeners already bound.
        let gateway = builder
            .ops_listen("127.0.0.1:1".parse().unwrap())
            .build()
            .expect("gateway builds");
        assert_eq!(
            gateway.ops_listen_addr(),
            Some("127.0.0.1:1".parse().unwrap())
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve_with_ops(main, ops, async {
            let _ = stopped.await;
        }));
        Self {
            main: main_addr,
            ops: ops_addr,
            stop,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("gateway stops")
            .expect("task")
            .expect("serve");
        for addr in [self.main, self.ops] {
            assert!(
                TcpStream::connect(addr).await.is_err(),
                "{addr} no longer accepting"
            );
        }
    }
}

async fn get_with_token(addr: SocketAddr, path: &str, token: &str) -> Resp {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\nHost: localhost\nAuthorization: Bearer {token}"),
        b"",
    )
    .await
}

/// `{"status": …}` and nothing else.
fn assert_status_only(r: &Resp, status: u16, value: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({ "status": value }));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(!r.text().contains("smtp"), "no detail: {}", r.text());
}

/// The detailed report, naming the failing check and its error.
fn assert_detailed(r: &Resp) {
    assert_eq!(r.status, 200, "{}", r.text());
    let report = r.json();
    assert_eq!(report["status"], "degraded");
    let mailer = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "mailer")
        .unwrap_or_else(|| panic!("the mailer check in {report}"))
        .clone();
    assert_eq!(mailer["error"], "smtp.internal:25 refused");
}

#[tokio::test]
async fn an_operations_listener_takes_metrics_and_details_off_the_main_listener() {
    let gw = Both::start(builder()).await;

    // The main listener: liveness, readiness without details, no metrics.
    assert_eq!(get(gw.main, "/health/live").await.json()["status"], "ok");
    assert_status_only(&get(gw.main, "/health/ready").await, 200, "degraded");
    get(gw.main, "/metrics").await.assert_problem(404);
    // A token changes nothing there: the details live on the other port.
    assert_status_only(
        &get_with_token(gw.main, "/health/ready", TOKEN).await,
        200,
        "degraded",
    );

    // The operations listener: liveness, the detailed report, the metrics
    // of the main listener's requests; nothing else.
    const HELLO: &str = "http_requests_total{method=\"GET\",route=\"/hello\",status=\"2xx\"}";
    let before = sample(&get(gw.ops, "/metrics").await.text(), HELLO);
    assert_eq!(get(gw.main, "/hello").await.text(), "hello");
    let metrics = get(gw.ops, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert_eq!(sample(&metrics.text(), HELLO) - before, 1.0);
    assert_eq!(get(gw.ops, "/health/live").await.json()["status"], "ok");
    assert_detailed(&get(gw.ops, "/health/ready").await);
    for path in ["/hello", "/openapi.json", "/docs"] {
        get(gw.ops, path).await.assert_problem(404);
    }

    // The main listener's document describes what it serves.
    let doc = get(gw.main, "/openapi.json").await.json();
    kailash::schema::check_document_json(&doc).unwrap();
    assert!(doc["paths"]["/metrics"].is_null(), "no /metrics documented");
    assert!(doc["paths"]["/health/live"]["get"].is_object());
    let ready = &doc["paths"]["/health/ready"]["get"];
    for code in ["200", "503"] {
        assert_eq!(
            ready["responses"][code]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ReadinessStatus",
            "{code}"
        );
    }
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["HealthReport"].is_null(), "no report schema");
    assert_eq!(
        schemas["ReadinessStatus"]["properties"]["status"]["enum"],
        serde_json::json!(["ok", "degraded", "fail"])
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_operations_token_guards_metrics_and_the_readiness_details() {
    let gw = start(builder().ops_token(TOKEN)).await;

    let missing = get(gw.addr, "/metrics").await;
    let problem = missing.assert_problem(401);
    assert_eq!(problem["title"], "Unauthorized");
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    let wrong = get_with_token(gw.addr, "/metrics", "ops-7f3c9a1e5b2d4c69").await;
    wrong.assert_problem(401);
    assert_eq!(
        wrong.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    // A prefix of the token is another token.
    get_with_token(gw.addr, "/metrics", &TOKEN[..16])
        .await
        .assert_problem(401);
    let metrics = get_with_token(gw.addr, "/metrics", TOKEN).await;
    assert_eq!(metrics.status, 200, "{}", metrics.text());
    assert!(metrics.text().contains("http_requests_total"));

    // Probes need no token; the details do.
    assert_status_only(&get(gw.addr, "/health/ready").await, 200, "degraded");
    assert_status_only(
        &get_with_token(gw.addr, "/health/ready", "not-the-ops-token").await,
        200,
        "degraded",
    );
    assert_detailed(&get_with_token(gw.addr, "/health/ready", TOKEN).await);
    assert_eq!(get(gw.addr, "/health/live").await.status, 200);

    // The document says so.
    let doc = get(gw.addr, "/openapi.json").await.json();
    kailash::schema::check_document_json(&doc).unwrap();
    let scheme = &doc["components"]["securitySchemes"]["ops_token"];
    assert_eq!(
        (scheme["type"].as_str(), scheme["scheme"].as_str()),
        (Some("http"), Some("bearer"))
    );
    let metrics_op = &doc["paths"]["/metrics"]["get"];
    assert_eq!(
        metrics_op["security"],
        serde_json::json!([{ "ops_token": [] }])
    );
    assert_eq!(
        metrics_op["responses"]["401"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    let ready = &doc["paths"]["/health/ready"]["get"];
    assert_eq!(
        ready["security"],
        serde_json::json!([{}, { "ops_token": [] }]),
        "the token is optional on readiness"
    );
    let one_of = &doc["components"]["schemas"]["Readiness"]["oneOf"];
    let refs: Vec<&str> = one_of
        .as_array()
        .unwrap_or_else(|| {
            panic!(
                "Readiness is a oneOf: {}",
                doc["components"]["schemas"]["Readiness"]
            )
        })
        .iter()
        .map(|s| s["$ref"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        refs,
        [
            "#/components/schemas/HealthReport",
            "#/components/schemas/ReadinessStatus"
        ]
    );
    gw.stop().await;
}

#[tokio::test]
async fn with_both_the_operations_listener_takes_the_token_too() {
    let gw = Both::start(builder().ops_token(TOKEN)).await;
    get(gw.ops, "/metrics").await.assert_problem(401);
    assert_eq!(get_with_token(gw.ops, "/metrics", TOKEN).await.status, 200);
    assert_status_only(&get(gw.ops, "/health/ready").await, 200, "degraded");
    assert_detailed(&get_with_token(gw.ops, "/health/ready", TOKEN).await);
    get(gw.main, "/metrics").await.assert_problem(404);
    assert_status_only(
        &get_with_token(gw.main, "/health/ready", TOKEN).await,
        200,
        "degraded",
    );
    gw.stop().await;
}

fn config(text: &str) -> Result<GatewayConfig, kailash::config::ConfigError> {
    GatewayConfig::from_toml_str(text, "ops.toml")
}

#[tokio::test]
async fn bad_operations_settings_are_refused() {
    // Both sources of the token.
    let e =
        config("[gateway]\nops_token_env = \"OPS_TOKEN\"\nops_token_file = \"/run/secrets/ops\"\n")
            .unwrap_err()
            .to_string();
    assert!(e.contains("key `gateway.ops_token_env`"), "{e}");
    assert!(e.contains("not both"), "{e}");
    // The operations listener on the main listener's socket.
    for (listen, ops) in [
        ("127.0.0.1:8000", "127.0.0.1:8000"),
        ("127.0.0.1:8000", "0.0.0.0:8000"),
    ] {
        let e = config(&format!(
            "[server]\nlisten = \"{listen}\"\nops_listen = \"{ops}\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("key `server.ops_listen`"), "{e}");
    }
    let e = config(
        "[server]\nops_listen = \"127.0.0.1:9000\"\n[gateway]\nhealth = false\nmetrics = false\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("key `server.ops_listen`"), "{e}");
    let ok = config("[server]\nops_listen = \"0.0.0.0:9000\"\n").unwrap();
    assert_eq!(ok.server.ops_listen.unwrap().port(), 9000);

    // The token is read at start: an unset variable, a short token.
    let unset =
        config("[gateway]\nops_token_env = \"KAILASH_TEST_OPS_TOKEN_NEVER_SET\"\n").unwrap();
    let e = GatewayBuilder::from_config(&unset).unwrap_err().to_string();
    assert!(e.contains("KAILASH_TEST_OPS_TOKEN_NEVER_SET"), "{e}");
    let dir = std::env::temp_dir().join(format!("kailash-ops-{}", support::unique_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ops-token");
    std::fs::write(&file, "s3cret-short\n").unwrap();
    let short = config(&format!(
        "[gateway]\nops_token_file = {:?}\n",
        file.display().to_string()
    ))
    .unwrap();
    let e = GatewayBuilder::from_config(&short).unwrap_err();
    assert!(matches!(e, GatewayError::Ops(_)), "{e:?}");
    let e = e.to_string();
    assert!(e.contains("shorter than 16 bytes"), "{e}");
    assert!(!e.contains("s3cret"), "the token stays secret: {e}");

    // A good token from a file (trailing newline trimmed) guards /metrics.
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let good = config(&format!(
        "[gateway]\nops_token_file = {:?}\n",
        file.display().to_string()
    ))
    .unwrap();
    let gw = start(GatewayBuilder::from_config(&good).unwrap()).await;
    get(gw.addr, "/metrics").await.assert_problem(401);
    assert_eq!(get_with_token(gw.addr, "/metrics", TOKEN).await.status, 200);
    gw.stop().await;
    std::fs::remove_dir_all(&dir).ok();

    // The builder refuses the same.
    let e = Gateway::builder().ops_token("short").build().unwrap_err();
    assert!(matches!(e, GatewayError::Ops(_)), "{e:?}");
    let listen: SocketAddr = "127.0.0.1:8000".parse().unwrap();
    let e = Gateway::builder()
        .listen(listen)
        .ops_listen(listen)
        .build()
        .unwrap_err();
    assert!(matches!(e, GatewayError::Ops(_)), "{e:?}");
    // Serving an operations listener nobody configured.
    let gateway = Gateway::builder().build().unwrap();
    assert_eq!(gateway.ops_listen_addr(), None);
    assert!(gateway.ops_router().is_none());
    let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = gateway
        .serve_with_ops(main, ops, async {})
        .await
        .unwrap_err();
    assert!(matches!(e, GatewayError::Ops(_)), "{e:?}");
}

#[tokio::test]
async fn the_operations_listener_has_its_own_connection_caps() {
    // As a Router, for tests: the operations routes only.
    use tower::ServiceExt as _;
    let gateway = builder()
        .ops_listen("127.0.0.1:1".parse().unwrap())
        .build()
        .unwrap();
    let ops = gateway.ops_router().expect("an operations router");
    let req = |path: &str| {
        axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let r = ops.clone().oneshot(req("/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = ops.oneshot(req("/hello")).await.unwrap();
    assert_eq!(r.status(), 404);
    let r = gateway.router().oneshot(req("/metrics")).await.unwrap();
    assert_eq!(r.status(), 404);

    // Probes and scrapers, not clients: 32 connections from one address.
    let gw = Both::start(builder()).await;
    let mut held = Vec::new();
    for _ in 0..32 {
        held.push(TcpStream::connect(gw.ops).await.unwrap());
    }
    // The connections are admitted in the accept loop's order.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = get(gw.ops, "/health/live").await;
    assert_eq!(refused.assert_problem(429)["limit"], "connections");
    // The main listener is not affected.
    assert_eq!(get(gw.main, "/health/live").await.status, 200);
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(gw.ops, "/health/live").await.status, 200);
    gw.stop().await;
}
