//! `metrics_otel`: Prometheus metrics per route template, spans to an
//! OTLP/HTTP collector (a stand-in that records what it receives).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::{Example, get};

/// Accepts OTLP/HTTP exports: sends (request head, body) of each one.
async fn collector(listener: TcpListener, tx: mpsc::UnboundedSender<(String, Vec<u8>)>) {
    while let Ok((mut stream, _)) = listener.accept().await {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut raw = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                let Ok(n) = stream.read(&mut buf).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                raw.extend_from_slice(&buf[..n]);
                let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if raw.len() < end + 4 + length {
                    continue;
                }
                let body = raw[end + 4..end + 4 + length].to_vec();
                let _ = tx.send((head, body));
                let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                let _ = stream.write_all(ok.as_bytes()).await;
                raw.drain(..end + 4 + length);
            }
        });
    }
}

#[tokio::test]
async fn metrics_by_template_and_spans_exported() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(collector(listener, tx));
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        // The batch exporter's interval (default 5 s).
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let ex = Example::start("metrics_otel", &["127.0.0.1:0"], &env);

    for id in [42, 43] {
        let res = get(ex.addr, &format!("/orders/{id}"), None, "").await;
        assert_eq!((res.status, res.text()), (200, format!("order {id}\n")));
    }
    let text = get(ex.addr, "/metrics", None, "").await.text();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("/orders/{id}"))
        .collect();
    assert!(!series.is_empty(), "no series for the template in:\n{text}");
    assert!(
        !text.contains("/orders/42"),
        "a raw path became a label:\n{text}"
    );

    // Both requests' spans reach the collector, as OTLP protobuf.
    let mut exported = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while exported.windows(10).filter(|w| w == b"orders.get").count() < 2 {
        let (head, body) = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("spans exported within 20 s")
            .expect("collector running");
        assert!(head.starts_with("post /v1/traces "), "{head}");
        assert!(
            head.contains("content-type: application/x-protobuf"),
            "{head}"
        );
        exported.extend_from_slice(&body);
    }
    assert!(exported.windows(6).any(|w| w == b"orders"), "service.name");
}

#[tokio::test]
async fn without_a_collector_it_serves_metrics_only() {
    let ex = Example::start("metrics_otel", &["127.0.0.1:0"], &[]);
    assert_eq!(get(ex.addr, "/orders/1", None, "").await.status, 200);
    assert_eq!(get(ex.addr, "/orders/x", None, "").await.status, 400);
    assert!(
        get(ex.addr, "/metrics", None, "")
            .await
            .text()
            .contains("/orders/{id}")
    );
}
