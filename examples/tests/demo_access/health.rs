//! The reference deployment's health checks: the `[health]` section of
//! `config/enterprise.toml` applied, the runtime's failure rate reported.

use super::support;

use std::path::PathBuf;

use kailash::GatewayBuilder;
use kailash::config::GatewayConfig;
use kailash::health::HealthCheck;
use kailash::health_checks::ExecutionRateCheck;
use kailash::signal::{SignalSource, SignalValue, Signals};
use kailash_examples::demo::with_demo_routes;
use serde_json::{Value, json};
use support::{Resp, get, request, start_gateway, unique_suffix};

#[tokio::test]
async fn the_reference_deployment_reports_its_checks_and_signals() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/enterprise.toml"),
    )
    .expect("config");
    let vars = [(
        "KAILASH_HEALTH__DISK_THRESHOLD".to_owned(),
        "1.0".to_owned(),
    )];
    let config = GatewayConfig::from_toml_with_env(&text, "enterprise.toml", vars).expect("config");
    assert_eq!(config.health.check_interval.0.as_secs(), 30);
    let dir = std::env::temp_dir().join(format!("kailash-health-e2e-{}", unique_suffix()));
    let builder = GatewayBuilder::from_config_with_backends(&config, &dir)
        .await
        .expect("backends");
    let gateway = with_demo_routes(builder).unwrap().build().expect("gateway");
    let runner = gateway.health().expect("a health runner").clone();
    let alerting = gateway.alerting().expect("the seed's rules").clone();
    let gw = start_gateway(gateway).await;

    let ready = get(gw.addr, "/health/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    let report = ready.json();
    let rate = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "workflow_failure_rate")
        .expect("the runtime's check")
        .clone();
    assert_eq!(rate["required"], false);
    assert_eq!(rate["status"], "pass");
    assert_eq!(
        (rate["value"].as_f64(), rate["threshold"].as_f64()),
        (Some(0.0), Some(0.05))
    );

    // The alert rules' names: the seed's `workflow_failure_rate > 0.05`,
    // `memory_usage > 0.8`, `<check>_health == false`.
    let mut signals = Signals::default();
    runner.collect(&mut signals);
    assert_eq!(
        signals.get("workflow_failure_rate"),
        Some(SignalValue::Number(0.0))
    );
    assert_eq!(signals.get("state_health"), Some(SignalValue::Flag(true)));
    assert_eq!(signals.get("audit_health"), Some(SignalValue::Flag(true)));
    assert!(
        matches!(signals.get("memory_usage"), Some(SignalValue::Number(v)) if (0.0..=1.0).contains(&v))
    );

    // The seed's three alert rules are evaluated over those signals; a
    // healthy deployment has none pending or firing, and the single
    // instance holds the evaluation lease.
    alerting.wait_for_round(1).await;
    let states = alerting.states().await;
    let names: Vec<&str> = states.iter().map(|s| s.rule.as_str()).collect();
    assert_eq!(
        names,
        [
            "workflow_failure_rate_high",
            "state_backend_down",
            "memory_usage_high"
        ]
    );
    assert!(
        states
            .iter()
            .all(|s| s.phase == kailash::alert::Phase::Inactive || s.rule == "memory_usage_high"),
        "{states:?}"
    );
    assert!(alerting.is_leader().await);
    gw.stop().await;
    std::fs::remove_dir_all(dir).ok();
}

async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Resp {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\nHost: x\nAuthorization: Bearer {token}\nContent-Type: application/json\nContent-Length: {}",
        body.len()
    );
    request(addr, &head, body.as_bytes()).await
}

/// Polls a run until it has ended; its status.
async fn finished(addr: std::net::SocketAddr, token: &str, run: &str) -> String {
    for _ in 0..500 {
        let v = call(addr, "GET", &format!("/api/executions/{run}"), token, None)
            .await
            .json();
        match v["status"].as_str() {
            Some("pending" | "running") => {}
            Some(other) => return other.to_owned(),
            None => panic!("{v}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("run {run} did not end");
}

/// The failure ratio over an interval comes from the runtime's counts: one
/// run completed and one failed (`abs` of a string fails the node) since
/// the last sample is 0.5, above 0.05.
#[tokio::test]
async fn the_execution_rate_check_follows_real_runs() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/enterprise.toml"),
    )
    .expect("config");
    let config = GatewayConfig::from_toml_str(&text, "enterprise.toml").expect("config");
    let dir = std::env::temp_dir().join(format!("kailash-health-rate-{}", unique_suffix()));
    let builder = GatewayBuilder::from_config_with_backends(&config, &dir)
        .await
        .expect("backends");
    let gateway = with_demo_routes(builder).unwrap().build().expect("gateway");
    let check = ExecutionRateCheck::new(gateway.runtime().expect("[runtime]").clone(), 0.05);
    assert_eq!(
        check.sample(),
        (0.0, 0.0),
        "the first sample is the baseline"
    );
    let gw = start_gateway(gateway).await;

    let body = json!({ "username": "dave", "password": "Dave-Demo-Passw0rd!" }).to_string();
    let head = format!(
        "POST /auth/login HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: {}",
        body.len()
    );
    let login = request(gw.addr, &head, body.as_bytes()).await;
    assert_eq!(login.status, 200, "{}", login.text());
    let dave = login.json()["access_token"].as_str().unwrap().to_owned();
    let wf = json!({
        "name": "quantity",
        "inputs": ["order"],
        "nodes": [{"id": "qty", "type": "transform", "config": {"expression": "abs(o.qty)"}}],
        "connections": [{"from": {"input": "order"}, "to": {"node": "qty", "input": "o"}}],
        "outputs": {"qty": {"node": "qty", "output": "result"}}
    });
    let r = call(gw.addr, "POST", "/api/workflows", &dave, Some(wf)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let wf = r.json()["id"].as_str().unwrap().to_owned();
    let r = call(gw.addr, "POST", "/api/sessions", &dave, None).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let sid = r.json()["id"].as_str().unwrap().to_owned();
    let path = format!("/api/sessions/{sid}/executions");
    for (inputs, expected) in [
        (json!({"order": {"qty": 3}}), "completed"),
        (json!({"order": {"qty": "three"}}), "failed"),
    ] {
        let body = json!({ "workflow_id": wf, "inputs": inputs });
        let r = call(gw.addr, "POST", &path, &dave, Some(body)).await;
        assert_eq!(r.status, 202, "{}", r.text());
        let run = r.json()["run_id"].as_str().unwrap().to_owned();
        assert_eq!(finished(gw.addr, &dave, &run).await, expected);
    }

    let probe = check.probe().await;
    assert_eq!((probe.value, probe.threshold), (Some(0.5), Some(0.05)));
    assert!(probe.result.unwrap_err().contains("workflow failure rate"));
    // Nothing ended since: healthy again.
    assert_eq!(check.probe().await.result, Ok(()));
    gw.stop().await;
    std::fs::remove_dir_all(dir).ok();
}
