//! The gateway on Redis: limits shared exactly across instances, and the
//! documented behaviour when Redis goes away and comes back.
//!
//! Needs `KAILASH_TEST_REDIS_URL` (and, for the outage test, a `redis-server`
//! binary, which the test runs on a spare port and stops by PID).

#![cfg(feature = "redis")]

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use kailash::clock::SystemClock;
use kailash::rate_limit::FailMode;
use kailash::redis::{RedisOptions, RedisState};
use kailash::state::{RateQuota, SharedState};
use kailash::{Gateway, RateLimits};
use support::{get as http_get, start};

fn redis_url() -> Option<String> {
    let url = std::env::var("KAILASH_TEST_REDIS_URL").ok();
    if url.is_none() {
        eprintln!("skipped: KAILASH_TEST_REDIS_URL is not set");
    }
    url
}

fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("kailash-test-{nanos}-{}:", std::process::id())
}

async fn redis_state(url: &str, prefix: &str) -> SharedState {
    RedisState::connect(
        url,
        Arc::new(SystemClock),
        RedisOptions::default().with_key_prefix(prefix),
    )
    .await
    .expect("connect")
    .into_shared()
}

fn app() -> Router {
    Router::new().route("/hello", get(|| async { "hello" }))
}

#[tokio::test]
async fn per_ip_limit_is_exact_across_two_instances() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let limits = RateLimits {
        per_ip: Some(RateQuota::new(5, Duration::from_secs(3600), 5).unwrap()),
        ..RateLimits::default()
    };
    let a = start(
        fast_health(Gateway::builder())
            .routes(app())
            .rate_limits(limits)
            .state(redis_state(&url, &prefix).await),
    )
    .await;
    let b = start(
        fast_health(Gateway::builder())
            .routes(app())
            .rate_limits(limits)
            .state(redis_state(&url, &prefix).await),
    )
    .await;
    let mut allowed = 0;
    for i in 0..12 {
        let addr = if i % 2 == 0 { a.addr } else { b.addr };
        if http_get(addr, "/hello").await.status == 200 {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5, "one budget shared by both instances");
    let ready = http_get(a.addr, "/health/ready").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["checks"][0]["name"], "state");
    a.stop().await;
    b.stop().await;
}

/// A redis-server child process on a spare loopback port, stopped on drop.
struct TestRedis {
    port: u16,
    child: Option<Child>,
}

