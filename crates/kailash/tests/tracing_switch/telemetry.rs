//! OpenTelemetry export end to end: a local OTLP/HTTP receiver decodes the
//! protobuf the gateway sends and checks span names, HTTP attributes and
//! parent links; the incoming `traceparent` is the request span's parent;
//! problem+json bodies and audit entries carry the trace id.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use kailash::config::{GatewayConfig, TelemetryConfig};
use kailash::telemetry::Telemetry;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message;
use serde_json::json;
use tracing_subscriber::prelude::*;

use super::support::{request, start_gateway, unique_suffix};

/// One span as the receiver decoded it.
#[derive(Debug, Clone)]
struct Got {
    name: String,
    trace: String,
    id: String,
    parent: String,
    kind: i32,
    status: i32,
    attrs: BTreeMap<String, String>,
    service: String,
    resource: BTreeMap<String, String>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attrs(kv: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Any::StringValue(s)) => s.clone(),
                Some(Any::IntValue(i)) => i.to_string(),
                Some(Any::BoolValue(b)) => b.to_string(),
                Some(Any::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

type Spans = Arc<Mutex<Vec<Got>>>;

/// An OTLP/HTTP receiver: `POST /v1/traces` with
/// `application/x-protobuf`, decoded; anything else is refused.
async fn receiver() -> (std::net::SocketAddr, Spans) {
    async fn traces(
        State(spans): State<Spans>,
        headers: axum::http::HeaderMap,
        body: Bytes,
    ) -> axum::http::StatusCode {
        if headers.get("content-type").and_then(|v| v.to_str().ok())
            != Some("application/x-protobuf")
        {
            return axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
        }
        let Ok(req) = ExportTraceServiceRequest::decode(body) else {
            return axum::http::StatusCode::BAD_REQUEST;
        };
        let mut out = spans.lock().unwrap();
        for rs in req.resource_spans {
            let resource = attrs(&rs.resource.map(|r| r.attributes).unwrap_or_default());
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    out.push(Got {
                        name: s.name,
                        trace: hex(&s.trace_id),
                        id: hex(&s.span_id),
                        parent: hex(&s.parent_span_id),
                        kind: s.kind,
                        status: s.status.map_or(0, |st| st.code),
                        attrs: attrs(&s.attributes),
                        service: service.clone(),
                        resource: resource.clone(),
                    });
                }
            }
        }
        axum::http::StatusCode::OK
    }
    let spans: Spans = Arc::default();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(traces))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, spans)
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

