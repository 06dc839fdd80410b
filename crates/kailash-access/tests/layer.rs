//! `RequirePermissionLayer` over a tower service: statuses, problem bodies,
//! audit entries, the deferred resource check and the unboxed fast path.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use kailash_access::layer::{PendingResourceCheck, RequirePermissionLayer};
use kailash_access::spec::AccessSpec;
use kailash_access::{AccessControl, AccessPolicy};
use kailash_core::audit::{AuditDecision, AuditSink, MemoryAuditSink};
use kailash_core::{AttributeValue, Principal, TenantId};
use tower::{Layer, Service, ServiceExt, service_fn};

async fn access(audit: Arc<dyn AuditSink>) -> AccessControl {
    let spec: AccessSpec = serde_json::from_str(include_str!("fixtures/demo.json")).unwrap();
    AccessControl::new(AccessPolicy::load(&spec).await.unwrap()).audit(audit)
}

fn request(principal: Option<Principal>) -> Request<String> {
    let mut req = Request::new(String::new());
    if let Some(p) = principal {
        req.extensions_mut().insert(p);
    }
    req
}

fn user(name: &str, role: &str, country: &str) -> Principal {
    let location = AttributeValue::Map(
        [("country".to_owned(), country.into())]
            .into_iter()
            .collect(),
    );
    Principal::builder(name)
        .tenant(TenantId::new("acme").unwrap())
        .role(role)
        .attribute("department", "engineering")
        .attribute("clearance", "confidential")
        .attribute("location", location)
        .build()
}

/// Echoes whether a pending resource check reached the handler.
fn handler() -> impl Service<
    Request<String>,
    Response = Response<String>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response<String>, Infallible>> + Send,
> + Clone
+ Send {
    service_fn(|req: Request<String>| async move {
        let pending = req
            .extensions()
            .get::<PendingResourceCheck>()
            .map(|p| p.policies.join(","))
            .unwrap_or_default();
        Ok::<_, Infallible>(Response::new(format!("ok {pending}")))
    })
}