impl TestRedis {
    fn spawn(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let me = Self {
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(me);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls until `check` holds, for at most `limit`; returns whether it did.
/// Background health checks every 200 ms, flipping on one result, so
/// readiness follows Redis within a round.
fn fast_health(builder: kailash::GatewayBuilder) -> kailash::GatewayBuilder {
    builder
        .health_policy(kailash::health::HealthPolicy {
            interval: Duration::from_millis(200),
            failure_threshold: 1,
            recovery_threshold: 1,
        })
        .health_check_timeout(Duration::from_millis(200))
}

async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn redis_outage_fails_closed_when_asked_and_recovers_by_itself() {
    if redis_url().is_none() {
        return;
    }
    let port = spare_port();
    let Some(mut redis) = TestRedis::spawn(port) else {
        eprintln!("skipped: cannot run redis-server");
        return;
    };
    let limits = RateLimits {
        per_ip: Some(RateQuota::per_second(1000).unwrap()),
        fail_mode: FailMode::Closed,
        ..RateLimits::default()
    };
    let state = redis_state(&redis.url(), &unique_prefix()).await;
    let gw = start(
        fast_health(Gateway::builder())
            .routes(app())
            .rate_limits(limits)
            .state(state),
    )
    .await;
    assert_eq!(http_get(gw.addr, "/hello").await.status, 200);

    redis.stop();
    let refused = http_get(gw.addr, "/hello").await;
    let body = refused.assert_problem(503);
    assert!(body["detail"].as_str().unwrap().contains("rate limiting"));
    let addr = gw.addr;
    assert!(
        eventually(Duration::from_secs(15), || async move {
            let ready = http_get(addr, "/health/ready").await;
            ready.status == 503 && ready.json()["checks"][0]["name"] == "state"
        })
        .await,
        "not ready once the next round finds Redis down"
    );
    assert_eq!(
        http_get(gw.addr, "/health/live").await.status,
        200,
        "the process keeps serving"
    );

    let _redis = TestRedis::spawn(port).expect("redis restarts");
    assert!(
        eventually(Duration::from_secs(20), || async move {
            http_get(addr, "/hello").await.status == 200
        })
        .await,
        "requests pass again once Redis is back"
    );
    assert!(
        eventually(Duration::from_secs(15), || async move {
            http_get(addr, "/health/ready").await.status == 200
        })
        .await,
        "ready again at the next round"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_gateway_started_while_redis_is_down_serves_and_reports_not_ready() {
    if redis_url().is_none() {
        return;
    }
    let port = spare_port();
    let url = format!("redis://127.0.0.1:{port}");
    let limits = RateLimits {
        per_ip: Some(RateQuota::per_second(1000).unwrap()),
        ..RateLimits::default() // fail open
    };
    let gw = start(
        fast_health(Gateway::builder())
            .routes(app())
            .rate_limits(limits)
            .state(redis_state(&url, &unique_prefix()).await),
    )
    .await;
    assert_eq!(
        http_get(gw.addr, "/hello").await.status,
        200,
        "rate limits fail open by default"
    );
    assert_eq!(http_get(gw.addr, "/health/ready").await.status, 503);
    let Some(_redis) = TestRedis::spawn(port) else {
        eprintln!("skipped the recovery half: cannot run redis-server");
        gw.stop().await;
        return;
    };
    let addr = gw.addr;
    assert!(
        eventually(Duration::from_secs(20), || async move {
            http_get(addr, "/health/ready").await.status == 200
        })
        .await,
        "ready once Redis appears"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_quotas_are_exact_across_instances() {
    use kailash::tenancy::model::{Tenant, TenantSpec};
    use kailash::tenancy::quota::{QuotaDecision, Quotas};
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let spec: TenantSpec =
        serde_json::from_value(serde_json::json!({ "id": "acme", "max_api_calls_per_day": 25 }))
            .unwrap();
    let tenant = Arc::new(Tenant::try_from(spec).unwrap());
    let instances = [
        Quotas::new(redis_state(&url, &prefix).await),
        Quotas::new(redis_state(&url, &prefix).await),
    ];
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (quotas, tenant) = (instances[i % 2].clone(), tenant.clone());
        tasks.push(tokio::spawn(async move {
            quotas.charge_api_call(&tenant).await.unwrap()
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), QuotaDecision::Allowed { .. }) {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 25, "one daily budget, exact across both instances");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_limits_are_exact_across_instances() {
    use kailash::access::limits::{LimitError, Limits};
    use kailash::access::spec::AccessSpec;
    use kailash::access::{AccessControl, AccessPolicy};
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let spec: AccessSpec = serde_json::from_value(serde_json::json!({ "roles": [
        { "name": "data_scientist", "max_workflows": 20, "max_executions_per_hour": 30 }
    ] }))
    .unwrap();
    let access = AccessControl::new(AccessPolicy::load(&spec).await.unwrap());
    let instances = [
        Limits::new(access.clone(), redis_state(&url, &prefix).await),
        Limits::new(access.clone(), redis_state(&url, &prefix).await),
    ];
    let dave = kailash::Principal::builder("dave")
        .tenant(kailash::TenantId::new("acme").unwrap())
        .role("data_scientist")
        .build();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (limits, dave) = (instances[i % 2].clone(), dave.clone());
        tasks.push(tokio::spawn(async move {
            let workflow = limits.reserve_workflow(&dave, &format!("wf-{i}")).await;
            let execution = limits.charge_execution(&dave).await;
            (i, workflow, execution)
        }));
    }
    let (mut workflows, mut executions, mut owned) = (0, 0, None);
    for t in tasks {
        let (i, w, e) = t.await.unwrap();
        match w {
            Ok(()) => {
                workflows += 1;
                owned = Some(format!("wf-{i}"));
            }
            Err(LimitError::Exceeded {
                limit: "max_workflows",
                retry_after: None,
                ..
            }) => {}
            Err(other) => panic!("{other}"),
        }
        match e {
            Ok(_) => executions += 1,
            Err(LimitError::Exceeded {
                retry_after: Some(_),
                ..
            }) => {}
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(
        workflows, 20,
        "one max_workflows, exact across both instances"
    );
    assert_eq!(
        executions, 30,
        "one hourly budget, exact across both instances"
    );
    assert_eq!(instances[0].workflows_owned(&dave).await.unwrap(), 20);
    // A release on one instance frees a slot on the other. (Which 20 of
    // the 50 won the race varies from run to run: release one that did.)
    let owned = owned.expect("some reservation succeeded");
    assert!(
        instances[0]
            .release_workflow(dave.tenant(), "dave", &owned)
            .await
            .unwrap()
    );
    instances[1]
        .reserve_workflow(&dave, "wf-late")
        .await
        .unwrap();
}

/// Issue 11, item 5: revocation is instant across instances. Liveness is
/// read from Redis on every request (in the same round trip as the quota
/// and the rate limits), never from a per-instance cache.
#[tokio::test]
async fn a_session_revoked_on_one_instance_is_refused_at_once_on_another() {
    use support::demo::{delete_auth, demo_in, get_auth, login, post, temp_dir, tokens};
    let Some(url) = redis_url() else { return };
    let shared = [
        ("KAILASH_STATE__REDIS_URL", url),
        ("KAILASH_STATE__KEY_PREFIX", unique_prefix()),
    ];
    // One data directory (the signing keys) and one Redis: one deployment.
    let dir = temp_dir();
    let a = demo_in(&dir, &shared).await;
    let b = demo_in(&dir, &shared).await;

    // Log in on A, use the token on B; log out on A: B refuses the very
    // next request.
    let (token, _) = tokens(&login(&a, "bob", "Bob-Demo-Passw0rd!").await);
    assert_eq!(get_auth(&b, "/api/tenant/usage", &token).await.status, 200);
    assert_eq!(get_auth(&b, "/api/tenant/usage", &token).await.status, 200);
    let logout = post(&a, "/auth/logout", serde_json::json!({}), Some(&token)).await;
    assert!(logout.status < 300, "{}", logout.text());
    let refused = get_auth(&b, "/api/tenant/usage", &token).await;
    let body = refused.assert_problem(401);
    assert_eq!(body["detail"], "session revoked");
    assert_eq!(get_auth(&a, "/api/tenant/usage", &token).await.status, 401);

    // A session evicted on B (its owner deletes it from another session)
    // is refused on A at once.
    let (first, _) = tokens(&login(&a, "bob", "Bob-Demo-Passw0rd!").await);
    let (second, _) = tokens(&login(&b, "bob", "Bob-Demo-Passw0rd!").await);
    assert_eq!(get_auth(&a, "/api/tenant/usage", &first).await.status, 200);
    let sessions = get_auth(&b, "/auth/sessions", &second).await.json();
    let first_id = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        delete_auth(&b, &format!("/auth/sessions/{first_id}"), &second)
            .await
            .status,
        204
    );
    get_auth(&a, "/api/tenant/usage", &first)
        .await
        .assert_problem(401);
    assert_eq!(get_auth(&a, "/api/tenant/usage", &second).await.status, 200);
    a.stop().await;
    b.stop().await;
}

/// Issue 11, item 5: a tenant deactivated on one instance is refused on the
/// next request to another. The activation override is read from Redis in
/// the request's admission (with the quota), never cached per instance.
#[tokio::test]
async fn a_tenant_deactivated_on_one_instance_is_refused_at_once_on_another() {
    use http::Request;
    use kailash::Principal;
    use kailash::TenantId;
    use kailash::admission::AdmitLayer;
    use kailash::tenancy::layer::TenancyLayer;
    use kailash::tenancy::model::TenantSpec;
    use kailash::tenancy::quota::Quotas;
    use kailash::tenancy::registry::StaticTenantRegistry;
    use tower::{Layer, ServiceExt, service_fn};

    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let spec = || -> Vec<TenantSpec> {
        serde_json::from_value(serde_json::json!([{ "id": "acme", "max_api_calls_per_day": 100 }]))
            .unwrap()
    };
    let mut registries = Vec::new();
    let mut stacks = Vec::new();
    for _ in 0..2 {
        let state = redis_state(&url, &prefix).await;
        let registry = Arc::new(StaticTenantRegistry::new(spec(), state.clone()).unwrap());
        let stack = TenancyLayer::new(registry.clone())
            .quotas(Quotas::new(state.clone()))
            .deferred()
            .layer(
                AdmitLayer::new(state).layer(service_fn(|_req: Request<()>| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
                })),
            );
        registries.push(registry);
        stacks.push(stack);
    }
    let acme = TenantId::new("acme").unwrap();
    let request = || {
        let mut req = Request::get("/orders").body(()).unwrap();
        req.extensions_mut()
            .insert(Principal::builder("bob").tenant(acme.clone()).build());
        req
    };
    let status = |i: usize| {
        let svc = stacks[i].clone();
        let req = request();
        async move { svc.oneshot(req).await.unwrap().status().as_u16() }
    };
    assert_eq!((status(0).await, status(1).await), (200, 200));
    registries[0].set_active(&acme, false).await.unwrap();
    assert_eq!(
        status(1).await,
        403,
        "refused on the other instance at once"
    );
    assert_eq!(status(0).await, 403);
    registries[1].set_active(&acme, true).await.unwrap();
    assert_eq!((status(0).await, status(1).await), (200, 200));
}

/// Readiness shows a lost pub/sub connection (realtime subscribers on this
/// instance miss messages) until the subscriptions are re-established.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_a_lost_pubsub_connection_until_it_is_back() {
    use kailash::state::{Namespace, StateKey};
    const TOPIC: Namespace = Namespace::new("ready-topic");

    if redis_url().is_none() {
        return;
    }
    let port = spare_port();
    let Some(mut redis) = TestRedis::spawn(port) else {
        eprintln!("skipped: cannot run redis-server");
        return;
    };
    let state = redis_state(&redis.url(), &unique_prefix()).await;
    let gw = start(
        fast_health(Gateway::builder())
            .routes(app())
            .state(state.clone()),
    )
    .await;
    let _sub = state
        .pubsub
        .subscribe(&StateKey::global(TOPIC, "t"))
        .await
        .expect("subscribe");
    let pubsub_check = |report: &serde_json::Value| {
        report["checks"]
            .as_array()
            .and_then(|checks| checks.iter().find(|c| c["name"] == "pubsub"))
            .map(|c| c["status"].as_str().unwrap_or_default().to_owned())
    };
    let ready = http_get(gw.addr, "/health/ready").await;
    assert_eq!(ready.status, 200);
    assert_eq!(pubsub_check(&ready.json()).as_deref(), Some("pass"));

    redis.stop();
    let addr = gw.addr;
    assert!(
        eventually(Duration::from_secs(15), || async move {
            let ready = http_get(addr, "/health/ready").await;
            ready.status == 503 && pubsub_check(&ready.json()).as_deref() == Some("fail")
        })
        .await,
        "readiness shows the lost subscriptions"
    );

    let _redis = TestRedis::spawn(port).expect("redis restarts");
    assert!(
        eventually(Duration::from_secs(20), || async move {
            http_get(addr, "/health/ready").await.status == 200
        })
        .await,
        "ready again once the subscriptions are back"
    );
    gw.stop().await;
}

/// Issue 13: two gateway instances on one Redis act as one realtime
/// service. An event published on one reaches the right sockets on the
/// other (bob's, in its tenant) and only them (not carol's, in globex), and
/// a logout on one closes the session's socket on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_fans_out_and_revokes_across_two_instances() {
    use futures_util::StreamExt;
    use kailash::GatewayBuilder;
    use kailash::TenantId;
    use kailash::config::GatewayConfig;
    use kailash::realtime::event::Event;
    use support::demo::{demo_config_text, login, post, temp_dir, tokens};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    type Socket = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;
    async fn connect(addr: std::net::SocketAddr, token: &str) -> Socket {
        let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        tokio_tungstenite::connect_async(req)
            .await
            .expect("upgrade")
            .0
    }
    /// The next text frame as JSON (`None` after `wait` without one), or the close code.
    async fn next(ws: &mut Socket, wait: Duration) -> Option<Result<serde_json::Value, u16>> {
        loop {
            let msg = tokio::time::timeout(wait, ws.next()).await.ok()?;
            return Some(match msg {
                Some(Ok(Message::Text(t))) => Ok(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(frame))) => Err(frame.map_or(1005, |f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => Err(1006),
            });
        }
    }

    let Some(url) = redis_url() else { return };
    let vars = vec![
        ("KAILASH_STATE__REDIS_URL".to_owned(), url),
        ("KAILASH_STATE__KEY_PREFIX".to_owned(), unique_prefix()),
    ];
    // One data directory (the signing keys) and one Redis: one deployment.
    let dir = temp_dir();
    let mut instances = Vec::new();
    for _ in 0..2 {
        let config =
            GatewayConfig::from_toml_with_env(&demo_config_text(), "gateway.toml", vars.clone())
                .expect("config");
        let gateway = GatewayBuilder::from_config_with_backends(&config, &dir)
            .await
            .expect("backends")
            .build()
            .expect("gateway");
        let hub = gateway.realtime().cloned().expect("realtime");
        instances.push((support::start_gateway(gateway).await, hub));
    }
    let (a, hub_a) = &instances[0];
    let (b, _) = &instances[1];

    let (bob, _) = tokens(&login(a, "bob", "Bob-Demo-Passw0rd!").await);
    let (carol, _) = tokens(&login(a, "carol", "Carol-Demo-Passw0rd!").await);
    let mut bob_on_b = connect(b.addr, &bob).await;
    let mut carol_on_b = connect(b.addr, &carol).await;
    for ws in [&mut bob_on_b, &mut carol_on_b] {
        let welcome = next(ws, Duration::from_secs(5)).await.unwrap().unwrap();
        assert_eq!(welcome["type"], "welcome");
    }
    // B subscribes to the tenant's topic when its first socket arrives; give
    // the subscription a moment to be in place on Redis.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let event = Event::new(
        TenantId::new("acme").unwrap(),
        "workflows",
        "workflow.created",
    )
    .unwrap()
    .data(serde_json::json!({ "id": "wf-a" }));
    hub_a.send_to_tenant(&event).await.unwrap();
    let got = next(&mut bob_on_b, Duration::from_secs(5))
        .await
        .expect("bob's socket on B gets the event published on A")
        .unwrap();
    assert_eq!(
        (&got["event"], &got["data"]["id"]),
        (
            &serde_json::json!("workflow.created"),
            &serde_json::json!("wf-a")
        )
    );
    assert!(
        next(&mut carol_on_b, Duration::from_millis(500))
            .await
            .is_none(),
        "carol (globex) gets nothing of acme's"
    );

    // Logging out on A closes bob's socket on B (the session store's
    // revocation event, or B's once-a-second liveness sweep at the latest).
    let out = post(a, "/auth/logout", serde_json::json!({}), Some(&bob)).await;
    assert!(out.status < 300, "{}", out.text());
    assert_eq!(
        next(&mut bob_on_b, Duration::from_secs(3)).await,
        Some(Err(4001))
    );
    for (gw, _) in instances {
        gw.stop().await;
    }
}