// Current-thread runtime: the scoped subscriber sees every task of the test.
#[tokio::test(flavor = "current_thread")]
async fn spans_reach_the_collector_with_http_attributes_and_parent_links() {
    let (collector, spans) = receiver().await;
    let config = TelemetryConfig {
        endpoint: Some(format!("http://{collector}")),
        service_name: Some("otel-test".into()),
        resource_attributes: [("deployment.environment".to_owned(), "test".to_owned())].into(),
        ..TelemetryConfig::default()
    };
    let telemetry = Telemetry::from_config(&config, "unused").unwrap().unwrap();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(telemetry.layer()));

    // The fixture gateway (DEMO.md's users), built after telemetry.
    let dir = std::env::temp_dir().join(format!("kailash-otel-{}", unique_suffix()));
    let text = super::support::demo::demo_config_text();
    let gw_config = GatewayConfig::from_toml_str(&text, "gateway.toml").unwrap();
    let gateway = kailash::GatewayBuilder::from_config_with_backends(&gw_config, &dir)
        .await
        .unwrap()
        .build()
        .unwrap();
    let gw = start_gateway(gateway).await;

    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let body = json!({"username": "bob", "password": "Bob-Demo-Passw0rd!"}).to_string();
    let login = request(
        gw.addr,
        &format!(
            "POST /auth/login HTTP/1.1\nHost: x\ntraceparent: {traceparent}\nContent-Type: application/json\nContent-Length: {}",
            body.len()
        ),
        body.as_bytes(),
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.text());
    let token = login.json()["access_token"].as_str().unwrap().to_owned();
    let usage = request(
        gw.addr,
        &format!("GET /api/tenant/usage HTTP/1.1\nHost: x\ntraceparent: {traceparent}\nAuthorization: Bearer {token}"),
        b"",
    )
    .await;
    assert_eq!(usage.status, 200, "{}", usage.text());

    // Problem bodies name the trace: one made by a handler's layer (no
    // token), one by the problem layer outside the span (no such route).
    let other = "0af7651916cd43dd8448eb211c80319c";
    let denied = request(
        gw.addr,
        &format!(
            "GET /api/tenant/usage HTTP/1.1\nHost: x\ntraceparent: 00-{other}-b7ad6b7169203331-01"
        ),
        b"",
    )
    .await;
    assert_eq!(denied.assert_problem(401)["trace_id"], other);
    let missing = request(
        gw.addr,
        &format!(
            "GET /no/such/route HTTP/1.1\nHost: x\ntraceparent: 00-{other}-b7ad6b7169203331-01\nAuthorization: Bearer {token}"
        ),
        b"",
    )
    .await;
    assert_eq!(missing.assert_problem(404)["trace_id"], other);
    // Without an incoming trace, a new one is started and named.
    let fresh = request(
        gw.addr,
        &format!("GET /no/such/route HTTP/1.1\nHost: x\nAuthorization: Bearer {token}"),
        b"",
    )
    .await;
    let fresh_id = fresh.assert_problem(404)["trace_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(fresh_id.len(), 32);
    assert_ne!(fresh_id, other);

    // Outgoing calls carry the current context.
    {
        let span = tracing::info_span!("outgoing");
        let _e = span.enter();
        let mut headers = http::HeaderMap::new();
        kailash::trace_context::inject(&mut headers);
        let tp = headers["traceparent"].to_str().unwrap().to_owned();
        let id = kailash::trace_context::current_trace_id().unwrap();
        assert!(tp.starts_with(&format!("00-{id}-")), "{tp}");
    }

    gw.stop().await;
    let t = telemetry.clone();
    tokio::task::spawn_blocking(move || t.force_flush().unwrap())
        .await
        .unwrap();
    let spans = spans.lock().unwrap().clone();
    let find = |name: &str, trace: &str| -> Vec<Got> {
        spans
            .iter()
            .filter(|s| s.name == name && s.trace == trace)
            .cloned()
            .collect()
    };

    // The login and the usage request: server spans, children of the
    // caller's span, named after their routes, with HTTP attributes.
    let usage_span = find("GET /api/tenant/usage", TRACE);
    assert_eq!(usage_span.len(), 1, "{spans:#?}");
    let u = &usage_span[0];
    assert_eq!(u.parent, PARENT);
    assert_eq!(u.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(u.attrs["http.request.method"], "GET");
    assert_eq!(u.attrs["http.route"], "/api/tenant/usage");
    assert_eq!(u.attrs["url.path"], "/api/tenant/usage");
    assert_eq!(u.attrs["http.response.status_code"], "200");
    assert!(!u.attrs.contains_key("otel.name") && !u.attrs.contains_key("otel.kind"));
    assert_eq!(u.service, "otel-test");
    assert_eq!(u.resource["deployment.environment"], "test");
    let login_span = find("POST /auth/login", TRACE);
    assert_eq!(login_span.len(), 1, "{spans:#?}");
    assert_eq!(login_span[0].parent, PARENT);

    // Authentication is a child of the usage request's span.
    let auth = find("auth.authenticate", TRACE);
    assert!(
        auth.iter().any(|a| a.parent == u.id),
        "auth.authenticate under {}: {auth:#?}",
        u.id
    );
    // The unmatched route keeps the method as its name; a 404 is no error
    // for a server span, only a 5xx is.
    let unmatched = find("GET", other);
    assert_eq!(unmatched.len(), 1, "{spans:#?}");
    assert_eq!(unmatched[0].attrs["http.response.status_code"], "404");
    assert!(!unmatched[0].attrs.contains_key("http.route"));
    assert_ne!(unmatched[0].status, 2);
    let refused = find("GET /api/tenant/usage", other);
    assert_eq!(refused.len(), 1, "{spans:#?}");
    assert_eq!(refused[0].attrs["http.response.status_code"], "401");

    // The login's audit entry carries the trace id.
    let mut audited = String::new();
    for _ in 0..100 {
        audited = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        if audited.contains(TRACE) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let line = audited
        .lines()
        .find(|l| l.contains("\"a\":\"auth.login\""))
        .unwrap_or_else(|| panic!("no login in {audited}"));
    assert!(line.contains(&format!("\"tr\":\"{TRACE}\"")), "{line}");
    telemetry.shutdown().await;
    std::fs::remove_dir_all(&dir).ok();
}
