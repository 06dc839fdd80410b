//! The reference deployment's health checks: the `[health]` section of
//! `config/enterprise.toml` applied, the runtime's failure rate reported.

#[path = "../../crates/kailash/tests/support/mod.rs"]
mod support;

use std::path::PathBuf;

use kailash::GatewayBuilder;
use kailash::config::GatewayConfig;
use kailash::signal::{SignalSource, SignalValue, Signals};
use kailash_examples::demo::with_demo_routes;
use support::{get, start_gateway, unique_suffix};

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
    gw.stop().await;
    std::fs::remove_dir_all(dir).ok();
}
