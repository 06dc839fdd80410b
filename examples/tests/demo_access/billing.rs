//! `[billing]` on the reference deployment: a local receiver gets each
//! tenant's `billing.usage` report for yesterday, signed (checked here with
//! an HMAC of its own), with its idempotency key; a receiver that refuses
//! leaves the day pending with its attempt recorded, requests unaffected;
//! today's metered usage (API calls, a workflow run) is at
//! `GET /api/tenant/usage`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    backends, call, demo_config_text, finished, login, order_workflow, start_on, temp_dir,
};

const SECRET: &str = "billing-test-secret-0123456789abcdef";

/// One request the receiver got: its head (lowercase header names) and body.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A webhook receiver: answers 503 to reports of `globex`, 200 to others,
/// and keeps every request.
async fn receiver() -> (std::net::SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                let (head_end, length) = loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    raw.extend_from_slice(&buf[..n]);
                    if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (end + 4, length);
                    }
                };
                while raw.len() < head_end + length {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    raw.extend_from_slice(&buf[..n]);
                }
                let head = String::from_utf8_lossy(&raw[..head_end - 4]).into_owned();
                let headers = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let received = Received {
                    headers,
                    body: raw[head_end..head_end + length].to_vec(),
                };
                let refuse = received.json()["tenant_id"] == "globex";
                keep.lock().unwrap().push(received);
                let status = if refuse {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let answer =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (addr, got)
}

/// The signature header's check, done here without the gateway's code:
/// `t=<secs>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, `t` within five
/// minutes of now.
fn signature_holds(header: &str, body: &[u8]) -> bool {
    use aws_lc_rs::hmac;
    let Some((t, v1)) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let Ok(sent) = t.parse::<u64>() else {
        return false;
    };
    if now.abs_diff(sent) > 300 {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = hmac::sign(&key, &[t.as_bytes(), b".", body].concat());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    hex == v1
}

#[tokio::test]
async fn usage_reports_are_signed_delivered_once_and_retried() {
    for backend in backends() {
        let (addr, got) = receiver().await;
        let data_dir = temp_dir();
        std::fs::create_dir_all(&data_dir).unwrap();
        std::fs::write(data_dir.join("billing.secret"), format!("{SECRET}\n")).unwrap();
        let text = format!(
            "{}\n[billing]\nwebhook_url = \"http://{addr}/billing\"\nsecret_file = \"billing.secret\"\ninterval = \"1s\"\nsettle = \"0s\"\ntimeout = \"2s\"\n",
            demo_config_text()
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let d = start_on(&text, "billing.toml", &backend, data_dir, listener).await;

        // Yesterday's reports arrive within a few rounds: acme's and
        // initech's accepted, globex's refused.
        let yesterday = || {
            jiff::tz::TimeZone::UTC
                .to_datetime(jiff::Timestamp::now())
                .date()
                .yesterday()
                .unwrap()
        };
        let before = yesterday();
        let tenants_seen = |got: &[Received]| {
            let mut t: Vec<String> = got
                .iter()
                .map(|r| r.json()["tenant_id"].as_str().unwrap().to_owned())
                .collect();
            t.sort();
            t.dedup();
            t
        };
        for _ in 0..100 {
            if tenants_seen(&got.lock().unwrap()).len() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            tenants_seen(&got.lock().unwrap()),
            ["acme", "globex", "initech"]
        );
        let acme = got
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.json()["tenant_id"] == "acme")
            .cloned()
            .unwrap();
        // Yesterday (as of the start, or of now should midnight have
        // passed meanwhile).
        let yesterday = [before, yesterday()]
            .into_iter()
            .find(|d| acme.json()["id"] == format!("acme:{d}"))
            .expect("yesterday's report");
        let id = format!("acme:{yesterday}");
        assert_eq!(acme.header("idempotency-key"), Some(id.as_str()));
        assert_eq!(acme.header("x-kailash-event"), Some("billing.usage"));
        assert_eq!(acme.header("content-type"), Some("application/json"));
        let signature = acme.header("x-kailash-signature").expect("signed");
        assert!(signature_holds(signature, &acme.body), "{signature}");
        // Another body under that signature does not hold.
        assert!(!signature_holds(signature, b"{}"));
        let report = acme.json();
        assert_eq!(report["type"], "billing.usage");
        assert_eq!(report["id"], id);
        assert_eq!(report["billing_plan"], "enterprise");
        assert_eq!(report["period_start"], format!("{yesterday}T00:00:00Z"));
        assert_eq!(report["usage"]["day"], yesterday.to_string());
        for figure in [
            "api_calls",
            "workflow_runs",
            "workflow_run_ms",
            "realtime_connection_seconds",
        ] {
            assert!(report["usage"][figure].is_u64(), "{figure}: {report}");
        }
        assert!(report["storage_bytes"].is_u64());

        // Today's usage is metered: API calls and a workflow run.
        let dave = login(&d, "dave", "Dave-Demo-Passw0rd!", None).await;
        let wf = call(&d, "POST", "/api/workflows", &dave, Some(order_workflow())).await;
        let wf = wf.json()["id"].as_str().unwrap().to_owned();
        let sid = call(&d, "POST", "/api/sessions", &dave, None).await.json()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let body = json!({"workflow_id": wf, "inputs": {"order": {"qty": 1}}});
        let run = call(
            &d,
            "POST",
            &format!("/api/sessions/{sid}/executions"),
            &dave,
            Some(body),
        )
        .await
        .json()["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(finished(&d, &dave, &run).await["status"], "completed");
        let mut today = Value::Null;
        for _ in 0..50 {
            let usage = call(&d, "GET", "/api/tenant/usage", &dave, None)
                .await
                .json();
            today = usage["billing"]["today"].clone();
            if today["workflow_runs"] == 1 {
                assert_eq!(today["api_calls"], usage["api_calls_today"]);
                assert_eq!(usage["billing"]["plan"], "enterprise");
                let delivery = &usage["billing"]["delivery"];
                assert_eq!(delivery["delivered_through"], yesterday.to_string());
                assert_eq!(delivery["attempts"], 0);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(today["workflow_runs"], 1, "{today}");
        assert!(
            today["workflow_run_ms"].as_u64().unwrap() >= 1,
            "rounded up"
        );

        // globex's day stays pending, its failure on record; carol's
        // requests are answered as ever.
        let carol = login(&d, "carol", "Carol-Demo-Passw0rd!", None).await;
        let usage = call(&d, "GET", "/api/tenant/usage", &carol, None).await;
        assert_eq!(usage.status, 200);
        let delivery = &usage.json()["billing"]["delivery"];
        assert_eq!(delivery["delivered_through"], Value::Null, "{delivery}");
        assert!(delivery["attempts"].as_u64().unwrap() >= 1, "{delivery}");
        assert_eq!(delivery["last_error"], "the receiver answered 503");
        assert!(delivery["next_attempt_at"].is_string());

        // Several rounds later acme's day was still sent once (the backoff
        // keeps globex at one attempt in these seconds).
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let got = got.lock().unwrap().clone();
        let count = |tenant: &str| {
            got.iter()
                .filter(|r| r.json()["tenant_id"] == tenant)
                .count()
        };
        assert_eq!(
            (count("acme"), count("initech"), count("globex")),
            (1, 1, 1)
        );
        d.stop().await;
    }
}
