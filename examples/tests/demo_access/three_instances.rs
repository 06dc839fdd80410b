//! Three `enterprise_gateway` processes on one Redis behave as one
//! (issue 21): the binary itself, started three times with one shared
//! signing key and its own data directory each, clients spread over all
//! three. Shown here, each on its own user so the parts stay independent:
//!
//! - a 100-per-minute limit admits 100 in total (plus what refills while
//!   the test runs), not 100 per instance;
//! - the 3-session cap holds across instances;
//! - a refresh token rotated on one is dead on the others (a retry within
//!   the grace gets the same new generation from any instance);
//! - a logout on one refuses the session on the others at once;
//! - a tenant's daily quota is exact;
//! - realtime events published on one (a workflow created, a run's
//!   progress) reach sockets on the others;
//! - an instance killed with SIGKILL has every audited request it answered
//!   in its trail, and its run in flight ends `abandoned`, not `running`.
//!
//! Needs `KAILASH_TEST_REDIS_URL`; skipped (and says so) without it.
//! `examples/three-instances.sh` runs the same set-up by hand and shows
//! the session cap, a logout and the rate limit with curl.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    ORDER_RUN_EVENTS, demo_config_text, next_frame, order_workflow, run_events, slow_service,
    socket_at, with_slow_integration,
};
use crate::support::{Resp, parse, unique_suffix};

/// One running `enterprise_gateway`; killed (SIGKILL) and reaped when
/// dropped.
struct Instance {
    child: Child,
    addr: SocketAddr,
    data_dir: PathBuf,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a spare port")
}

/// Starts the binary with `config` and `env`, and waits until
/// `/health/ready` answers 200.
async fn start(config: &Path, data_dir: PathBuf, env: &[(&str, String)]) -> Instance {
    std::fs::create_dir_all(&data_dir).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], spare_port()));
    let child = Command::new(env!("CARGO_BIN_EXE_enterprise_gateway"))
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--listen")
        .arg(addr.to_string())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start enterprise_gateway");
    let mut instance = Instance {
        child,
        addr,
        data_dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = instance.child.try_wait().unwrap() {
            panic!("enterprise_gateway on {addr} exited at start: {status}");
        }
        if let Ok(r) = send(addr, "GET", "/health/ready", None, None, "10.0.0.1").await
            && r.status == 200
        {
            return instance;
        }
        assert!(Instant::now() < deadline, "{addr} not ready within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One request from client address `ip` (the instances trust the
/// loopback proxy, so `X-Forwarded-For` is the client); `Err` when the
/// connection fails or ends without a whole response head.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    ip: &str,
) -> Result<Resp, String> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {ip}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(body.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| "no answer within 20 s".to_owned())?
        .map_err(|e| e.to_string())?;
    if !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err("the connection ended before a response head".to_owned());
    }
    Ok(parse(&raw))
}

/// A client address of its own for each request outside the rate-limit
/// part, so the per-IP limit (100 a minute) and the login throttle stay
/// out of the other parts.
fn next_client() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("10.5.{}.{}", n / 250 % 250, n % 250 + 1)
}

