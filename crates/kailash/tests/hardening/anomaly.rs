//! Issue 19, item 6: anomaly detection through the gateway. Each signal —
//! bursts of login failures, access denials and requests, a login from a
//! new network, from a new country, impossible travel — is an audit event
//! `security.anomaly`, a count in `kailash_security_anomalies_total` and
//! an alert rule's signal; bad settings and a bad geo file stop the start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kailash::GatewayBuilder;
use kailash::alert::{Alerting, Phase};
use kailash::config::GatewayConfig;
use serde_json::{Value, json};

use crate::support::demo::*;
use crate::support::*;

const BOB: &str = "Bob-Demo-Passw0rd!";

fn geo_fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geo.txt")
}

/// One rule per anomaly signal, firing at once.
const RULES: &str = r#"[
  { name = "any", condition = "security_anomalies > 0", severity = "warning", duration = "0s" },
  { name = "burst", condition = "security_anomalies_burst > 0", severity = "warning", duration = "0s" },
  { name = "new_network", condition = "security_anomalies_new_network > 0", severity = "warning", duration = "0s" },
  { name = "new_country", condition = "security_anomalies_new_country > 0", severity = "warning", duration = "0s" },
  { name = "impossible_travel", condition = "security_anomalies_impossible_travel > 0", severity = "warning", duration = "0s" },
]"#;

struct Gw {
    running: Running,
    alerting: Alerting,
    dir: PathBuf,
}

