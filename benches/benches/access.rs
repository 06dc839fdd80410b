//! Cost of one access check through `RequirePermissionLayer`: a request with a
//! principal through the layer over a trivial service, on the demo policy
//! (DEMO.md), with and without auditing each decision; and the decision
//! alone. The side-by-side comparison with casbin and cedar on the same
//! policies is `benches/peers/benches/access_peers.rs`.
//!
//! ```text
//! cargo bench -p kailash-benches --bench access
//! ```

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use kailash::access::condition::Attributes;
use kailash::access::layer::RequirePermissionLayer;
use kailash::access::permission::Permission;
use kailash::access::spec::AccessSpec;
use kailash::access::{AccessControl, AccessPolicy, AccessRequest};
use kailash::audit::{AuditSink, MemoryAuditSink};
use kailash_core::{AttributeValue, Principal, TenantId};
use tokio::runtime::Runtime;
use tower::{Layer, ServiceExt, service_fn};

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn spec() -> AccessSpec {
    serde_json::from_str(include_str!("../fixtures/access-demo.json")).expect("demo spec")
}

fn dave() -> Principal {
    let location = AttributeValue::Map([("country".to_owned(), "GB".into())].into_iter().collect());
    Principal::builder("dave")
        .tenant(TenantId::new("acme").expect("tenant"))
        .role("data_scientist")
        .attribute("department", "engineering")
        .attribute("clearance", "confidential")
        .attribute("location", location)
        .build()
}

fn bench_access(c: &mut Criterion) {
    let rt = runtime();
    let policy = rt.block_on(AccessPolicy::load(&spec())).expect("policy");
    let access = AccessControl::new(policy);
    let principal = dave();
    let mut doc = Attributes::new();
    doc.insert("department".into(), "engineering".into());
    doc.insert("classification".into(), "confidential".into());
    let read = Permission::parse("data:read").expect("permission");
    let now = jiff::Timestamp::now();

    let mut group = c.benchmark_group("access");
    group.bench_function("decide/hybrid_data_read", |b| {
        b.iter(|| {
            let req = AccessRequest::new(&principal, &read, now).resource(&doc);
            black_box(access.decide(black_box(&req)).allowed)
        })
    });

    // A request through the layer; a fresh (bounded) memory sink per batch so
    // the held events do not grow without end.
    for audited in [false, true] {
        let name = if audited {
            "layer/workflow_execute_audited"
        } else {
            "layer/workflow_execute"
        };
        let sink: Arc<dyn AuditSink> = Arc::new(MemoryAuditSink::with_capacity(1024));
        let access = if audited {
            access.clone().audit(sink)
        } else {
            access.clone()
        };
        let svc = RequirePermissionLayer::new("workflow:execute")
            .access(access)
            .layer(service_fn(|_req: Request<()>| async {
                Ok::<_, Infallible>(Response::new(()))
            }));
        let principal = principal.clone();
        let check = svc.clone();
        let mut req = Request::new(());
        req.extensions_mut().insert(principal.clone());
        let res = rt.block_on(check.oneshot(req)).expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let svc = svc.clone();
                let mut req = Request::new(());
                req.extensions_mut().insert(principal.clone());
                async move { black_box(svc.oneshot(req).await.expect("infallible").status()) }
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench_access
}
criterion_main!(benches);
