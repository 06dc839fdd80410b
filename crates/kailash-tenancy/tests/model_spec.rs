//! Tenant specs: the demo tenants parse, and validation errors name the field.

use std::time::Duration;

use kailash_tenancy::model::{BYTES_PER_GB, SpecError, Tenant, TenantSpec};

const DEMO: &str = r#"[
  {"id": "acme", "name": "Acme Corp", "active": true, "plan": "enterprise",
   "max_api_calls_per_day": 10000, "max_workflows_per_tenant": 100, "max_storage_gb": 10,
   "max_workflow_nodes": 50, "max_execution_time_secs": 300, "max_memory_mb": 2048,
   "allowed_node_types": ["http_request", "transform", "llm", "database_query"],
   "features": ["sso", "audit_export"], "allowed_integrations": ["slack"],
   "domains": ["api.acme.example"]},
  {"id": "globex", "name": "Globex", "active": true,
   "max_api_calls_per_day": 1000, "max_workflows_per_tenant": 20, "max_storage_gb": 1,
   "max_workflow_nodes": 10, "allowed_node_types": ["http_request", "transform"]},
  {"id": "initech", "name": "Initech", "active": false,
   "max_api_calls_per_day": 1000, "max_workflows_per_tenant": 20, "max_storage_gb": 1,
   "max_workflow_nodes": 10, "allowed_node_types": ["transform"]}
]"#;

fn demo() -> Vec<Tenant> {
    let specs: Vec<TenantSpec> = serde_json::from_str(DEMO).unwrap();
    specs
        .into_iter()
        .map(|s| Tenant::try_from(s).unwrap())
        .collect()
}

fn spec(json: &str) -> TenantSpec {
    serde_json::from_str(json).unwrap()
}

fn error_of(json: &str) -> SpecError {
    Tenant::try_from(spec(json)).unwrap_err()
}

#[test]
fn demo_tenants_parse() {
    let t = demo();
    let (acme, globex, initech) = (&t[0], &t[1], &t[2]);
    assert!(acme.active && globex.active && !initech.active);
    assert_eq!(acme.plan, "enterprise");
    assert_eq!(globex.plan, "standard");
    assert_eq!(acme.quotas.max_api_calls_per_day, Some(10_000));
    assert_eq!(acme.quotas.max_workflows, Some(100));
    assert_eq!(acme.quotas.max_storage_bytes, Some(10 * BYTES_PER_GB));
    assert_eq!(acme.config.max_workflow_nodes, Some(50));
    assert_eq!(
        acme.config.max_execution_time,
        Some(Duration::from_secs(300))
    );
    assert!(acme.config.allows_node_type("llm"));
    assert!(acme.config.has_feature("sso"));
    assert!(!acme.config.has_feature("beta"));
    assert!(acme.config.allows_integration("slack"));
    assert!(!globex.config.allows_integration("slack"));
    assert_eq!(acme.domains, ["api.acme.example"]);
    assert_eq!(globex.quotas.max_api_calls_per_day, Some(1000));
    assert_eq!(globex.quotas.max_workflows, Some(20));
    assert_eq!(globex.quotas.max_storage_bytes, Some(BYTES_PER_GB));
    assert_eq!(globex.config.max_workflow_nodes, Some(10));
    assert!(!globex.config.allows_node_type("llm"));
    assert!(initech.config.allows_node_type("transform"));
    assert!(!initech.config.allows_node_type("http_request"));
}

#[test]
fn defaults_apply() {
    let t = Tenant::try_from(spec(r#"{"id": "solo"}"#)).unwrap();
    assert!(t.active);
    assert_eq!(t.plan, "standard");
    assert_eq!(t.name, "solo");
    assert_eq!(t.quotas.max_api_calls_per_day, None);
    assert!(t.config.allows_node_type("anything"));
}

#[test]
fn fractional_storage_converts_to_bytes() {
    let t = Tenant::try_from(spec(r#"{"id": "a", "max_storage_gb": 0.5}"#)).unwrap();
    assert_eq!(t.quotas.max_storage_bytes, Some(BYTES_PER_GB / 2));
}

#[test]
fn negative_storage_names_the_field() {
    let e = error_of(r#"{"id": "acme", "max_storage_gb": -1}"#);
    assert_eq!(e.field, "max_storage_gb");
    let msg = e.to_string();
    assert!(
        msg.contains("max_storage_gb") && msg.contains("acme"),
        "{msg}"
    );
}

#[test]
fn huge_storage_names_the_field() {
    let e = error_of(r#"{"id": "acme", "max_storage_gb": 1e300}"#);
    assert_eq!(e.field, "max_storage_gb");
}

#[test]
fn non_finite_storage_names_the_field() {
    let mut s = spec(r#"{"id": "acme"}"#);
    s.max_storage_gb = Some(f64::NAN);
    assert_eq!(
        Tenant::try_from(s.clone()).unwrap_err().field,
        "max_storage_gb"
    );
    s.max_storage_gb = Some(f64::INFINITY);
    assert_eq!(Tenant::try_from(s).unwrap_err().field, "max_storage_gb");
}

#[test]
fn bad_domains_name_the_field() {
    for bad in [
        "API.acme.example",
        "api.acme.example:8443",
        "",
        "a..b",
        "-a.example",
        "a b.example",
        "example.",
    ] {
        let json = serde_json::json!({"id": "acme", "domains": [bad]}).to_string();
        let e = error_of(&json);
        assert_eq!(e.field, "domains", "{bad:?}");
        assert!(e.to_string().contains("domains"));
    }
    let e = error_of(r#"{"id": "acme", "domains": ["a.example", "a.example"]}"#);
    assert_eq!(e.field, "domains");
}

#[test]
fn bad_node_types_name_the_field() {
    for bad in ["", " ", "http request"] {
        let json =
            serde_json::json!({"id": "acme", "allowed_node_types": ["transform", bad]}).to_string();
        let e = error_of(&json);
        assert_eq!(e.field, "allowed_node_types", "{bad:?}");
        assert!(e.to_string().contains("entry 1"), "{e}");
    }
}

#[test]
fn bad_features_and_integrations_name_the_field() {
    assert_eq!(
        error_of(r#"{"id": "a", "features": [""]}"#).field,
        "features"
    );
    assert_eq!(
        error_of(r#"{"id": "a", "allowed_integrations": [""]}"#).field,
        "allowed_integrations"
    );
    assert_eq!(error_of(r#"{"id": "a", "plan": " "}"#).field, "plan");
    assert_eq!(error_of(r#"{"id": "a", "name": ""}"#).field, "name");
}

#[test]
fn unknown_fields_and_bad_ids_are_refused() {
    let e = serde_json::from_str::<TenantSpec>(r#"{"id": "a", "max_workflows": 3}"#).unwrap_err();
    assert!(e.to_string().contains("max_workflows"), "{e}");
    assert!(serde_json::from_str::<TenantSpec>(r#"{"id": "Acme"}"#).is_err());
    assert!(serde_json::from_str::<TenantSpec>(r#"{"name": "x"}"#).is_err());
}
