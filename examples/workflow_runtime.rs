//! A workflow run under the access-controlled runtime: `workflow:execute`
//! is decided before the run and `node:<type>:execute` before each node,
//! every decision audited. dave (analyst) runs the workflow to completion;
//! erin (intern, no node permission) gets a run that ends `refused`, naming
//! the node; mallory (no role) is refused before any run starts.
//!
//! ```text
//! cargo run -p kailash-examples --example workflow_runtime
//! ```

use std::sync::Arc;

use kailash::access::{AccessControl, AccessPolicy, spec::AccessSpec};
use kailash::audit::MemoryAuditSink;
use kailash::clock::SystemClock;
use kailash::runtime::runtime::{AccessControlledRuntime, RunRequest, RuntimeConfig};
use kailash::runtime::{NewWorkflow, NodeRegistry, WorkflowStore};
use kailash::state::SharedState;
use kailash::tenancy::model::{Tenant, TenantSpec};
use kailash::{Principal, TenantId};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec: AccessSpec = serde_json::from_value(json!({ "roles": [
        { "name": "analyst", "permissions": ["workflow:create", "workflow:execute", "node:transform:execute"] },
        { "name": "intern", "permissions": ["workflow:execute"] }
    ]}))?;
    let audit = Arc::new(MemoryAuditSink::new());
    let access = AccessControl::new(AccessPolicy::load(&spec).await?).audit(audit.clone());
    let state = SharedState::memory(Arc::new(SystemClock));
    let workflows = WorkflowStore::new(access.clone(), state.clone(), NodeRegistry::builtin());
    let runtime = AccessControlledRuntime::builder(
        RuntimeConfig::default(),
        access,
        state,
        workflows.clone(),
    )
    .audit(audit.clone())
    .build()
    .await?;

    let acme = Arc::new(Tenant::try_from(serde_json::from_value::<TenantSpec>(
        json!({ "id": "acme" }),
    )?)?);
    let user = |name: &str, role: &str| -> Result<Principal, Box<dyn std::error::Error>> {
        Ok(Principal::builder(name)
            .tenant(TenantId::new("acme")?)
            .role(role)
            .build())
    };
    let dave = user("dave", "analyst")?;
    let workflow: NewWorkflow = serde_json::from_value(json!({
        "name": "double", "inputs": ["n"],
        "nodes": [{ "id": "x2", "type": "transform", "config": { "expression": "sum([n, n])" } }],
        "connections": [{ "from": { "input": "n" }, "to": { "node": "x2", "input": "n" } }]
    }))?;
    let wf = workflows.create(&dave, &acme, workflow).await?;
    println!("workflow {} created by dave", wf.id);

    for who in [dave, user("erin", "intern")?, user("mallory", "visitor")?] {
        let name = who.subject().to_owned();
        let started = async {
            let session = runtime.open_session(&who, &acme).await?;
            let request = RunRequest {
                workflow_id: wf.id.clone(),
                inputs: json!({ "n": 21 }),
            };
            let run = runtime.start(&who, &acme, &session.id, request).await?;
            runtime.wait(&who, &acme, &run.run_id).await
        };
        match started.await {
            Ok(done) => {
                let outputs = done.outputs.map(|o| o.to_string()).unwrap_or_default();
                let reason = done.reason.unwrap_or_default();
                println!("{name}: {:?} {outputs}{reason}", done.status);
            }
            Err(refused) => println!("{name}: refused before the run: {refused}"),
        }
    }
    println!("{} audit events", audit.events().len());
    Ok(())
}
