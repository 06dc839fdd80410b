//! Alerting end to end: `[alerting]` from a file, a health check going
//! down, the alert pending for its duration, then firing to local Slack
//! and PagerDuty receivers (checked on the wire) and to a real SMTP server
//! (aiosmtpd), then resolving; a receiver that is down retried and counted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use kailash::GatewayBuilder;
use kailash::config::GatewayConfig;
use kailash::health::from_fn;
use serde_json::Value;

use super::support::{self, get, sample, start_gateway, unique_suffix};

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Got {
    at: Instant,
    path: String,
    content_type: String,
    user_agent: String,
    body: Value,
}

type Log = Arc<Mutex<Vec<Got>>>;

/// An HTTP receiver answering `status` to every POST and keeping it.
async fn receiver(status: u16) -> (std::net::SocketAddr, Log) {
    async fn keep(
        State((log, status)): State<(Log, u16)>,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, &'static str) {
        let h = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        log.lock().unwrap().push(Got {
            at: Instant::now(),
            path: uri.path().to_owned(),
            content_type: h("content-type"),
            user_agent: h("user-agent"),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        (StatusCode::from_u16(status).unwrap(), "ok")
    }
    let log: Log = Arc::default();
    let app = Router::new()
        .fallback(axum::routing::post(keep))
        .with_state((log.clone(), status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, log)
}

/// A real SMTP server (aiosmtpd through `.ci/smtp/server.py`) when
/// `KAILASH_TEST_SMTP_PYTHON` names a Python that has it; under `CI=true`
/// its absence fails the test.
struct Smtp {
    port: u16,
    dir: PathBuf,
    _child: tokio::process::Child,
}

async fn smtp() -> Option<Smtp> {
    let Ok(python) = std::env::var("KAILASH_TEST_SMTP_PYTHON") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: KAILASH_TEST_SMTP_PYTHON must name a Python with aiosmtpd"
        );
        eprintln!("skipped the e-mail channel: KAILASH_TEST_SMTP_PYTHON is not set");
        return None;
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = std::env::temp_dir().join(format!("kailash-smtp-{}", unique_suffix()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/smtp/server.py");
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .arg(port.to_string())
        .arg(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start aiosmtpd");
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("aiosmtpd did not start in time")
        .unwrap();
    assert_eq!(ready.as_deref(), Some("ready"));
    Some(Smtp {
        port,
        dir,
        _child: child,
    })
}

impl Smtp {
    fn mails(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        names.sort_by_key(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u32>().ok())
        });
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_alert_fires_after_its_duration_and_resolves_on_every_channel() {
    let (slack_addr, slack) = receiver(200).await;
    let (pd_addr, pd) = receiver(202).await;
    let smtp = smtp().await;
    let dir = std::env::temp_dir().join(format!("kailash-alerting-{}", unique_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = |name: &str, value: &str| {
        let p = dir.join(name);
        // Trailing whitespace (a mounted secret's newline) is trimmed.
        std::fs::write(&p, format!("{value}\n")).unwrap();
        p.display().to_string()
    };
    let webhook = secret(
        "slack",
        &format!("http://{slack_addr}/services/T0KAILASH/B0ALERTS/wh7Tok3nQz9"),
    );
    let routing = secret("pd", "pd5Rk3yWq81");
    let down = secret("down", "http://127.0.0.1:1/hook");
    let mut toml = format!(
        r#"
[gateway]
title = "alert-test"

[health]
check_interval = "1s"
timeout = "500ms"
failure_threshold = 1
recovery_threshold = 1

[alerting]
interval = "1s"
repeat_interval = "1h"
attempts = 2

[[alerting.rules]]
name = "payments_down"
condition = "payments_api_health == false"
duration = "2s"
severity = "critical"
summary = "Payments API unreachable"

[[alerting.rules]]
name = "payments_info"
condition = "payments_api_health == false"
severity = "info"

[[alerting.channels]]
name = "slack"
type = "slack"
severity_levels = ["warning", "critical"]
webhook_url_file = "{webhook}"

[[alerting.channels]]
name = "pagerduty"
type = "pagerduty"
severity_levels = ["critical"]
routing_key_file = "{routing}"
endpoint = "http://{pd_addr}/v2/enqueue"

[[alerting.channels]]
name = "down"
type = "slack"
severity_levels = ["critical"]
webhook_url_file = "{down}"
timeout = "1s"
"#
    );
    if let Some(smtp) = &smtp {
        toml.push_str(&format!(
            r#"
[[alerting.channels]]
name = "email"
type = "email"
severity_levels = ["info", "critical"]
host = "127.0.0.1"
port = {}
security = "none"
from = "Kailash Alerts <alerts@example.com>"
to = ["oncall@example.com", "ops@example.com"]
"#,
            smtp.port
        ));
    }
    let config = GatewayConfig::from_toml_str(&toml, "alerting.toml").unwrap();
    let up = Arc::new(AtomicBool::new(true));
    let u = up.clone();
    let gateway = GatewayBuilder::from_config(&config)
        .unwrap()
        .optional_check(
            "payments_api",
            from_fn(move || {
                let ok = u.load(Ordering::SeqCst);
                async move {
                    if ok {
                        Ok(())
                    } else {
                        Err("HTTP 503".to_owned())
                    }
                }
            }),
        )
        .build()
        .unwrap();
    let alerting = gateway.alerting().expect("rules configured").clone();
    let gw = start_gateway(gateway).await;
    let before = get(gw.addr, "/metrics").await.text();

    // Healthy: a few rounds, nothing sent.
    alerting.wait_for_round(2).await;
    assert!(slack.lock().unwrap().is_empty() && pd.lock().unwrap().is_empty());

    up.store(false, Ordering::SeqCst);
    let went_down = Instant::now();
    wait_for("the firing notifications", || {
        !slack.lock().unwrap().is_empty() && !pd.lock().unwrap().is_empty()
    })
    .await;
    // Requests are served while a receiver is down.
    assert_eq!(get(gw.addr, "/health/live").await.status, 200);

    let s = slack.lock().unwrap()[0].clone();
    assert!(
        s.at.duration_since(went_down) >= Duration::from_secs(2),
        "pending for its duration first"
    );
    assert_eq!(s.path, "/services/T0KAILASH/B0ALERTS/wh7Tok3nQz9");
    assert_eq!(
        (s.content_type.as_str(), s.user_agent.as_str()),
        ("application/json", "kailash-alerting")
    );
    let text = s.body["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "alert-test: 1 firing\n[FIRING] payments_down (critical): Payments API unreachable"
        ),
        "{text}"
    );
    assert_eq!(s.body["blocks"][0]["type"], "header");
    let section = s.body["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(
        section.contains("*FIRING* `payments_down` (critical)"),
        "{section}"
    );
    assert!(
        section.contains("`payments_api_health == false` is false"),
        "{section}"
    );

    let p = pd.lock().unwrap()[0].clone();
    assert_eq!(p.path, "/v2/enqueue");
    assert_eq!(p.content_type, "application/json");
    assert_eq!(p.body["routing_key"], "pd5Rk3yWq81");
    assert_eq!(p.body["event_action"], "trigger");
    assert_eq!(p.body["dedup_key"], "kailash/payments_down");
    let payload = &p.body["payload"];
    assert_eq!(
        payload["summary"],
        "payments_down: Payments API unreachable"
    );
    assert_eq!(
        (payload["source"].as_str(), payload["severity"].as_str()),
        (Some("alert-test"), Some("critical"))
    );
    assert_eq!(payload["component"], "payments_down");
    assert_eq!(
        payload["custom_details"]["condition"],
        "payments_api_health == false"
    );
    assert_eq!(payload["custom_details"]["value"], "false");
    let ts: jiff::Timestamp = payload["timestamp"].as_str().unwrap().parse().unwrap();
    assert!(ts.as_second() > 1_700_000_000);

    // Back up: resolved everywhere, firing sent only once (no repeat
    // within the hour).
    up.store(true, Ordering::SeqCst);
    wait_for("the resolutions", || {
        slack.lock().unwrap().len() >= 2 && pd.lock().unwrap().len() >= 2
    })
    .await;
    let s = slack.lock().unwrap()[1].clone();
    assert!(
        s.body["text"]
            .as_str()
            .unwrap()
            .starts_with("alert-test: 1 resolved\n[RESOLVED] payments_down"),
        "{}",
        s.body
    );
    let p = pd.lock().unwrap()[1].clone();
    let keys: Vec<&String> = p.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["dedup_key", "event_action", "routing_key"]);
    assert_eq!(
        (
            p.body["event_action"].as_str(),
            p.body["dedup_key"].as_str()
        ),
        (Some("resolve"), Some("kailash/payments_down"))
    );

    if let Some(smtp) = &smtp {
        wait_for("three mails", || smtp.mails().len() >= 3).await;
        let mails = smtp.mails();
        // The info rule fires at once, the critical one after its
        // duration; both resolve in one round: one mail.
        assert!(mails[0].starts_with("MAIL FROM: alerts@example.com\nRCPT TO: oncall@example.com\nRCPT TO: ops@example.com\n\n"), "{}", mails[0]);
        assert!(
            mails[0].contains("Subject: [alert-test] FIRING payments_info"),
            "{}",
            mails[0]
        );
        assert!(
            mails[0].contains("rule:      payments_info"),
            "{}",
            mails[0]
        );
        assert!(
            mails[1].contains("Subject: [alert-test] FIRING payments_down"),
            "{}",
            mails[1]
        );
        assert!(
            mails[2].contains("Subject: [alert-test] RESOLVED payments_down, payments_info"),
            "{}",
            mails[2]
        );
        assert!(
            mails[2].contains("Content-Type: text/plain"),
            "{}",
            mails[2]
        );
    }

    // The receiver that is down: tried twice (1 s apart), counted, logged.
    let scrape = || async { get(gw.addr, "/metrics").await.text() };
    let mut after = scrape().await;
    let failed = r#"kailash_alert_notifications_total{channel="down",outcome="failed"}"#;
    for _ in 0..100 {
        if sample(&after, failed) - sample(&before, failed) >= 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = scrape().await;
    }
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        moved(failed),
        2.0,
        "firing and resolved both failed:\n{after}"
    );
    assert_eq!(
        moved(r#"kailash_alert_notifications_total{channel="down",outcome="retried"}"#),
        2.0
    );
    assert_eq!(
        moved(r#"kailash_alert_notifications_total{channel="slack",outcome="sent"}"#),
        2.0
    );
    assert_eq!(
        moved(r#"kailash_alert_notifications_total{channel="pagerduty",outcome="sent"}"#),
        2.0
    );
    assert_eq!(
        sample(&after, r#"kailash_alert_firing{rule="payments_down"}"#),
        0.0
    );
    assert_eq!(sample(&after, "kailash_alert_leader"), 1.0);
    // Secrets appear nowhere in what the gateway exposes.
    assert!(!after.contains("wh7Tok3nQz9") && !after.contains("pd5Rk3yWq81"));
    assert_eq!(
        slack.lock().unwrap().len(),
        2,
        "no repeats within the repeat interval"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_rule_over_a_signal_nobody_reports_or_a_missing_secret_stops_the_start() {
    let config = |extra: &str| {
        GatewayConfig::from_toml_str(
            &format!(
                "[[alerting.rules]]\nname = \"db\"\ncondition = \"database_health == false\"\nseverity = \"critical\"\n{extra}"
            ),
            "a.toml",
        )
        .unwrap()
    };
    let e = GatewayBuilder::from_config(&config(""))
        .unwrap()
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no source reports the signal `database_health`"),
        "{e}"
    );
    assert!(
        e.contains("state_health"),
        "the known signals are listed: {e}"
    );
    // Declared by the application: accepted.
    let ok = GatewayBuilder::from_config(&config(""))
        .unwrap()
        .alert_signals(
            &["database_health"],
            |out: &mut kailash::signal::Signals| out.flag("database_health", true),
        )
        .build();
    assert!(ok.is_ok());

    let missing = config(
        "[[alerting.channels]]\nname = \"pd\"\ntype = \"pagerduty\"\nrouting_key_file = \"/nonexistent/kailash-pd-key\"\n",
    );
    let e = GatewayBuilder::from_config(&missing)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "alerting.channels[0] (pd): routing_key: cannot read /nonexistent/kailash-pd-key"
        ),
        "{e}"
    );
    let _ = support::unique_suffix();
}
