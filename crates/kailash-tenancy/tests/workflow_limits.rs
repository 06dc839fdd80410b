//! Workflow validation against the demo tenants' limits.

use kailash_tenancy::model::{Tenant, TenantConfig, TenantSpec};
use kailash_tenancy::workflow::{WorkflowNode, WorkflowViolation, validate_workflow};

fn tenant(json: &str) -> Tenant {
    Tenant::try_from(serde_json::from_str::<TenantSpec>(json).unwrap()).unwrap()
}

fn acme() -> Tenant {
    tenant(
        r#"{"id": "acme", "max_workflow_nodes": 50,
            "allowed_node_types": ["http_request", "transform", "llm", "database_query"]}"#,
    )
}

fn globex() -> Tenant {
    tenant(
        r#"{"id": "globex", "max_workflow_nodes": 10,
            "allowed_node_types": ["http_request", "transform"]}"#,
    )
}

fn nodes(types: &[&str]) -> Vec<WorkflowNode> {
    types
        .iter()
        .enumerate()
        .map(|(i, t)| WorkflowNode {
            id: format!("n{i}"),
            node_type: (*t).to_owned(),
        })
        .collect()
}

#[test]
fn globex_refuses_eleven_nodes_naming_the_limit() {
    let config = &globex().config;
    assert_eq!(
        validate_workflow(config, &nodes(&["transform"; 10])),
        Ok(())
    );
    let err = validate_workflow(config, &nodes(&["transform"; 11])).unwrap_err();
    assert_eq!(
        err,
        WorkflowViolation::TooManyNodes {
            limit: 10,
            count: 11
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("10") && msg.contains("11"), "{msg}");
}

#[test]
fn globex_refuses_llm_naming_the_node() {
    let wf: Vec<WorkflowNode> = serde_json::from_str(
        r#"[{"id": "fetch", "type": "http_request", "url": "https://x"},
            {"id": "summarise", "type": "llm"}]"#,
    )
    .unwrap();
    let err = validate_workflow(&globex().config, &wf).unwrap_err();
    assert_eq!(
        err,
        WorkflowViolation::DisallowedNodeType {
            node_id: "summarise".into(),
            node_type: "llm".into()
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("summarise") && msg.contains("llm"), "{msg}");
}

#[test]
fn acme_allows_llm() {
    let wf = nodes(&["http_request", "llm", "database_query", "transform"]);
    assert_eq!(validate_workflow(&acme().config, &wf), Ok(()));
}

#[test]
fn duplicate_ids_and_empty_workflows_are_refused() {
    let mut wf = nodes(&["transform", "transform"]);
    wf[1].id = "n0".into();
    let err = validate_workflow(&acme().config, &wf).unwrap_err();
    assert_eq!(
        err,
        WorkflowViolation::DuplicateNodeId {
            node_id: "n0".into()
        }
    );
    assert!(err.to_string().contains("n0"));
    assert_eq!(
        validate_workflow(&acme().config, &[]),
        Err(WorkflowViolation::Empty)
    );
}

#[test]
fn no_limits_means_anything_goes() {
    let config = TenantConfig::default();
    assert_eq!(validate_workflow(&config, &nodes(&["exotic"; 500])), Ok(()));
}