/// The demo gateway behind a trusted proxy (127.0.0.1 says who the client
/// is in `X-Forwarded-For`), anomaly detection on with the geo fixture
/// and `settings` (`[security.anomaly]` keys), and the rules above.
async fn gateway(backend: &[(&'static str, String)], settings: &[(&str, &str)]) -> Gw {
    let dir = temp_dir();
    let mut vars: Vec<(String, String)> = backend
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    vars.push((
        "KAILASH_SERVER__TRUSTED_PROXIES".into(),
        r#"["127.0.0.1/32"]"#.into(),
    ));
    vars.push(("KAILASH_SECURITY__ANOMALY__ENABLED".into(), "true".into()));
    vars.push((
        "KAILASH_SECURITY__ANOMALY__GEOIP_FILE".into(),
        format!("{:?}", geo_fixture().display().to_string()),
    ));
    vars.push(("KAILASH_ALERTING__RULES".into(), RULES.into()));
    for (k, v) in settings {
        vars.push((
            format!("KAILASH_SECURITY__ANOMALY__{}", k.to_ascii_uppercase()),
            (*v).to_owned(),
        ));
    }
    let config = GatewayConfig::from_toml_with_env(&demo_config_text(), "gateway.toml", vars)
        .expect("config");
    let gateway = GatewayBuilder::from_config_with_backends(&config, &dir)
        .await
        .expect("backends")
        .build()
        .expect("gateway");
    let alerting = gateway.alerting().expect("rules").clone();
    Gw {
        running: start_gateway(gateway).await,
        alerting,
        dir,
    }
}

impl Gw {
    async fn send(
        &self,
        method: &str,
        path: &str,
        from: &str,
        token: Option<&str>,
        body: Value,
    ) -> Resp {
        let body = body.to_string();
        let auth = token
            .map(|t| format!("\nAuthorization: Bearer {t}"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\nHost: x\nX-Forwarded-For: {from}\nContent-Type: application/json\nContent-Length: {}{auth}",
            body.len()
        );
        request(self.running.addr, &head, body.as_bytes()).await
    }

    async fn login(&self, user: &str, password: &str, from: &str) -> Resp {
        self.send(
            "POST",
            "/auth/login",
            from,
            None,
            json!({ "username": user, "password": password }),
        )
        .await
    }

    /// The `security.anomaly` events, once there are at least `n` (the
    /// detector judges in the background, the file is written by another).
    async fn anomalies(&self, n: usize) -> Vec<Value> {
        anomalies_in(&self.dir, n).await
    }

    /// Which of the rules fire after an evaluation now.
    async fn firing(&self) -> Vec<String> {
        self.alerting.evaluate().await;
        let mut out: Vec<String> = self
            .alerting
            .states()
            .await
            .into_iter()
            .filter(|s| matches!(s.phase, Phase::Firing { .. }))
            .map(|s| s.rule)
            .collect();
        out.sort();
        out
    }

    async fn metric(&self, signal: &str, input: &str) -> f64 {
        let text = get(self.running.addr, "/metrics").await.text();
        text.lines()
            .filter(|l| {
                l.starts_with("kailash_security_anomalies_total{")
                    && l.contains(&format!("signal=\"{signal}\""))
                    && l.contains(&format!("input=\"{input}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn stop(self) {
        self.running.stop().await;
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

async fn anomalies_in(dir: &Path, n: usize) -> Vec<Value> {
    let path = dir.join("audit.jsonl");
    let mut found = Vec::new();
    for _ in 0..250 {
        found = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["a"] == "security.anomaly")
            .collect();
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} anomalies, wanted {n}: {found:?}", found.len());
}

fn reasons(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["why"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_burst_of_login_failures_is_signalled_per_ip_and_per_user() {
    for backend in backends() {
        let gw = gateway(&backend, &[("min_count", "3")]).await;
        let before = gw.metric("burst", "login_failures").await;
        for _ in 0..4 {
            let r = gw.login("bob", "Wrong-Passw0rd-123", "192.0.2.50").await;
            assert_eq!(r.status, 401, "{}", r.text());
        }
        let events = gw.anomalies(2).await;
        assert_eq!(
            reasons(&events),
            [
                "burst: login_failures per ip 4 > baseline 3.0",
                "burst: login_failures per user 4 > baseline 3.0"
            ]
        );
        for e in &events {
            assert_eq!(e["ip"], "192.0.2.50", "{e}");
            assert_eq!(e["d"], "failure", "{e}");
            assert_eq!(e["sev"], "warning", "{e}");
            assert_eq!(e["r"], "burst:login_failures", "{e}");
            assert_eq!(e["tn"], "acme", "{e}");
            assert!(e["u"].is_string(), "{e}");
        }
        // Once per window: a fifth failure adds nothing.
        gw.login("bob", "Wrong-Passw0rd-123", "192.0.2.50").await;
        gw.login("dave", "Dave-Demo-Passw0rd!", "192.0.2.51").await;
        assert!(gw.metric("burst", "login_failures").await >= before + 2.0);
        assert_eq!(gw.firing().await, ["any", "burst"]);
        assert_eq!(gw.anomalies(2).await.len(), 2);
        gw.stop().await;
    }
}

#[tokio::test]
async fn instances_sharing_redis_share_the_baseline_and_signal_a_burst_once() {
    let Some(redis) = backends().into_iter().nth(1) else {
        eprintln!("skipped: needs KAILASH_TEST_REDIS_URL and the `redis` feature");
        return;
    };
    let a = gateway(&redis, &[("min_count", "3")]).await;
    let b = gateway(&redis, &[("min_count", "3")]).await;
    // Two failures on each instance: four in the window, from one address.
    for gw in [&a, &b, &a, &b] {
        let r = gw.login("bob", "Wrong-Passw0rd-123", "192.0.2.90").await;
        assert_eq!(r.status, 401, "{}", r.text());
    }
    // A marker per instance: once its new-network anomaly is written, the
    // instance has judged everything it observed before.
    for (gw, user, password) in [
        (&a, "frank", "Frank-Demo-Passw0rd!"),
        (&b, "carol", "Carol-Demo-Passw0rd!"),
    ] {
        tokens(&gw.login(user, password, "192.0.2.91").await);
        tokens(&gw.login(user, password, "198.51.100.91").await);
    }
    let mut bursts = Vec::new();
    for gw in [&a, &b] {
        let mut events = Vec::new();
        for n in 1.. {
            events = gw.anomalies(n).await;
            if events.iter().any(|e| e["r"] == "new_network:logins") {
                break;
            }
        }
        bursts.extend(
            events
                .into_iter()
                .filter(|e| e["r"] == "burst:login_failures"),
        );
    }
    // Per IP and per user, once each, on whichever instance saw the 4th.
    let mut reasons = reasons(&bursts);
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "burst: login_failures per ip 4 > baseline 3.0",
            "burst: login_failures per user 4 > baseline 3.0"
        ]
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_burst_of_access_denials_is_signalled() {
    let gw = gateway(&[], &[("min_count", "3")]).await;
    let (bob, _) = tokens(&gw.login("bob", BOB, "192.0.2.60").await);
    for _ in 0..4 {
        let r = gw
            .send(
                "POST",
                "/auth/users/dave/disable",
                "192.0.2.60",
                Some(&bob),
                json!({}),
            )
            .await;
        r.assert_problem(403);
    }
    let events = gw.anomalies(2).await;
    assert_eq!(
        reasons(&events),
        [
            "burst: access_denials per ip 4 > baseline 3.0",
            "burst: access_denials per user 4 > baseline 3.0"
        ]
    );
    assert_eq!(events[0]["r"], "burst:access_denials");
    assert!(gw.metric("burst", "access_denials").await >= 2.0);
    assert_eq!(gw.firing().await, ["any", "burst"]);
    gw.stop().await;
}

#[tokio::test]
async fn a_burst_of_requests_is_signalled() {
    let gw = gateway(&[], &[("min_requests", "5")]).await;
    let (bob, _) = tokens(&gw.login("bob", BOB, "192.0.2.70").await);
    for _ in 0..6 {
        let r = gw
            .send(
                "GET",
                "/auth/sessions",
                "192.0.2.70",
                Some(&bob),
                Value::Null,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // The login and six reads from the address, six reads by bob: per IP
    // and per user, each once (the IP's count depends on how the
    // background task batched them).
    let events = gw.anomalies(2).await;
    assert_eq!(events.len(), 2, "{events:?}");
    let reasons = reasons(&events);
    assert!(
        reasons.contains(&"burst: requests per user 6 > baseline 5.0"),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("burst: requests per ip ")),
        "{reasons:?}"
    );
    assert!(gw.metric("burst", "requests").await >= 1.0);
    assert_eq!(gw.firing().await, ["any", "burst"]);
    gw.stop().await;
}

#[tokio::test]
async fn a_login_from_a_new_network_is_signalled_after_the_first() {
    for backend in backends() {
        let gw = gateway(&backend, &[]).await;
        // The first login only learns; the same /24 again is known.
        tokens(&gw.login("bob", BOB, "192.0.2.10").await);
        tokens(&gw.login("bob", BOB, "192.0.2.11").await);
        // Another /24 in the same country, 35 km away: only a new network.
        tokens(&gw.login("bob", BOB, "198.51.100.10").await);
        let events = gw.anomalies(1).await;
        assert_eq!(
            reasons(&events),
            ["new_network: first login from this /24 network"]
        );
        assert_eq!(events[0]["ip"], "198.51.100.10");
        assert_eq!(events[0]["r"], "new_network:logins");
        assert!(gw.metric("new_network", "logins").await >= 1.0);
        assert_eq!(gw.firing().await, ["any", "new_network"]);
        gw.stop().await;
    }
}

#[tokio::test]
async fn a_login_from_a_new_country_is_signalled() {
    // Country changes are not judged as travel here (no minimum time).
    let gw = gateway(&[], &[("min_country_change", r#""0s""#)]).await;
    tokens(&gw.login("dave", "Dave-Demo-Passw0rd!", "192.0.2.20").await);
    tokens(
        &gw.login("dave", "Dave-Demo-Passw0rd!", "2001:db8:5::1")
            .await,
    );
    let events = gw.anomalies(2).await;
    assert_eq!(
        reasons(&events),
        [
            "new_network: first login from this /48 network",
            "new_country: first login from DE"
        ]
    );
    assert!(gw.metric("new_country", "logins").await >= 1.0);
    assert_eq!(gw.firing().await, ["any", "new_country", "new_network"]);
    gw.stop().await;
}

#[tokio::test]
async fn impossible_travel_between_two_logins_is_signalled() {
    let gw = gateway(&[], &[]).await;
    tokens(&gw.login("dave", "Dave-Demo-Passw0rd!", "192.0.2.30").await);
    // Tokyo seconds after Amsterdam.
    tokens(
        &gw.login("dave", "Dave-Demo-Passw0rd!", "203.0.113.30")
            .await,
    );
    let events = gw.anomalies(3).await;
    let travel = events
        .iter()
        .find(|e| e["r"] == "impossible_travel:logins")
        .expect("travel");
    let why = travel["why"].as_str().unwrap();
    assert!(
        why.starts_with("impossible_travel: NL to JP, 9") && why.ends_with("(> 1000 km/h)"),
        "{why}"
    );
    assert_eq!(travel["ip"], "203.0.113.30");
    assert!(gw.metric("impossible_travel", "logins").await >= 1.0);
    assert_eq!(
        gw.firing().await,
        ["any", "impossible_travel", "new_country", "new_network"]
    );
    gw.stop().await;
}

#[tokio::test]
async fn anomaly_settings_that_cannot_work_stop_the_start_naming_the_key() {
    for (name, value, key) in [
        (
            "KAILASH_SECURITY__ANOMALY__ALPHA",
            "0.0",
            "security.anomaly.alpha",
        ),
        (
            "KAILASH_SECURITY__ANOMALY__WINDOW",
            r#""0s""#,
            "security.anomaly.window",
        ),
        (
            "KAILASH_SECURITY__ANOMALY__MIN_COUNT",
            "0",
            "security.anomaly.min_count",
        ),
        (
            "KAILASH_SECURITY__ANOMALY__MAX_TRAVEL_KMH",
            "-1.0",
            "security.anomaly.max_travel_kmh",
        ),
        (
            "KAILASH_SECURITY__ANOMALY__KNOWN_NETWORK_TTL",
            r#""1m""#,
            "security.anomaly.known_network_ttl",
        ),
        ("KAILASH_SECURITY__ANOMALY__THRESHOLD", "3", "threshold"),
    ] {
        let e = config_error(&[(name, value)]);
        assert!(e.contains(key), "{value}: {e}");
    }
}

#[tokio::test]
async fn a_malformed_geo_file_stops_the_start_naming_the_line() {
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("geo.txt"),
        "# ranges\n192.0.2.0/24 NL\n198.51.100.0/24 Netherlands\n",
    )
    .unwrap();
    let vars = vec![
        (
            "KAILASH_SECURITY__ANOMALY__ENABLED".to_owned(),
            "true".to_owned(),
        ),
        (
            "KAILASH_SECURITY__ANOMALY__GEOIP_FILE".to_owned(),
            r#""geo.txt""#.to_owned(),
        ),
    ];
    let config =
        GatewayConfig::from_toml_with_env(&demo_config_text(), "gateway.toml", vars).unwrap();
    let e = GatewayBuilder::from_config_with_backends(&config, &dir)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("security.anomaly.geoip_file") && e.contains("geo.txt: line 3:"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