async fn body(res: Response<impl http_body::Body<Error = impl std::fmt::Debug>>) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn allows_denies_and_audits_each_decision() {
    let audit = Arc::new(MemoryAuditSink::new());
    let access = access(audit.clone()).await;
    let svc = RequirePermissionLayer::new("workflow:create")
        .access(access)
        .layer(handler());

    let res = svc
        .clone()
        .oneshot(request(Some(user("dave", "data_scientist", "GB"))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let res = svc
        .clone()
        .oneshot(request(Some(user("bob", "business_user", "CA"))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()[http::header::CONTENT_TYPE],
        "application/problem+json"
    );
    let problem: serde_json::Value = serde_json::from_str(&body(res).await).unwrap();
    assert_eq!(problem["status"], 403);
    assert_eq!(problem["permission"], "workflow:create");
    assert!(
        !problem.to_string().contains("role"),
        "the rule stays in the audit trail"
    );

    let events = audit.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].decision, AuditDecision::Allow);
    assert_eq!(
        events[0].reason.as_deref(),
        Some("role `data_scientist` grants `workflow:create`")
    );
    assert_eq!(events[1].decision, AuditDecision::Deny);
    assert_eq!(events[1].actor.as_deref(), Some("bob"));
    assert_eq!(
        events[1].reason.as_deref(),
        Some("no role grants `workflow:create`")
    );
}

#[tokio::test]
async fn no_principal_is_401_and_no_access_control_is_500() {
    let audit = Arc::new(MemoryAuditSink::new());
    let svc = RequirePermissionLayer::new("report:view")
        .access(access(audit).await)
        .layer(handler());
    let res = svc.oneshot(request(None)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key(http::header::WWW_AUTHENTICATE));

    // Neither set on the layer nor in the request: refuse, never pass.
    let bare = RequirePermissionLayer::new("report:view").layer(handler());
    let res = bare
        .oneshot(request(Some(user("bob", "business_user", "CA"))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn the_access_control_may_come_from_the_request() {
    let access = access(Arc::new(MemoryAuditSink::new())).await;
    let svc = RequirePermissionLayer::new("report:view").layer(handler());
    let mut req = request(Some(user("bob", "business_user", "CA")));
    req.extensions_mut().insert(access);
    assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn resource_conditions_deny_unless_deferred_to_the_handler() {
    let audit = Arc::new(MemoryAuditSink::new());
    let access = access(audit.clone()).await;
    let strict = RequirePermissionLayer::new("data:read")
        .access(access.clone())
        .layer(handler());
    let res = strict
        .oneshot(request(Some(user("dave", "data_scientist", "GB"))))
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "no resource: data_access cannot hold"
    );

    let deferred = RequirePermissionLayer::new("data:read")
        .access(access)
        .defer_resource()
        .layer(handler());
    let res = deferred
        .clone()
        .oneshot(request(Some(user("dave", "data_scientist", "GB"))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(res).await, "ok data_access");
    // Geography is decided at the route.
    let res = deferred
        .oneshot(request(Some(user("frank", "data_scientist", "FR"))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let last = audit.events().pop().unwrap();
    assert_eq!(
        last.reason.as_deref(),
        Some("policy `geo_restriction` not satisfied")
    );
}

#[tokio::test]
async fn a_sink_that_keeps_up_leaves_the_request_unboxed() {
    let access = access(Arc::new(MemoryAuditSink::new())).await;
    let mut svc = RequirePermissionLayer::new("report:view")
        .access(access)
        .layer(handler());
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    let fut = svc.call(request(Some(user("bob", "business_user", "CA"))));
    assert!(fut.as_guard().is_some_and(|g| g.is_pass()));
    assert_eq!(fut.await.unwrap().status(), StatusCode::OK);
}

/// A sink that never accepts without waiting.
struct Slow(MemoryAuditSink);

#[async_trait::async_trait]
impl AuditSink for Slow {
    async fn record(
        &self,
        event: kailash_core::audit::AuditEvent,
    ) -> Result<(), kailash_core::audit::AuditError> {
        self.0.record(event).await
    }
    async fn flush(&self) -> Result<(), kailash_core::audit::AuditError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_sink_that_must_be_awaited_still_gets_every_decision() {
    let slow = Arc::new(Slow(MemoryAuditSink::new()));
    let access = access(slow.clone()).await;
    let mut svc = RequirePermissionLayer::new("report:view")
        .access(access)
        .layer(handler());
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    let fut = svc.call(request(Some(user("bob", "business_user", "CA"))));
    assert!(fut.as_guard().is_some_and(|g| g.is_deferred()));
    assert_eq!(fut.await.unwrap().status(), StatusCode::OK);
    let res = svc
        .oneshot(request(Some(user("dave", "data_scientist", "GB"))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(slow.0.events().len(), 2);
}

/// A sink that refuses every event (a full disk).
struct Refusing;

#[async_trait::async_trait]
impl AuditSink for Refusing {
    async fn record(
        &self,
        _: kailash_core::audit::AuditEvent,
    ) -> Result<(), kailash_core::audit::AuditError> {
        Err(kailash_core::audit::AuditError::StorageFull)
    }
    fn try_record(
        &self,
        _: kailash_core::audit::AuditEvent,
    ) -> Result<kailash_core::audit::AuditTicket, kailash_core::audit::AuditEvent> {
        Ok(kailash_core::audit::AuditTicket::ready(Err(
            kailash_core::audit::AuditError::StorageFull,
        )))
    }
    async fn flush(&self) -> Result<(), kailash_core::audit::AuditError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_refused_audit_event_fails_the_request_closed() {
    let access = access(Arc::new(Refusing)).await;
    for who in [
        user("bob", "business_user", "CA"),
        user("dave", "data_scientist", "GB"),
    ] {
        let svc = RequirePermissionLayer::new("report:view")
            .access(access.clone())
            .layer(handler());
        let res = svc.oneshot(request(Some(who))).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}

#[tokio::test]
async fn the_file_sink_answers_after_the_write_without_boxing() {
    let dir = std::env::temp_dir().join(format!("kailash-access-audit-{}", std::process::id()));
    let path = dir.join("audit.jsonl");
    let file = Arc::new(kailash_core::audit::JsonLinesAuditSink::open(&path).unwrap());
    let access = access(file.clone()).await;
    let mut svc = RequirePermissionLayer::new("report:view")
        .access(access)
        .layer(handler());
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    let fut = svc.call(request(Some(user("bob", "business_user", "CA"))));
    // Waits on the batch ticket, unboxed — or, when the writer was quicker
    // than this check, passes on an already written batch; never boxed.
    assert!(
        fut.is_waiting() || fut.as_guard().is_some_and(|g| g.is_pass()),
        "boxed"
    );
    assert_eq!(fut.await.unwrap().status(), StatusCode::OK);
    // Answered after the write: the entry is in the file.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"a\":\"access.check\""));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
#[should_panic(expected = "RequirePermissionLayer::new")]
fn an_invalid_permission_literal_is_a_programming_error() {
    let _ = RequirePermissionLayer::new("not a permission");
}

#[test]
fn try_new_refuses_invalid_permissions() {
    assert!(RequirePermissionLayer::try_new("Workflow:Create").is_err());
    assert_eq!(
        RequirePermissionLayer::try_new("workflow:create")
            .unwrap()
            .required()
            .as_str(),
        "workflow:create"
    );
}

#[tokio::test]
async fn any_of_several_permissions_admits_with_one_audit_entry() {
    let audit = Arc::new(MemoryAuditSink::new());
    let access = access(audit.clone()).await;
    // report:view (business_user) or workflow:create (data_scientist).
    let svc = RequirePermissionLayer::new("report:view")
        .or("workflow:create")
        .access(access)
        .layer(handler());
    for (who, role) in [("bob", "business_user"), ("dave", "data_scientist")] {
        let res = svc
            .clone()
            .oneshot(request(Some(user(who, role, "GB"))))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{who}");
    }
    let res = svc
        .clone()
        .oneshot(request(Some(user("eve", "nobody", "GB"))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let problem: serde_json::Value = serde_json::from_str(&body(res).await).unwrap();
    assert_eq!(
        problem["permission"], "report:view",
        "the first permission is named"
    );

    let events = audit.events();
    assert_eq!(events.len(), 3, "one entry per request");
    assert_eq!(events[0].resource.as_deref(), Some("report:view"));
    assert_eq!(events[1].resource.as_deref(), Some("workflow:create"));
    assert_eq!(
        events[1].reason.as_deref(),
        Some("role `data_scientist` grants `workflow:create`")
    );
    assert_eq!(events[2].decision, AuditDecision::Deny);
    assert_eq!(events[2].resource.as_deref(), Some("report:view"));
    assert_eq!(
        events[2].reason.as_deref(),
        Some("no role grants `report:view`")
    );
}

/// `POST /api/access/explain` fails closed: an explain call is always
/// audited, and a directory that cannot answer is a 503, never a 404.
#[cfg(feature = "axum")]
mod explain_route {
    use super::*;
    use kailash_access::http::{Directory, DirectoryError, router};
    use kailash_core::audit::{AuditError, AuditEvent};

    struct Refusing;

    #[async_trait::async_trait]
    impl AuditSink for Refusing {
        async fn record(&self, _: AuditEvent) -> Result<(), AuditError> {
            Err(AuditError::Closed)
        }
        async fn flush(&self) -> Result<(), AuditError> {
            Ok(())
        }
    }

    struct Down;

    #[async_trait::async_trait]
    impl Directory for Down {
        async fn principal(&self, _: &str) -> Result<Option<Principal>, DirectoryError> {
            Err(DirectoryError::Unavailable)
        }
    }

    fn explain(body: &str) -> Request<axum::body::Body> {
        let mut req = Request::post("/api/access/explain")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap();
        req.extensions_mut().insert(user("alice", "admin", "US"));
        req
    }

    #[tokio::test]
    async fn an_unrecorded_explain_call_is_a_503_and_so_is_a_directory_down() {
        let refusing = access(Arc::new(Refusing)).await;
        let res = router(refusing, Arc::new(Down))
            .oneshot(explain(r#"{"permission":"audit:view"}"#))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(body(res).await.contains("audit trail"));

        let audit = Arc::new(MemoryAuditSink::new());
        let ok = access(audit.clone()).await;
        let app = router(ok, Arc::new(Down));
        let res = app
            .clone()
            .oneshot(explain(r#"{"permission":"audit:view"}"#))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = app
            .oneshot(explain(r#"{"user":"bob","permission":"audit:view"}"#))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        // Each request: the route's own check, then the explain call (the
        // second one as an error).
        let events = audit.events();
        let actions: Vec<&str> = events.iter().map(|e| &*e.action).collect();
        assert_eq!(
            actions,
            [
                "access.check",
                "access.explain",
                "access.check",
                "access.explain"
            ]
        );
        assert_eq!(events[3].decision, AuditDecision::Error);
        assert_eq!(
            events[3].reason.as_deref(),
            Some("user directory unavailable")
        );
    }

    struct Known;

    #[async_trait::async_trait]
    impl Directory for Known {
        async fn principal(&self, name: &str) -> Result<Option<Principal>, DirectoryError> {
            Ok((name == "bob").then(|| user("bob", "viewer", "US")))
        }
    }

    async fn call(body: &str) -> (StatusCode, serde_json::Value) {
        let app = router(
            access(Arc::new(MemoryAuditSink::new())).await,
            Arc::new(Known),
        );
        let res = app.oneshot(explain(body)).await.unwrap();
        let status = res.status();
        let text = body_of(res).await;
        (status, serde_json::from_str(&text).unwrap_or_default())
    }

    async fn body_of(res: Response<axum::body::Body>) -> String {
        body(res).await
    }

    fn pointers(problem: &serde_json::Value) -> Vec<&str> {
        problem["errors"]
            .as_array()
            .map(|e| e.iter().filter_map(|v| v["pointer"].as_str()).collect())
            .unwrap_or_default()
    }

    /// What the published schema forbids is a 422 pointing at the field,
    /// before the handler reads anything.
    #[tokio::test]
    async fn a_schema_invalid_body_is_a_422_with_a_pointer() {
        let many: serde_json::Map<String, serde_json::Value> =
            (0..65).map(|i| (format!("k{i}"), 1.into())).collect();
        let cases = [
            (r#"{"permission":"data"}"#.to_owned(), "/permission"),
            (r#"{"permission":"Data:read"}"#.to_owned(), "/permission"),
            (r#"{"permission":"*:x:read"}"#.to_owned(), "/permission"),
            (
                r#"{"permission":"data:read","user":""}"#.to_owned(),
                "/user",
            ),
            (
                r#"{"permission":"data:read","other":1}"#.to_owned(),
                "/other",
            ),
            (
                serde_json::json!({ "permission": "data:read", "resource": many }).to_string(),
                "/resource",
            ),
            (
                r#"{"permission":"data:read","resource":{"a":null}}"#.to_owned(),
                "/resource/a",
            ),
            (
                r#"{"permission":"data:read","resource":{"a":{"b":{"c":{"d":{"e":1}}}}}}"#
                    .to_owned(),
                // No shape of the `anyOf` at `a` fits: the pointer stops there.
                "/resource/a",
            ),
            (
                r#"{"permission":"data:read","context":{"time":"2026-02-29T10:00:00Z"}}"#
                    .to_owned(),
                // `context` may be null: the pointer stops at the `oneOf`.
                "/context",
            ),
            (
                r#"{"permission":"data:read","context":{"client_ip":"010.0.0.1"}}"#.to_owned(),
                "/context",
            ),
            (
                r#"{"permission":"data:read","context":{"time":null}}"#.to_owned(),
                // `context` may be null: the pointer stops at the `oneOf`.
                "/context",
            ),
        ];
        for (body, pointer) in cases {
            let (status, problem) = call(&body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert!(
                pointers(&problem).iter().any(|p| p.starts_with(pointer)),
                "{body}: {problem}"
            );
        }
        // Not JSON, and not declared as JSON.
        let (status, _) = call("{").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let mut req = explain(r#"{"permission":"data:read"}"#);
        req.headers_mut().remove("content-type");
        let app = router(
            access(Arc::new(MemoryAuditSink::new())).await,
            Arc::new(Known),
        );
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    /// Every value the schema allows is explained: the forms of time and
    /// address it admits all parse, a resource within the per-level limits
    /// is read whole (it was refused past 64 values in all before), and a
    /// blank username is an unknown user (404), not a malformed body.
    #[tokio::test]
    async fn schema_valid_bodies_are_explained() {
        let times = [
            "2024-02-29T00:00:00Z",
            "2000-02-29T23:59:59+14:00",
            "0001-01-01T00:00:00+23:59",
            "9998-12-31T23:59:59.123456789-23:59",
            "2026-12-07T10:00:00.5+05:30",
            "2026-01-01T00:00:00-00:00",
            "1900-02-28T12:00:00.5Z",
        ];
        for t in times {
            let body = serde_json::json!({ "permission": "data:read", "context": { "time": t } });
            let (status, report) = call(&body.to_string()).await;
            assert_eq!(status, StatusCode::OK, "{t}: {report}");
        }
        let ips = [
            "0.0.0.0",
            "255.255.255.255",
            "192.0.2.1",
            "::",
            "::1",
            "2001:db8::1",
            "fe80::",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8",
            "1::8",
            "ABCD:ef01::",
        ];
        for ip in ips {
            let body =
                serde_json::json!({ "permission": "data:read", "context": { "client_ip": ip } });
            let (status, report) = call(&body.to_string()).await;
            assert_eq!(status, StatusCode::OK, "{ip}: {report}");
        }
        for permission in ["*", "*:*", "data:*", "workflow:wf-1.a_b:execute", "a:b"] {
            let body = serde_json::json!({ "permission": permission });
            let (status, report) = call(&body.to_string()).await;
            assert_eq!(status, StatusCode::OK, "{permission}: {report}");
        }
        let lists: serde_json::Map<String, serde_json::Value> = (0..10)
            .map(|i| {
                (
                    format!("k{i}"),
                    serde_json::json!([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
                )
            })
            .collect();
        let body = serde_json::json!({
            "permission": "data:read",
            "resource": lists,
            "context": null,
            "user": null,
        });
        let (status, report) = call(&body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["permission"], "data:read");
        let (status, _) = call(r#"{"user":"  ","permission":"data:read"}"#).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, report) = call(r#"{"user":"bob","permission":"data:read"}"#).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(report["user"], "bob");
    }

    /// The published document compiles for the validator, and its one
    /// operation is the route served.
    #[cfg(feature = "openapi")]
    #[tokio::test]
    async fn the_document_is_checked_and_its_operation_routed() {
        let doc = kailash_access::http::openapi();
        kailash_core::schema::check_document(&doc).unwrap();
        let json = serde_json::to_value(&doc).unwrap();
        let paths = json["paths"].as_object().unwrap();
        assert_eq!(paths.len(), 1);
        let op = &json["paths"]["/api/access/explain"]["post"];
        for status in [
            "200", "400", "401", "403", "404", "413", "415", "422", "503",
        ] {
            assert!(op["responses"][status].is_object(), "{status}");
        }
        assert_eq!(
            json["components"]["schemas"]["ExplainRequest"]["additionalProperties"],
            false
        );
        // Routed: the permission check answers before any 404/405.
        let (status, _) = call(r#"{"permission":"data:read"}"#).await;
        assert_eq!(status, StatusCode::OK);
    }
}