async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Resp {
    send(addr, method, path, Some(token), body, &next_client())
        .await
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// Logs in on `addr`; the whole token pair.
async fn login(addr: SocketAddr, user: &str) -> Value {
    let password = format!("{}-Demo-Passw0rd!", capitalised(user));
    let body = json!({ "username": user, "password": password });
    let r = send(
        addr,
        "POST",
        "/auth/login",
        None,
        Some(body),
        &next_client(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{user} on {addr}: {}", r.text());
    r.json()
}

fn capitalised(user: &str) -> String {
    let mut c = user.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn access(pair: &Value) -> String {
    pair["access_token"].as_str().unwrap().to_owned()
}

async fn refresh(addr: SocketAddr, refresh_token: &str) -> Resp {
    let body = json!({ "refresh_token": refresh_token });
    send(
        addr,
        "POST",
        "/auth/refresh",
        None,
        Some(body),
        &next_client(),
    )
    .await
    .unwrap()
}

/// The status of `GET /api/reports` for `token` on `addr`.
async fn reports(addr: SocketAddr, token: &str) -> u16 {
    call(addr, "GET", "/api/reports", token, None).await.status
}

fn audit_request_ids(dir: &Path) -> std::collections::HashSet<String> {
    let text = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["rid"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_behave_as_one() {
    let Ok(redis) = std::env::var("KAILASH_TEST_REDIS_URL") else {
        eprintln!("skipped: KAILASH_TEST_REDIS_URL is not set");
        return;
    };
    let root = std::env::temp_dir().join(format!("kailash-three-{}", unique_suffix()));
    std::fs::create_dir_all(&root).unwrap();
    // The demo config, with a `slow` integration for a run that is still
    // in flight when its instance is killed.
    let slow = slow_service().await;
    let config = root.join("gateway.toml");
    std::fs::write(&config, with_slow_integration(slow)).unwrap();
    assert!(demo_config_text().contains("concurrent_sessions = 3"));
    let mut env = vec![
        ("KAILASH_STATE__REDIS_URL", redis),
        (
            "KAILASH_STATE__KEY_PREFIX",
            format!("kailash-three-{}:", unique_suffix()),
        ),
        // The test client is the proxy: each part names its client.
        (
            "KAILASH_SERVER__TRUSTED_PROXIES",
            r#"["127.0.0.1/32"]"#.to_owned(),
        ),
        // The seed's 100-per-minute figure as the per-IP limit.
        ("KAILASH_RATE_LIMIT__PER_IP__RATE", "100".to_owned()),
        ("KAILASH_RATE_LIMIT__PER_IP__BURST", "100".to_owned()),
        // Out of the way of the quota part, which is about the quota.
        ("KAILASH_RATE_LIMIT__PER_USER__RATE", "100000".to_owned()),
        ("KAILASH_RATE_LIMIT__PER_USER__BURST", "100000".to_owned()),
        ("KAILASH_RATE_LIMIT__PER_TENANT__RATE", "100000".to_owned()),
        ("KAILASH_RATE_LIMIT__PER_TENANT__BURST", "100000".to_owned()),
        // The shortest lease, so a killed instance's run is seen
        // abandoned soon.
        ("KAILASH_RUNTIME__LEASE_SECS", "3".to_owned()),
    ];
    // The first instance generates the signing key; the others are given
    // the same file (docs/configuration.md, "Several instances").
    let first = start(&config, root.join("one"), &env).await;
    let key = first.data_dir.join("keys/signing-rs256.pem");
    assert!(key.is_file(), "{} was generated", key.display());
    env.push(("KAILASH_AUTH__SIGNING_KEY", key.display().to_string()));
    let second = start(&config, root.join("two"), &env).await;
    let third = start(&config, root.join("three"), &env).await;
    let all = [first.addr, second.addr, third.addr];

    rate_limit_is_shared(all).await;
    session_cap_holds_across_instances(all).await;
    refresh_rotation_is_shared(all).await;
    logout_ends_the_session_everywhere(all).await;
    daily_quota_is_exact(all).await;
    run_events_reach_every_instance(all).await;
    // Last: it kills the third instance.
    a_killed_instance_loses_nothing(third, [first.addr, second.addr]).await;

    drop((first, second));
    std::fs::remove_dir_all(&root).ok();
}

/// 100 per minute from one client, spread over the three instances.
async fn rate_limit_is_shared(all: [SocketAddr; 3]) {
    let bob = access(&login(all[0], "bob").await);
    let started = Instant::now();
    let (mut admitted, mut limited) = (0u32, 0u32);
    for i in 0..150 {
        let r = send(
            all[i % 3],
            "GET",
            "/api/reports",
            Some(&bob),
            None,
            "10.1.0.1",
        )
        .await
        .unwrap();
        match r.status {
            200 => admitted += 1,
            429 => {
                assert_eq!(r.json()["limit"], "ip", "{}", r.text());
                limited += 1;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    // GCRA refills 100 per minute: what came back while the test ran.
    let refilled = (started.elapsed().as_secs_f64() * 100.0 / 60.0).ceil() as u32;
    assert!(
        (100..=100 + refilled).contains(&admitted),
        "admitted {admitted} (refilled at most {refilled}); 300 would mean one limit per instance"
    );
    assert_eq!(admitted + limited, 150);
    eprintln!(
        "rate limit: {admitted} of 150 admitted over three instances (refill allowance {refilled})"
    );
}

/// Four logins of dave, on the three instances: the oldest session ends
/// on all of them, the newest three live on all of them.
async fn session_cap_holds_across_instances(all: [SocketAddr; 3]) {
    let mut tokens = Vec::new();
    for addr in [all[0], all[1], all[2], all[0]] {
        tokens.push(access(&login(addr, "dave").await));
    }
    for addr in all {
        let r = call(addr, "GET", "/api/workflows", &tokens[0], None).await;
        r.assert_problem(401);
        for token in &tokens[1..] {
            let r = call(addr, "GET", "/api/workflows", token, None).await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
        let sessions = call(addr, "GET", "/auth/sessions", &tokens[3], None).await;
        assert_eq!(sessions.json().as_array().map(Vec::len), Some(3));
    }
}

/// frank's refresh token rotated on the first instance.
async fn refresh_rotation_is_shared(all: [SocketAddr; 3]) {
    let pair = login(all[0], "frank").await;
    let old = pair["refresh_token"].as_str().unwrap().to_owned();
    let r = refresh(all[1], &old).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rotated = r.json();
    // A retry within the grace, on another instance: the same new
    // generation, nothing revoked.
    let again = refresh(all[2], &old).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["refresh_token"], rotated["refresh_token"]);
    // Past the grace (2 s) the old token is reuse, on any instance: the
    // family and the session end everywhere.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    refresh(all[0], &old).await.assert_problem(401);
    let newer = rotated["refresh_token"].as_str().unwrap();
    for addr in all {
        refresh(addr, newer).await.assert_problem(401);
        call(addr, "GET", "/api/workflows", &access(&rotated), None)
            .await
            .assert_problem(401);
    }
}

/// bob logs out on the third instance; the first and second refuse the
/// session on the very next request.
async fn logout_ends_the_session_everywhere(all: [SocketAddr; 3]) {
    let bob = access(&login(all[0], "bob").await);
    for addr in all {
        assert_eq!(reports(addr, &bob).await, 200);
    }
    let r = call(all[2], "POST", "/auth/logout", &bob, None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    for addr in all {
        assert_eq!(reports(addr, &bob).await, 401);
    }
}

/// globex's 1 000 API calls a day, spent over the three instances by
/// several clients at once: exactly the remainder is admitted.
async fn daily_quota_is_exact(all: [SocketAddr; 3]) {
    let carol = access(&login(all[0], "carol").await);
    let r = call(all[1], "GET", "/api/tenant/usage", &carol, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let usage = r.json();
    assert_eq!(usage["max_api_calls_per_day"], 1000, "{usage}");
    // The usage call counts itself.
    let used = usage["api_calls_today"].as_u64().unwrap();
    let remaining = 1000 - used;
    let attempts = remaining + 30;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..6u64 {
        let carol = carol.clone();
        tasks.spawn(async move {
            let (mut ok, mut over) = (0u64, 0u64);
            let mut i = worker;
            while i < attempts {
                // Many client addresses: the per-IP limit stays out of it.
                let ip = format!("10.2.{}.{}", i / 200, i % 200 + 1);
                let addr = all[(i % 3) as usize];
                let r = send(addr, "GET", "/api/workflows", Some(&carol), None, &ip)
                    .await
                    .unwrap();
                match r.status {
                    200 => ok += 1,
                    429 => {
                        assert_eq!(r.json()["quota"], "api_calls_per_day", "{}", r.text());
                        over += 1;
                    }
                    other => panic!("unexpected {other}: {}", r.text()),
                }
                i += 6;
            }
            (ok, over)
        });
    }
    let (mut ok, mut over) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let (o, v) = done.unwrap();
        ok += o;
        over += v;
    }
    assert_eq!(ok, remaining, "admitted exactly the quota's remainder");
    assert_eq!(over, 30);
    eprintln!(
        "quota: {ok} admitted of {attempts} for the {remaining} calls left, over three instances"
    );
}

/// frank's run, started on the first instance, streams its events to his
/// sockets on the second and third.
async fn run_events_reach_every_instance(all: [SocketAddr; 3]) {
    let frank = access(&login(all[0], "frank").await);
    let mut sockets = Vec::new();
    for addr in [all[1], all[2]] {
        sockets.push(socket_at(addr, &frank).await);
    }
    let r = call(
        all[0],
        "POST",
        "/api/workflows",
        &frank,
        Some(order_workflow()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let wf = r.json()["id"].as_str().unwrap().to_owned();
    let r = call(all[0], "POST", "/api/sessions", &frank, None).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let sid = r.json()["id"].as_str().unwrap().to_owned();
    let body = json!({"workflow_id": wf, "inputs": {"order": {"qty": 2}}});
    let path = format!("/api/sessions/{sid}/executions");
    let r = call(all[0], "POST", &path, &frank, Some(body)).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let run = r.json()["run_id"].as_str().unwrap().to_owned();
    for ws in &mut sockets {
        // The workflow's creation (channel `workflows`), then the run's
        // events (channel `executions`), all published on the first
        // instance.
        let frame = next_frame(ws).await.expect("the workflow's event");
        assert_eq!(
            (frame["event"].as_str(), frame["data"]["id"].as_str()),
            (Some("workflow.created"), Some(wf.as_str())),
            "{frame}"
        );
        assert_eq!(run_events(ws, &run).await, ORDER_RUN_EVENTS);
    }
}

/// dave's audited requests stream into the third instance while it is
/// killed with SIGKILL, and a run of his is in flight there: every request
/// it answered is in its audit file, and the run reads `abandoned` on the
/// survivors once its lease has lapsed.
async fn a_killed_instance_loses_nothing(mut victim: Instance, survivors: [SocketAddr; 2]) {
    let dave = access(&login(victim.addr, "dave").await);
    let r = call(
        victim.addr,
        "POST",
        "/api/workflows",
        &dave,
        Some(json!({ "name": "slow call", "nodes": [
            {"id": "call", "type": "http_request",
             "config": {"integration": "slow", "method": "GET", "path": "/slow"}}
        ]})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let wf = r.json()["id"].as_str().unwrap().to_owned();
    let sid = call(victim.addr, "POST", "/api/sessions", &dave, None)
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = call(
        victim.addr,
        "POST",
        &format!("/api/sessions/{sid}/executions"),
        &dave,
        Some(json!({"workflow_id": wf, "inputs": {}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let run = r.json()["run_id"].as_str().unwrap().to_owned();
    let running = call(
        survivors[0],
        "GET",
        &format!("/api/executions/{run}"),
        &dave,
        None,
    )
    .await
    .json();
    assert_eq!(running["status"], "running", "{running}");

    // Four clients ask for a document (an audited access decision each)
    // until the instance is gone.
    let addr = victim.addr;
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..4 {
        let dave = dave.clone();
        clients.spawn(async move {
            let mut answered = Vec::new();
            for i in 0.. {
                let ip = format!("10.3.{c}.{}", i % 250 + 1);
                let Ok(r) = send(
                    addr,
                    "GET",
                    "/api/data/acme-eng-conf",
                    Some(&dave),
                    None,
                    &ip,
                )
                .await
                else {
                    break;
                };
                assert_eq!(r.status, 200, "{}", r.text());
                answered.push(r.header("x-request-id").expect("a request id").to_owned());
            }
            answered
        });
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    victim.child.kill().expect("SIGKILL");
    victim.child.wait().unwrap();
    let mut answered = Vec::new();
    while let Some(done) = clients.join_next().await {
        answered.extend(done.unwrap());
    }
    assert!(
        answered.len() > 10,
        "the clients got answers before the kill"
    );
    let written = audit_request_ids(&victim.data_dir);
    let lost: Vec<_> = answered.iter().filter(|r| !written.contains(*r)).collect();
    assert!(
        lost.is_empty(),
        "answered but not in the audit file: {lost:?}"
    );
    eprintln!(
        "SIGKILL: {} answered requests, all {} in the killed instance's audit file",
        answered.len(),
        answered.len()
    );
    let killed = Instant::now();

    // The run's lease (3 s) lapses: it reads `abandoned` everywhere.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut statuses = Vec::new();
        for addr in survivors {
            let r = call(addr, "GET", &format!("/api/executions/{run}"), &dave, None).await;
            assert_eq!(r.status, 200, "{}", r.text());
            statuses.push(r.json()["status"].as_str().unwrap().to_owned());
        }
        if statuses.iter().all(|s| s == "abandoned") {
            eprintln!(
                "SIGKILL: the run in flight read `abandoned` {:.1} s after the kill",
                killed.elapsed().as_secs_f64()
            );
            break;
        }
        assert!(
            statuses.iter().all(|s| s == "running" || s == "abandoned"),
            "{statuses:?}"
        );
        assert!(Instant::now() < deadline, "still {statuses:?} after 30 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
