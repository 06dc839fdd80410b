//! The background health checks: an external API going down, readiness
//! from stored state, the runner stopping with the gateway.

use super::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::time::Duration;

use kailash::Gateway;
use kailash::health::{HealthCheck, from_fn};
use kailash::health_checks::ExternalApiCheck;
use support::{get, start_gateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A local HTTP/1.1 server answering `status`, checking the exact request
/// line and `Host` header of every request it gets.
async fn upstream(status: Arc<AtomicU16>) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let status = status.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                let text = String::from_utf8_lossy(&head).to_lowercase();
                let code = if text.starts_with("get /status?key=s3cret http/1.1\r\n")
                    && text.contains(&format!("\r\nhost: {addr}\r\n"))
                {
                    status.load(Ordering::SeqCst)
                } else {
                    400
                };
                let answer = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\n\r\n");
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn the_external_api_check_follows_a_server_that_fails_then_goes_down() {
    let status = Arc::new(AtomicU16::new(200));
    let (addr, server) = upstream(status.clone()).await;
    let url = format!("http://{addr}/status?key=s3cret");
    let check = ExternalApiCheck::new(&url, Duration::from_secs(5)).unwrap();
    assert_eq!(check.check().await, Ok(()));

    status.store(503, Ordering::SeqCst);
    assert_eq!(check.check().await, Err("status 503".to_owned()));

    server.abort();
    let _ = server.await;
    let error = check.check().await.unwrap_err();
    assert!(error.starts_with("connect: "), "{error}");
    assert!(!error.contains("s3cret") && !format!("{check:?}").contains("s3cret"));
}

#[tokio::test]
async fn a_silent_external_api_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts (the kernel's backlog) and never answers.
    let check =
        ExternalApiCheck::new(&format!("http://{addr}/"), Duration::from_millis(200)).unwrap();
    assert_eq!(
        check.check().await,
        Err("timed out after 200 ms".to_owned())
    );
    drop(listener);
}

/// The status is the check's answer: a body that stalls after it never
/// turns a healthy API into a timeout (nor a delivered alert into a retry:
/// the channels share this client).
#[tokio::test]
async fn a_status_followed_by_a_stalled_body_is_the_answer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nok")
                    .await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    let check =
        ExternalApiCheck::new(&format!("http://{addr}/"), Duration::from_millis(500)).unwrap();
    assert_eq!(check.check().await, Ok(()));
    server.abort();
}

/// `[outbound]` reaches the gateway's outbound callers: two external-API
/// checks draw from the one configured pool — bounded to one connection,
/// kept alive between checks — instead of a connection per check.
#[tokio::test]
async fn the_configured_pool_carries_every_external_api_check() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU32::new(0));
    let answered = Arc::new(AtomicU32::new(0));
    let (a, n) = (accepted.clone(), answered.clone());
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            a.fetch_add(1, Ordering::SeqCst);
            let n = n.clone();
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut buf = [0u8; 1024];
                loop {
                    while !pending.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => pending.extend_from_slice(&buf[..k]),
                        }
                    }
                    let end = pending.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                    pending.drain(..end + 4);
                    if socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    n.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    let config = kailash::config::GatewayConfig::from_toml_str(
        &format!(
            r#"
            [outbound]
            connection_pool_size = 1
            idle_timeout = "30s"
            [health]
            check_interval = "50ms"
            timeout = "50ms"
            external_apis = [
                {{ name = "payments", url = "http://{addr}/a" }},
                {{ name = "ledger", url = "http://{addr}/b" }},
            ]
            "#
        ),
        "test.toml",
    )
    .unwrap();
    let builder = kailash::GatewayBuilder::from_config(&config).unwrap();
    let pool = builder.outbound_pool_handle().clone();
    assert_eq!(pool.config().max(), 1);
    let running = start_gateway(builder.build().unwrap()).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while answered.load(Ordering::SeqCst) < 8 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the checks run");
    // Eight checks of two APIs, one connection.
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    let stats = pool.stats();
    assert_eq!(stats.opened, 1, "{stats:?}");
    assert!(stats.reused >= 7, "{stats:?}");
    // Operators see it: the pool's metrics are scraped with their help.
    let scrape = String::from_utf8(get(running.addr, "/metrics").await.body).unwrap();
    for line in [
        "# HELP kailash_outbound_requests_total",
        "kailash_outbound_requests_total{connection=\"reused\"}",
        "kailash_outbound_connections{state=\"idle\"}",
        "kailash_outbound_pool_max",
    ] {
        assert!(scrape.contains(line), "{line} missing from:\n{scrape}");
    }
    drop(running);
    server.abort();
}

/// Readiness answers from the stored state: probes run no check, an
/// optional check failing leaves the instance ready (`degraded`), and the
/// runner stops with the gateway.
#[tokio::test]
async fn readiness_comes_from_the_background_state_and_stops_with_the_gateway() {
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let gateway = Gateway::builder()
        .required_check(
            "database",
            from_fn(move || {
                r.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            }),
        )
        .optional_check(
            "payments_api",
            from_fn(|| async { Err("status 503".to_owned()) }),
        )
        .build()
        .unwrap();
    let runner = gateway.health().unwrap().clone();
    let gw = start_gateway(gateway).await;
    runner.wait_for_round(1).await;

    for _ in 0..20 {
        let ready = get(gw.addr, "/health/ready").await;
        assert_eq!(ready.status, 200);
        let report = ready.json();
        assert_eq!(report["status"], "degraded");
        let names: Vec<&str> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["database", "payments_api", "state", "pubsub"]);
        let api = &report["checks"][1];
        assert_eq!(api["status"], "fail");
        assert_eq!(api["error"], "status 503");
        assert_eq!(api["consecutive_failures"], 1);
    }
    // One round (the default interval is 30 s): twenty probes ran nothing.
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    gw.stop().await;
    assert!(!runner.start(), "stopped with the gateway");
}

