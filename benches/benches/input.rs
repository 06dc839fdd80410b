//! Cost of the JSON shape limits (`kailash_core::json_limits`) that every
//! JSON body passes before it is parsed, beside the parse itself
//! (`serde_json::Value`, what the schema-enforcing extractor does next), on
//! a login body, a workflow-sized document and a 64 KiB array; and of the
//! response DLP (`kailash_core::dlp`): the detectors on a clean and a
//! personal-data-laden JSON response, and one response through
//! `DlpLayer` (redacted, and outside every rule); and of field-level
//! encryption (`kailash_core::field_encryption`): sealing and opening a
//! session's client address, and reading a session record's sealed
//! address field as the per-request session check does (no opening).
//!
//! ```text
//! cargo bench -p kailash-benches --bench input
//! ```

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kailash_core::json_limits::JsonLimits;
use serde_json::{Value, json};

fn bodies() -> Vec<(&'static str, Vec<u8>)> {
    let login = json!({"username": "bob", "password": "Bob-Demo-Passw0rd!"});
    let nodes: Vec<Value> = (0..20)
        .map(|i| {
            json!({"id": format!("n{i}"), "type": "transform",
                "config": {"expr": "input.total * 1.2", "tags": ["a", "b"], "retries": 3}})
        })
        .collect();
    let workflow = json!({"name": "orders", "nodes": nodes, "edges": [{"from": "n0", "to": "n1"}]});
    let array: Vec<Value> = (0..6000).map(|i| json!(i * 7)).collect();
    vec![
        ("login", serde_json::to_vec(&login).unwrap_or_default()),
        (
            "workflow",
            serde_json::to_vec(&workflow).unwrap_or_default(),
        ),
        ("array_64k", serde_json::to_vec(&array).unwrap_or_default()),
    ]
}

fn bench_input(c: &mut Criterion) {
    let limits = JsonLimits::default();
    let mut group = c.benchmark_group("json_limits");
    for (name, body) in bodies() {
        assert!(limits.check(&body).is_ok(), "{name} within the limits");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(format!("check/{name}"), |b| {
            b.iter(|| limits.check(black_box(&body)))
        });
        group.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| serde_json::from_slice::<Value>(black_box(&body)))
        });
    }
    group.finish();
}

fn customers(n: usize, pii: bool) -> Vec<u8> {
    let rows: Vec<Value> = (0..n)
        .map(|i| {
            if pii {
                json!({"id": i, "name": format!("Customer {i}"), "email": format!("c{i}@example.com"),
                    "card": "4111 1111 1111 1111", "phone": "+4930123456789", "note": "regular, pays on time"})
            } else {
                json!({"id": i, "name": format!("Customer {i}"), "tier": "gold",
                    "orders": 17, "note": "regular, pays on time", "since": "2021-04-01"})
            }
        })
        .collect();
    serde_json::to_vec(&rows).unwrap_or_default()
}

fn bench_dlp(c: &mut Criterion) {
    use http::{Request, Response};
    use http_body_util::{BodyExt, Full};
    use kailash_core::dlp::{DlpAction, DlpLayer, DlpRule};
    use kailash_core::pii::PiiDetector;
    use tower::{Layer, ServiceExt, service_fn};

    let detector = PiiDetector::all();
    let mut group = c.benchmark_group("dlp");
    for (name, body) in [
        ("clean_20", customers(20, false)),
        ("pii_20", customers(20, true)),
    ] {
        let text = String::from_utf8(body.clone()).unwrap_or_default();
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(format!("find/{name}"), |b| {
            b.iter(|| detector.find(black_box(&text)))
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let layer = DlpLayer::new()
            .rule(DlpRule::new("/api/customers", DlpAction::Redact).expect("rule"))
            .expect("layer");
        let bytes = bytes::Bytes::from(body);
        let svc = layer.layer(service_fn(move |_req: Request<()>| {
            let bytes = bytes.clone();
            async move {
                Ok::<_, std::convert::Infallible>(
                    Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(bytes))
                        .expect("response"),
                )
            }
        }));
        for path in ["/api/customers", "/api/other"] {
            group.bench_function(format!("layer{path}/{name}"), |b| {
                b.iter(|| {
                    rt.block_on(async {
                        let r = svc
                            .clone()
                            .oneshot(Request::get(path).body(()).expect("request"))
                            .await
                            .expect("infallible");
                        r.into_body().collect().await.map(|c| c.to_bytes().len())
                    })
                })
            });
        }
    }
    group.finish();
}

fn bench_fields(c: &mut Criterion) {
    use kailash_core::field_encryption::{Encrypted, FieldKeys, FieldKeysOptions};
    use std::sync::Arc;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let state =
        kailash_core::state::SharedState::memory(Arc::new(kailash_core::clock::SystemClock));
    let ring =
        kailash_core::envelope::Keyring::parse("k1 AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n")
            .unwrap();
    let keys = rt
        .block_on(FieldKeys::load(
            state,
            Arc::new(ring),
            FieldKeysOptions::default(),
        ))
        .unwrap();
    let ip: std::net::IpAddr = "203.0.113.9".parse().unwrap();
    let context = b"kailash-session-ip\0AbCdEfGhIjKlMnOpQrStUvWx";
    let mut g = c.benchmark_group("fields");
    g.bench_function("seal an address", |b| {
        b.iter(|| {
            rt.block_on(Encrypted::seal(&keys, black_box(&ip), context))
                .unwrap()
        })
    });
    let sealed = rt.block_on(Encrypted::seal(&keys, &ip, context)).unwrap();
    g.bench_function("open an address", |b| {
        b.iter(|| rt.block_on(sealed.open(&keys, black_box(context))).unwrap())
    });
    let clear = serde_json::to_string(&ip).unwrap();
    let field = serde_json::to_string(&sealed).unwrap();
    g.bench_function("read a clear address field", |b| {
        b.iter(|| serde_json::from_str::<std::net::IpAddr>(black_box(&clear)).unwrap())
    });
    g.bench_function("read a sealed address field (shape only)", |b| {
        b.iter(|| serde_json::from_str::<Encrypted<std::net::IpAddr>>(black_box(&field)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_input, bench_dlp, bench_fields);
criterion_main!(benches);
