//! The seed's business metrics on the reference deployment's real
//! activity: completed workflow runs count for their user's department and
//! record their SLA compliance (`/metrics` is process-wide: deltas only).

use super::support;
use super::{Demo, call, finished, login, order_workflow, session, start_run, temp_dir};

use std::time::Duration;

use kailash::GatewayBuilder;
use kailash::config::GatewayConfig;
use kailash_examples::business::{RUN_SLA, with_business_metrics};
use kailash_examples::demo::with_demo_routes;
use serde_json::json;
use support::{sample, start_gateway};

/// The demo as the binary builds it, with its SLA for a run set to `sla`.
async fn demo_with_business_metrics(sla: Duration) -> Demo {
    let config = GatewayConfig::from_toml_str(&super::demo_config_text(), "enterprise.toml")
        .expect("config");
    let data_dir = temp_dir();
    let builder = GatewayBuilder::from_config_with_backends(&config, &data_dir)
        .await
        .expect("backends");
    let access = builder.access_handle().expect("[access]").clone();
    let builder = with_demo_routes(builder).unwrap();
    let gateway = with_business_metrics(builder, &config, sla)
        .unwrap()
        .build()
        .expect("gateway");
    Demo {
        gw: start_gateway(gateway).await,
        data_dir,
        access,
    }
}

async fn scrape(d: &Demo) -> String {
    let r = support::get(d.gw.addr, "/metrics").await;
    assert_eq!(r.status, 200);
    r.text()
}

const ENGINEERING: &str = r#"workflows_completed_by_department{department="engineering"}"#;
const SALES: &str = r#"workflows_completed_by_department{department="sales"}"#;
const SLA_COUNT: &str = r#"sla_compliance_rate_count{workflow="all"}"#;
const SLA_MET: &str = r#"sla_compliance_rate_bucket{workflow="all",le="1"}"#;
const SLA_HALF: &str = r#"sla_compliance_rate_bucket{workflow="all",le="0.5"}"#;

#[tokio::test]
async fn completed_runs_count_for_their_department_and_their_sla() {
    let d = demo_with_business_metrics(RUN_SLA).await;
    let dave = login(&d, "dave", "Dave-Demo-Passw0rd!", None).await;
    let bob = login(&d, "bob", "Bob-Demo-Passw0rd!", None).await;
    let r = call(&d, "POST", "/api/workflows", &dave, Some(order_workflow())).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let wf = r.json()["id"].as_str().unwrap().to_owned();

    let before = scrape(&d).await;
    // dave (engineering) runs it twice, bob (sales) once.
    for (token, times) in [(&dave, 2), (&bob, 1)] {
        let sid = session(&d, token).await;
        for _ in 0..times {
            let r = start_run(&d, token, &sid, &wf, json!({"order": {"qty": 2}})).await;
            assert_eq!(r.status, 202, "{}", r.text());
            let run = r.json()["run_id"].as_str().unwrap().to_owned();
            assert_eq!(finished(&d, token, &run).await["status"], "completed");
        }
    }
    // A run refused before it starts (inputs that do not match) counts nowhere.
    let sid = session(&d, &dave).await;
    let r = start_run(&d, &dave, &sid, &wf, json!({"nope": 1})).await;
    assert!(r.status >= 400, "{}", r.text());

    let after = scrape(&d).await;
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(delta(ENGINEERING), 2.0, "{after}");
    assert_eq!(delta(SALES), 1.0, "{after}");
    // Three runs of a few milliseconds against a 5 s SLA: all compliant.
    assert_eq!(delta(SLA_COUNT), 3.0, "{after}");
    assert_eq!(delta(SLA_MET), 3.0, "{after}");
    assert_eq!(delta(SLA_HALF), 0.0, "{after}");
    assert!(
        after.contains("# TYPE sla_compliance_rate histogram"),
        "a real histogram"
    );
    d.stop().await;

    // Against an SLA no run can meet, compliance falls below one half.
    let d = demo_with_business_metrics(Duration::from_nanos(1)).await;
    let dave = login(&d, "dave", "Dave-Demo-Passw0rd!", None).await;
    let r = call(&d, "POST", "/api/workflows", &dave, Some(order_workflow())).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let wf = r.json()["id"].as_str().unwrap().to_owned();
    let before = scrape(&d).await;
    let sid = session(&d, &dave).await;
    let r = start_run(&d, &dave, &sid, &wf, json!({"order": {"qty": 1}})).await;
    let run = r.json()["run_id"].as_str().unwrap().to_owned();
    assert_eq!(finished(&d, &dave, &run).await["status"], "completed");
    let after = scrape(&d).await;
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(delta(SLA_HALF), 1.0, "{after}");
    assert_eq!(delta(ENGINEERING), 1.0, "{after}");
    d.stop().await;
}

#[test]
fn observing_runs_needs_the_runtime_from_the_config() {
    use kailash_examples::business::RunMetrics;
    let metrics = RunMetrics::new(&GatewayConfig::default(), RUN_SLA);
    let refused = GatewayBuilder::new().observe_runs(std::sync::Arc::new(metrics));
    assert!(
        matches!(refused, Err(kailash::GatewayError::Runtime(_))),
        "{refused:?}"
    );
}