/// With `[auth]` the gateway reports `active_sessions`: the live sessions
/// of every instance sharing the state, with the configured threshold,
/// counted in at a login and out at a logout (on memory, and on Redis
/// across two instances when `KAILASH_TEST_REDIS_URL` is set); alert rules
/// may name it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_sessions_are_reported_with_their_threshold() {
    use kailash::GatewayBuilder;
    use kailash::config::GatewayConfig;
    use serde_json::json;
    use support::demo::{backends, login, post, temp_dir, tokens};

    async fn instance(
        dir: &std::path::Path,
        overrides: &[(&str, String)],
    ) -> (support::Running, kailash::health::HealthRunner) {
        let mut vars: Vec<(String, String)> = overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        // A round every second, a failure or success decides at once, and
        // a second session is one too many.
        for (k, v) in [
            ("KAILASH_HEALTH__CHECK_INTERVAL", "1s"),
            ("KAILASH_HEALTH__TIMEOUT", "1s"),
            ("KAILASH_HEALTH__FAILURE_THRESHOLD", "1"),
            ("KAILASH_HEALTH__RECOVERY_THRESHOLD", "1"),
            ("KAILASH_HEALTH__MAX_ACTIVE_SESSIONS", "1"),
        ] {
            vars.push((k.to_owned(), v.to_owned()));
        }
        // Alert rules may name the count (the build refuses unknown signals).
        let text = format!(
            "{}\n[[alerting.rules]]\nname = \"sessions\"\ncondition = \"active_sessions > 1\"\nseverity = \"warning\"\n",
            support::demo::demo_config_text()
        );
        let config =
            GatewayConfig::from_toml_with_env(&text, "gateway.toml", vars).expect("config");
        let gateway = GatewayBuilder::from_config_with_backends(&config, dir)
            .await
            .expect("backends")
            .build()
            .expect("gateway");
        let runner = gateway.health().unwrap().clone();
        (start_gateway(gateway).await, runner)
    }
    /// The `active_sessions` entry of the report after a round that started
    /// after this call (the one under way may have counted earlier).
    async fn reported(
        gw: &support::Running,
        runner: &kailash::health::HealthRunner,
    ) -> serde_json::Value {
        runner.wait_for_round(runner.rounds() + 2).await;
        let ready = get(gw.addr, "/health/ready").await;
        assert_eq!(
            ready.status,
            200,
            "never a readiness check: {}",
            ready.text()
        );
        let report = ready.json();
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "active_sessions")
            .unwrap_or_else(|| panic!("no active_sessions check: {report}"))
            .clone()
    }

    for overrides in backends() {
        let on_redis = !overrides.is_empty();
        let dir = temp_dir();
        let (a, runner_a) = instance(&dir, &overrides).await;
        // On Redis a second instance of the same deployment; on memory the
        // same one (its state is its own).
        let second = if on_redis {
            Some(instance(&dir, &overrides).await)
        } else {
            None
        };
        let (b, runner_b) = second
            .as_ref()
            .map_or((&a, &runner_a), |(gw, runner)| (gw, runner));

        let c = reported(&a, &runner_a).await;
        assert_eq!(c["required"], false);
        assert_eq!(
            (c["value"].as_f64(), c["threshold"].as_f64()),
            (Some(0.0), Some(1.0))
        );
        assert_eq!(c["status"], "pass");

        let (first, _) = tokens(&login(&a, "bob", "Bob-Demo-Passw0rd!").await);
        let c = reported(b, runner_b).await;
        assert_eq!(
            (c["value"].as_f64(), c["status"].as_str()),
            (Some(1.0), Some("pass")),
            "{c}"
        );

        let (second_token, _) = tokens(&login(b, "bob", "Bob-Demo-Passw0rd!").await);
        let c = reported(&a, &runner_a).await;
        assert_eq!(
            (c["value"].as_f64(), c["status"].as_str()),
            (Some(2.0), Some("fail")),
            "{c}"
        );
        assert_eq!(c["error"], "2 active sessions, above the threshold of 1");
        let ready = get(a.addr, "/health/ready").await;
        assert_eq!(ready.json()["status"], "degraded");

        let out = post(&a, "/auth/logout", json!({}), Some(&first)).await;
        assert!(out.status < 300, "{}", out.text());
        let c = reported(b, runner_b).await;
        assert_eq!(
            (c["value"].as_f64(), c["status"].as_str()),
            (Some(1.0), Some("pass")),
            "{c}"
        );
        let out = post(b, "/auth/logout", json!({}), Some(&second_token)).await;
        assert!(out.status < 300, "{}", out.text());
        let c = reported(&a, &runner_a).await;
        assert_eq!(c["value"].as_f64(), Some(0.0), "{c}");

        let metrics = get(a.addr, "/metrics").await.text();
        assert!(
            metrics.contains("kailash_sessions_active"),
            "the gauge is exported"
        );
        if let Some((gw, _)) = second {
            gw.stop().await;
        }
        a.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
