//! The reference deployment's access control and tenant isolation over HTTP
//! (DEMO.md's roles, policies, tenants and `/api/...` routes), on memory
//! and, when `KAILASH_TEST_REDIS_URL` is set, on Redis.

#[path = "../../crates/kailash/tests/support/mod.rs"]
mod support;

#[path = "demo_access/billing.rs"]
mod billing;
#[path = "demo_access/business.rs"]
mod business;
#[path = "demo_access/health.rs"]
mod health;
#[cfg(feature = "ldap")]
#[path = "demo_access/ldap.rs"]
mod ldap;
#[path = "demo_access/oidc.rs"]
mod oidc;
#[cfg(feature = "postgres")]
#[path = "demo_access/postgres.rs"]
mod postgres;
#[cfg(feature = "saml")]
#[path = "demo_access/saml.rs"]
mod saml;
#[cfg(feature = "redis")]
#[path = "demo_access/three_instances.rs"]
mod three_instances;

use std::path::{Path, PathBuf};

use kailash::GatewayBuilder;
use kailash::auth::totp::{TotpConfig, TotpSecret};
use kailash::config::GatewayConfig;
use kailash_examples::demo::with_demo_routes;
use serde_json::{Value, json};
use support::{Resp, Running, request, unique_suffix};

fn demo_config_text() -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/enterprise.toml"),
    )
    .expect("demo config")
}

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("kailash-access-e2e-{}", unique_suffix()))
}

struct Demo {
    gw: Running,
    data_dir: PathBuf,
    access: kailash::access::AccessControl,
}

async fn start_from(text: &str, origin: &str, overrides: &[(&str, String)]) -> Demo {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_on(text, origin, overrides, temp_dir(), listener).await
}

/// The demo gateway from `text`, with its data in `data_dir`, serving on
/// `listener` (bound first when its address goes into the configuration).
async fn start_on(
    text: &str,
    origin: &str,
    overrides: &[(&str, String)],
    data_dir: PathBuf,
    listener: tokio::net::TcpListener,
) -> Demo {
    let vars = overrides.iter().map(|(k, v)| (k.to_string(), v.clone()));
    let config = GatewayConfig::from_toml_with_env(text, origin, vars).expect("config");
    let builder = GatewayBuilder::from_config_with_backends(&config, &data_dir)
        .await
        .expect("backends");
    let access = builder.access_handle().expect("[access]").clone();
    let gateway = with_demo_routes(builder).unwrap().build().expect("gateway");
    Demo {
        gw: support::start_gateway_on(gateway, listener).await,
        data_dir,
        access,
    }
}

async fn demo(overrides: &[(&str, String)]) -> Demo {
    start_from(&demo_config_text(), "enterprise.toml", overrides).await
}

impl Demo {
    async fn stop(self) {
        self.gw.stop().await;
        std::fs::remove_dir_all(&self.data_dir).ok();
    }
}

/// Memory, plus Redis (with a fresh key prefix) when configured.
fn backends() -> Vec<Vec<(&'static str, String)>> {
    let mut out = vec![vec![]];
    match std::env::var("KAILASH_TEST_REDIS_URL") {
        Ok(url) => out.push(vec![
            ("KAILASH_STATE__REDIS_URL", url),
            (
                "KAILASH_STATE__KEY_PREFIX",
                format!("kailash-access-e2e-{}:", unique_suffix()),
            ),
        ]),
        Err(_) => eprintln!("skipped the Redis half: KAILASH_TEST_REDIS_URL is not set"),
    }
    out
}

async fn call(d: &Demo, method: &str, path: &str, token: &str, body: Option<Value>) -> Resp {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\nHost: x\nAuthorization: Bearer {token}\nContent-Type: application/json\nContent-Length: {}",
        body.len()
    );
    request(d.gw.addr, &head, body.as_bytes()).await
}

async fn login(d: &Demo, user: &str, password: &str, totp: Option<&str>) -> String {
    let mut body = json!({ "username": user, "password": password });
    if let Some(secret) = totp {
        let secret = TotpSecret::from_base32(secret).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        body["totp"] = TotpConfig::default().code_at(&secret, now).into();
    }
    let body = body.to_string();
    let head = format!(
        "POST /auth/login HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: {}",
        body.len()
    );
    let r = request(d.gw.addr, &head, body.as_bytes()).await;
    assert_eq!(r.status, 200, "{user}: {}", r.text());
    r.json()["access_token"].as_str().unwrap().to_owned()
}

fn workflow(name: &str, types: &[&str]) -> Value {
    let nodes: Vec<Value> = types
        .iter()
        .enumerate()
        .map(|(i, t)| json!({ "id": format!("n{i}"), "type": t }))
        .collect();
    json!({ "name": name, "nodes": nodes })
}

fn audit_lines(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn documents_follow_roles_policies_and_tenants() {
    for overrides in backends() {
        let d = demo(&overrides).await;
        let dave = login(&d, "dave", "Dave-Demo-Passw0rd!", None).await;
        let frank = login(&d, "frank", "Frank-Demo-Passw0rd!", None).await;
        let carol = login(&d, "carol", "Carol-Demo-Passw0rd!", None).await;
        let bob = login(&d, "bob", "Bob-Demo-Passw0rd!", None).await;

        let r = call(&d, "GET", "/api/data/acme-eng-conf", &dave, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["classification"], "confidential");
        let r = call(&d, "GET", "/api/data/acme-eng-secret", &dave, None).await;
        assert_eq!(r.assert_problem(403)["permission"], "data:read");
        // Another department's document.
        call(&d, "GET", "/api/data/acme-sales-int", &dave, None)
            .await
            .assert_problem(403);

        // frank is in France: neither document.
        for id in ["acme-eng-conf", "acme-eng-secret"] {
            call(&d, "GET", &format!("/api/data/{id}"), &frank, None)
                .await
                .assert_problem(403);
        }
        // bob has no data:read at all.
        call(&d, "GET", "/api/data/acme-sales-int", &bob, None)
            .await
            .assert_problem(403);

        // carol (globex) sees her tenant's document and none of acme's: an
        // acme id answers exactly like an id that does not exist.
        assert_eq!(
            call(&d, "GET", "/api/data/globex-res-conf", &carol, None)
                .await
                .status,
            200
        );
        let foreign = call(&d, "GET", "/api/data/acme-eng-conf", &carol, None).await;
        let unknown = call(&d, "GET", "/api/data/no-such-doc", &carol, None).await;
        assert_eq!(foreign.status, 404);
        assert_eq!(
            (foreign.status, foreign.body.clone()),
            (unknown.status, unknown.body.clone())
        );
        // And globex's documents are invisible to acme.
        let foreign = call(&d, "GET", "/api/data/globex-res-conf", &dave, None).await;
        assert_eq!(
            foreign.body,
            call(&d, "GET", "/api/data/nope", &dave, None).await.body
        );
        assert_eq!(foreign.status, 404);

        // Each decision is in the audit trail, with the rule that decided.
        let alice = login(
            &d,
            "alice",
            "Alice-Demo-Passw0rd!",
            Some("JBSWY3DPEHPK3PXP"),
        )
        .await;
        let r = call(&d, "GET", "/api/audit?limit=1000", &alice, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let events = r.json()["events"].as_array().unwrap().clone();
        let find = |actor: &str, resource: &str| {
            events
                .iter()
                .find(|e| {
                    e["action"] == "access.check"
                        && e["actor"] == actor
                        && e["resource"] == resource
                })
                .unwrap_or_else(|| panic!("no decision for {actor} on {resource}"))
                .clone()
        };
        let e = find("dave", "data:read acme-eng-secret");
        assert_eq!(e["decision"], "deny");
        assert_eq!(e["reason"], "policy `data_access` not satisfied");
        assert_eq!(find("dave", "data:read acme-eng-conf")["decision"], "allow");
        let e = find("frank", "data:read");
        assert_eq!(e["reason"], "policy `geo_restriction` not satisfied");
        assert_eq!(
            find("bob", "data:read")["reason"],
            "no role grants `data:read`"
        );
        assert!(
            events.iter().all(|e| e["tenant"] == "acme"),
            "acme's trail only"
        );
        // One person's entries (a subject access request).
        let r = call(
            &d,
            "GET",
            "/api/audit/export?user=dave&limit=1000",
            &alice,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let daves = r.json()["events"].as_array().unwrap().clone();
        assert!(daves.len() >= 2, "{daves:?}");
        assert!(
            daves
                .iter()
                .all(|e| e["actor"] == "dave" && e["tenant"] == "acme")
        );
        // The file trail chains names as written: it offers no erasure
        // rather than pretending to.
        call(&d, "DELETE", "/api/audit/subjects/dave", &alice, None)
            .await
            .assert_problem(404);
        // Bad limits are refused.
        call(&d, "GET", "/api/audit?limit=0", &alice, None)
            .await
            .assert_problem(422);
        // bob may not read the trail.
        call(&d, "GET", "/api/audit", &bob, None)
            .await
            .assert_problem(403);

        let data_dir = d.data_dir.clone();
        d.gw.stop().await;
        // ... and durably in the file.
        let lines = audit_lines(&data_dir);
        // The file's compact keys (kailash_core::audit::entry).
        assert!(lines.iter().any(|e| e["a"] == "access.check"
            && e["u"] == "carol"
            && e["r"] == "data:read globex-res-conf"
            && e["d"] == "allow"));
        std::fs::remove_dir_all(&data_dir).ok();
    }
}

#[tokio::test]
async fn workflows_follow_permissions_role_limits_and_tenant_limits() {
    for overrides in backends() {
        let d = demo(&overrides).await;
        let bob = login(&d, "bob", "Bob-Demo-Passw0rd!", None).await;
        let dave = login(&d, "dave", "Dave-Demo-Passw0rd!", None).await;
        let carol = login(&d, "carol", "Carol-Demo-Passw0rd!", None).await;

        // bob (business_user) cannot create workflows, but may list them.
        let r = call(
            &d,
            "POST",
            "/api/workflows",
            &bob,
            Some(workflow("b", &["transform"])),
        )
        .await;
        assert_eq!(r.assert_problem(403)["permission"], "workflow:create");
        assert_eq!(
            call(&d, "GET", "/api/workflows", &bob, None).await.status,
            200
        );

        // dave (data_scientist, max_workflows 20): twenty, then refused.
        let mut first = String::new();
        for i in 0..20 {
            let r = call(
                &d,
                "POST",
                "/api/workflows",
                &dave,
                Some(workflow(&format!("w{i}"), &["transform", "transform"])),
            )
            .await;
            assert_eq!(r.status, 201, "workflow {i}: {}", r.text());
            assert!(
                r.header("location")
                    .unwrap()
                    .starts_with("/api/workflows/wf-")
            );
            if i == 0 {
                first = r.json()["id"].as_str().unwrap().to_owned();
            }
        }
        let r = call(
            &d,
            "POST",
            "/api/workflows",
            &dave,
            Some(workflow("w21", &["transform"])),
        )
        .await;
        let p = r.assert_problem(403);
        assert_eq!(p["limit"], "max_workflows");
        assert_eq!(p["max"], 20);

        // acme lists dave's twenty; globex sees none of them.
        let listed = call(&d, "GET", "/api/workflows", &dave, None).await.json();
        assert_eq!(listed["workflows"].as_array().unwrap().len(), 20);
        let theirs = call(&d, "GET", "/api/workflows", &carol, None).await.json();
        assert_eq!(theirs["workflows"].as_array().unwrap().len(), 0);

        // Deleting needs workflow:delete (admin); a freed slot lets dave create again.
        call(
            &d,
            "DELETE",
            &format!("/api/workflows/{first}"),
            &dave,
            None,
        )
        .await
        .assert_problem(403);
        let alice = login(
            &d,
            "alice",
            "Alice-Demo-Passw0rd!",
            Some("JBSWY3DPEHPK3PXP"),
        )
        .await;
        let r = call(
            &d,
            "DELETE",
            &format!("/api/workflows/{first}"),
            &alice,
            None,
        )
        .await;
        assert_eq!(r.status, 204, "{}", r.text());
        call(
            &d,
            "DELETE",
            &format!("/api/workflows/{first}"),
            &alice,
            None,
        )
        .await
        .assert_problem(404);
        let r = call(
            &d,
            "POST",
            "/api/workflows",
            &dave,
            Some(workflow("again", &["transform"])),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text());
        // Tenant usage counts the workflows.
        let usage = call(&d, "GET", "/api/tenant/usage", &dave, None)
            .await
            .json();
        assert_eq!(usage["workflows"], 20);

        // globex (max 10 nodes; http_request and transform only).
        let eleven = vec!["transform"; 11];
        let r = call(
            &d,
            "POST",
            "/api/workflows",
            &carol,
            Some(workflow("big", &eleven)),
        )
        .await;
        let p = r.assert_problem(403);
        assert_eq!(p["violation"], "too_many_nodes");
        assert!(p["detail"].as_str().unwrap().contains("11 nodes"), "{p}");
        let r = call(
            &d,
            "POST",
            "/api/workflows",
            &carol,
            Some(workflow("ai", &["transform", "llm"])),
        )
        .await;
        let p = r.assert_problem(403);
        assert_eq!(
            (p["node"].as_str(), p["node_type"].as_str()),
            (Some("n1"), Some("llm"))
        );
        assert!(p["detail"].as_str().unwrap().contains("\"n1\""), "{p}");
        // Bodies the schema refuses are 422, each field pointed at, and
        // create nothing.
        for (bad, pointer) in [
            (json!({ "name": "x" }), "/nodes"),
            (
                json!({ "name": "", "nodes": [{ "id": "a", "type": "transform" }] }),
                "/name",
            ),
            (json!([1, 2]), ""),
        ] {
            let p = call(&d, "POST", "/api/workflows", &carol, Some(bad))
                .await
                .assert_problem(422);
            assert_eq!(p["errors"][0]["pointer"], pointer, "{p}");
        }
        // Well formed but not runnable: 422 naming the node.
        let r = call(&d, "POST", "/api/workflows", &carol, Some(json!({ "name": "dup", "nodes": [{ "id": "a", "type": "transform" }, { "id": "a", "type": "transform" }] }))).await;
        let p = r.assert_problem(422);
        assert_eq!(
            (p["node"].as_str(), p["violation"].as_str()),
            (Some("a"), Some("duplicate_node_id")),
            "{p}"
        );
        // Allowed for globex, but the runtime has no `http_request` node
        // type yet: refused naming the node, nothing created.
        let r = call(
            &d,
            "POST",
            "/api/workflows",
            &carol,
            Some(workflow("soon", &["transform", "http_request"])),
        )
        .await;
        let p = r.assert_problem(422);
        assert_eq!(
            (p["node"].as_str(), p["violation"].as_str()),
            (Some("n1"), Some("invalid_definition")),
            "{p}"
        );
        let theirs = call(&d, "GET", "/api/workflows", &carol, None).await.json();
        assert_eq!(theirs["workflows"].as_array().unwrap().len(), 0);
        // A globex workflow cannot be deleted from acme: not found, like any unknown id.
        let r = call(
            &d,
            "POST",
            "/api/workflows",
            &carol,
            Some(workflow("ok", &["transform", "transform"])),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let globex_id = r.json()["id"].as_str().unwrap().to_owned();
        let foreign = call(
            &d,
            "DELETE",
            &format!("/api/workflows/{globex_id}"),
            &alice,
            None,
        )
        .await;
        let unknown = call(
            &d,
            "DELETE",
            "/api/workflows/wf-000000000000000000000000",
            &alice,
            None,
        )
        .await;
        assert_eq!(foreign.status, 404);
        assert_eq!(foreign.body, unknown.body);
        let theirs = call(&d, "GET", "/api/workflows", &carol, None).await.json();
        assert_eq!(theirs["workflows"][0]["id"], globex_id.as_str());
        d.stop().await;
    }
}

#[tokio::test]
async fn reports_need_report_view() {
    let d = demo(&[]).await;
    let metrics = || async { support::get(d.gw.addr, "/metrics").await.text() };
    let before = metrics().await;
    let bob = login(&d, "bob", "Bob-Demo-Passw0rd!", None).await;
    let r = call(&d, "GET", "/api/reports", &bob, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["tenant"], "acme");
    let dave = login(&d, "dave", "Dave-Demo-Passw0rd!", None).await;
    call(&d, "GET", "/api/reports", &dave, None)
        .await
        .assert_problem(403);
    // Each decision is counted by permission and effect (`/metrics` is
    // process-wide and tests run in parallel: at least).
    let after = metrics().await;
    for series in [
        r#"kailash_access_decisions_total{permission="report:view",effect="allow"}"#,
        r#"kailash_access_decisions_total{permission="report:view",effect="deny"}"#,
    ] {
        let delta = support::sample(&after, series) - support::sample(&before, series);
        assert!(delta >= 1.0, "{series} moved {delta}:\n{after}");
    }
    // No token: 401 before any permission is looked at.
    let r = request(d.gw.addr, "GET /api/reports HTTP/1.1\nHost: x", b"").await;
    assert_eq!(r.status, 401);
    d.stop().await;
}

#[tokio::test]
async fn a_reload_takes_effect_on_the_next_request_and_a_broken_file_changes_nothing() {
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    let text = demo_config_text();
    std::fs::write(&path, &text).unwrap();
    let d = start_from(&text, &path.display().to_string(), &[]).await;
    let bob = login(&d, "bob", "Bob-Demo-Passw0rd!", None).await;
    let post = || {
        call(
            &d,
            "POST",
            "/api/workflows",
            &bob,
            Some(workflow("b", &["transform"])),
        )
    };
    post().await.assert_problem(403);

    // Give business_user workflow:create.
    let granted = text.replace(
        "permissions = [\"workflow:execute\", \"report:view\", \"node:transform:execute\"]",
        "permissions = [\"workflow:execute\", \"report:view\", \"node:transform:execute\", \"workflow:create\"]",
    );
    assert_ne!(granted, text);
    std::fs::write(&path, &granted).unwrap();
    kailash::config::reload_access(&path, &d.access)
        .await
        .unwrap();
    let r = post().await;
    assert_eq!(r.status, 201, "{}", r.text());

    // A broken condition: refused with the file and line; the policy in force stays.
    let broken = granted.replace(
        "condition = \"user.location.country IN ['US', 'CA', 'GB']\"",
        "condition = \"user.location.country IN ['US', 'CA'\"",
    );
    assert_ne!(broken, granted);
    std::fs::write(&path, &broken).unwrap();
    let err = kailash::config::reload_access(&path, &d.access)
        .await
        .unwrap_err()
        .to_string();
    let line = broken
        .lines()
        .position(|l| l.starts_with("condition = \"user.location.country"))
        .unwrap()
        + 1;
    assert!(
        err.starts_with(&format!(
            "{}:{line}: access: policy `geo_restriction`",
            path.display()
        )),
        "{err}"
    );
    assert_eq!(
        post().await.status,
        201,
        "the reloaded policy stays in force"
    );

    // An unknown role for a user is a config error naming both.
    let orphan = granted.replace("roles = [\"business_user\"]", "roles = [\"cashier\"]");
    std::fs::write(&path, &orphan).unwrap();
    let err = kailash::config::reload_access(&path, &d.access)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("`cashier`"), "{err}");
    d.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}

async fn api_calls_today(d: &Demo, token: &str) -> u64 {
    let r = call(d, "GET", "/api/tenant/usage", token, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["api_calls_today"].as_u64().unwrap()
}

/// A member cannot burn the tenant's daily quota with requests that the
/// per-user limit, the route's permission or the handler's resource check
/// then refuse: only admitted requests stay counted.
#[tokio::test]
async fn refused_requests_do_not_burn_the_tenants_quota() {
    for backend in backends() {
        let mut overrides = backend.clone();
        // A tight per-user limit, so some refusals come from it.
        overrides.push(("KAILASH_RATE_LIMIT__PER_USER__RATE", "4".to_owned()));
        overrides.push(("KAILASH_RATE_LIMIT__PER_USER__BURST", "4".to_owned()));
        let d = demo(&overrides).await;
        let bob = login(&d, "bob", "Bob-Demo-Passw0rd!", None).await;
        let frank = login(&d, "frank", "Frank-Demo-Passw0rd!", None).await;
        let dave = login(&d, "dave", "Dave-Demo-Passw0rd!", None).await;

        let before = api_calls_today(&d, &dave).await;
        // Refused by the route's permission (bob has no data:read).
        call(&d, "GET", "/api/data/acme-eng-conf", &bob, None)
            .await
            .assert_problem(403);
        // Refused by the document check in the handler (frank is in FR,
        // geo_restriction).
        call(&d, "GET", "/api/data/acme-eng-conf", &frank, None)
            .await
            .assert_problem(403);
        // Refused by the route's permission (dave has no report:view).
        call(&d, "GET", "/api/reports", &dave, None)
            .await
            .assert_problem(403);
        // bob's per-user bucket holds 4 (one went on the refused call
        // above): some of these are refused with 429, and not counted.
        let mut allowed = 0;
        let mut limited = 0;
        for _ in 0..6 {
            match call(&d, "GET", "/api/reports", &bob, None).await.status {
                200 => allowed += 1,
                429 => limited += 1,
                other => panic!("unexpected {other}"),
            }
        }
        assert!(limited >= 1, "the per-user limit refused something");
        let after = api_calls_today(&d, &dave).await;
        // Counted: the allowed reports and the first usage call (the
        // second counts after it answers).
        assert_eq!(
            after - before,
            1 + allowed,
            "only admitted requests count ({backend:?})"
        );
        d.stop().await;
    }
}

/// `POST /api/access/explain`: the decision with every role and policy
/// evaluated, the rule the audit trail records for the real request, the
/// caller's tenant only, bounded and audited input, one API call of quota.
#[tokio::test]
async fn explain_tells_why_with_the_audited_reason() {
    for overrides in backends() {
        let d = demo(&overrides).await;
        let alice = login(
            &d,
            "alice",
            "Alice-Demo-Passw0rd!",
            Some("JBSWY3DPEHPK3PXP"),
        )
        .await;
        let dave = login(&d, "dave", "Dave-Demo-Passw0rd!", None).await;
        let bob = login(&d, "bob", "Bob-Demo-Passw0rd!", None).await;
        let explain = |token: &str, body: Value| {
            let token = token.to_owned();
            let d = &d;
            async move { call(d, "POST", "/api/access/explain", &token, Some(body)).await }
        };

        // Deny: dave's clearance is below secret. The reason is the one the
        // audit trail records when dave really asks for the document.
        call(&d, "GET", "/api/data/acme-eng-secret", &dave, None)
            .await
            .assert_problem(403);
        let r = explain(
            &alice,
            json!({ "user": "dave", "permission": "data:read",
                    "resource": { "department": "engineering", "classification": "secret" } }),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let e = r.json();
        assert_eq!(e["allowed"], false);
        assert_eq!(e["user"], "dave");
        assert_eq!(e["tenant"], "acme");
        assert_eq!(e["strategy"], "hybrid");
        let trail = call(&d, "GET", "/api/audit?limit=1000", &alice, None).await;
        assert_eq!(trail.status, 200, "{}", trail.text());
        let audited = trail.json()["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| {
                l["action"] == "access.check"
                    && l["actor"] == "dave"
                    && l["resource"] == "data:read acme-eng-secret"
            })
            .expect("the real decision is audited")
            .clone();
        assert_eq!(e["reason"], audited["reason"]);
        assert_eq!(e["reason"], "policy `data_access` not satisfied");
        // Every step: the role, and both policies with each comparison.
        let steps = e["steps"].as_array().unwrap();
        assert_eq!(steps[0]["kind"], "role");
        assert_eq!(steps[0]["name"], "data_scientist");
        assert_eq!(steps[0]["outcome"], "grants");
        let access = steps.iter().find(|s| s["name"] == "data_access").unwrap();
        assert_eq!(access["outcome"], "not satisfied");
        let clauses = access["clauses"].as_array().unwrap();
        assert_eq!(clauses.len(), 2);
        assert_eq!(clauses[0]["test"], "user.department == data.department");
        assert_eq!(clauses[0]["outcome"], "holds");
        assert_eq!(clauses[1]["test"], "user.clearance >= data.classification");
        assert_eq!(clauses[1]["outcome"], "fails");
        assert_eq!(clauses[1]["values"], "'confidential' >= 'secret'");
        let geo = steps
            .iter()
            .find(|s| s["name"] == "geo_restriction")
            .unwrap();
        assert_eq!(geo["outcome"], "holds");

        // Allow, for the caller (no `user`), at a given time.
        let r = explain(
            &alice,
            json!({ "permission": "system:configure", "context": { "time": "2026-12-07T10:00:00Z" } }),
        )
        .await;
        let e = r.json();
        assert_eq!(e["user"], "alice");
        assert_eq!(e["allowed"], true, "{e}");
        assert_eq!(
            e["reason"],
            "role `admin` grants `system:configure`; policy `time_based` holds"
        );
        // ... and outside office hours, with the failing comparison named.
        let e = explain(
            &alice,
            json!({ "permission": "system:configure", "context": { "time": "2026-12-05T10:00:00Z" } }),
        )
        .await
        .json();
        assert_eq!(e["allowed"], false);
        let clauses = e["steps"][1]["clauses"].as_array().unwrap();
        assert_eq!(clauses[2]["test"], "current_time.weekday < 5");
        assert_eq!(clauses[2]["outcome"], "fails");

        // Another tenant's user answers exactly like an unknown one.
        let foreign = explain(
            &alice,
            json!({ "user": "carol", "permission": "data:read" }),
        )
        .await;
        let unknown = explain(
            &alice,
            json!({ "user": "nobody", "permission": "data:read" }),
        )
        .await;
        foreign.assert_problem(404);
        unknown.assert_problem(404);
        assert_eq!(foreign.body, unknown.body);

        // Malformed input: not JSON (400); a body the published schema
        // refuses, each offending field pointed at (422).
        let head = format!(
            "POST /api/access/explain HTTP/1.1\nHost: x\nAuthorization: Bearer {alice}\nContent-Type: application/json\nContent-Length: 5"
        );
        request(d.gw.addr, &head, b"{nope")
            .await
            .assert_problem(400);
        let p = explain(&alice, json!({ "permission": "data" }))
            .await
            .assert_problem(422);
        assert_eq!(p["errors"][0]["pointer"], "/permission");
        let p = explain(
            &alice,
            json!({ "permission": "data:read", "resource": { "department": 5.5, "x": null } }),
        )
        .await
        .assert_problem(422);
        assert_eq!(p["errors"][0]["pointer"], "/resource/x");
        let p = explain(&alice, json!({ "permission": "data:read", "extra": 1 }))
            .await
            .assert_problem(422);
        assert_eq!(p["errors"][0]["pointer"], "/extra");
        let p = explain(&alice, json!({ "user": 7, "permission": "data:read" }))
            .await
            .assert_problem(422);
        assert_eq!(p["errors"][0]["pointer"], "/user");
        let p = explain(
            &alice,
            json!({ "permission": "data:read", "context": { "time": "yesterday" } }),
        )
        .await
        .assert_problem(422);
        assert_eq!(p["errors"][0]["pointer"], "/context");
        // Bounded: too many attribute values in one map, too long a string.
        let many: serde_json::Map<String, Value> =
            (0..65).map(|i| (format!("k{i}"), Value::from(i))).collect();
        let p = explain(
            &alice,
            json!({ "permission": "data:read", "resource": many }),
        )
        .await
        .assert_problem(422);
        assert_eq!(p["errors"][0]["pointer"], "/resource");
        let p = explain(
            &alice,
            json!({ "user": "u".repeat(300), "permission": "data:read" }),
        )
        .await
        .assert_problem(422);
        assert_eq!(p["errors"][0]["pointer"], "/user");
        let big = json!({ "permission": "data:read", "resource": { "k": "v".repeat(20_000) } });
        explain(&alice, big).await.assert_problem(413);

        // Callers without audit:view or system:configure are refused.
        let p = explain(&dave, json!({ "permission": "data:read" }))
            .await
            .assert_problem(403);
        assert_eq!(p["permission"], "audit:view");
        explain(&bob, json!({ "user": "dave", "permission": "data:read" }))
            .await
            .assert_problem(403);

        // One API call of quota per explain call, like any request.
        let u1 = api_calls_today(&d, &alice).await;
        let u2 = api_calls_today(&d, &alice).await;
        explain(&alice, json!({ "permission": "audit:view" })).await;
        let u3 = api_calls_today(&d, &alice).await;
        assert_eq!(u3 - u2, (u2 - u1) + 1);

        // The route is in the OpenAPI document.
        let doc = request(d.gw.addr, "GET /openapi.json HTTP/1.1\nHost: x", b"")
            .await
            .json();
        assert!(
            doc["paths"]["/api/access/explain"]["post"].is_object(),
            "explain in the OpenAPI document"
        );

        // The calls are audited as access.explain; the explained decision
        // is not recorded as an access.check.
        let data_dir = d.data_dir.clone();
        d.gw.stop().await;
        let lines = audit_lines(&data_dir);
        let explains: Vec<&Value> = lines
            .iter()
            .filter(|l| l["a"] == "access.explain")
            .collect();
        assert!(explains.iter().any(|l| l["u"] == "alice"
            && l["r"] == "data:read for dave"
            && l["d"] == "success"
            && l["why"] == "policy `data_access` not satisfied"));
        assert!(
            explains
                .iter()
                .any(|l| l["u"] == "alice" && l["d"] == "failure" && l["why"] == "unknown user")
        );
        assert!(!lines.iter().any(|l| l["a"] == "access.check"
            && l["u"] == "dave"
            && l["r"] == "data:read"
            && l["d"] == "deny"
            && l["why"] == "policy `data_access` not satisfied"));
        // The 403 for dave is an ordinary audited decision of the route.
        assert!(lines.iter().any(|l| l["a"] == "access.check"
            && l["u"] == "dave"
            && l["r"] == "audit:view"
            && l["d"] == "deny"));
        std::fs::remove_dir_all(&data_dir).ok();
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An authenticated realtime socket, past its welcome frame.
async fn socket(d: &Demo, token: &str) -> Socket {
    socket_at(d.gw.addr, token).await
}

/// [`socket`] to the gateway at `addr`.
async fn socket_at(addr: std::net::SocketAddr, token: &str) -> Socket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let mut ws = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade")
        .0;
    assert_eq!(next_frame(&mut ws).await.unwrap()["type"], "welcome");
    ws
}

/// The next text frame as JSON (`None` once the socket closes).
async fn next_frame(ws: &mut Socket) -> Option<Value> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
            .await
            .ok()??
        {
            Ok(Message::Text(t)) => return serde_json::from_str(&t).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// The events of `order_workflow`'s run, in order.
const ORDER_RUN_EVENTS: [&str; 4] = [
    "execution.started",
    "node.completed",
    "node.completed",
    "execution.completed",
];

/// The event names of `run` on `ws` up to `execution.completed`; every
/// frame must be on channel `executions` and of that run.
async fn run_events(ws: &mut Socket, run: &str) -> Vec<String> {
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("execution.completed") {
        let frame = next_frame(ws).await.expect("an event of the run");
        assert_eq!(
            (frame["channel"].as_str(), frame["data"]["run_id"].as_str()),
            (Some("executions"), Some(run)),
            "{frame}"
        );
        seen.push(frame["event"].as_str().unwrap().to_owned());
    }
    seen
}

/// Polls a run until it has ended.
async fn finished(d: &Demo, token: &str, run: &str) -> Value {
    for _ in 0..500 {
        let r = call(d, "GET", &format!("/api/executions/{run}"), token, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        if !matches!(v["status"].as_str(), Some("pending" | "running")) {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("run {run} did not end");
}

fn order_workflow() -> Value {
    json!({
        "name": "order total",
        "inputs": ["order"],
        "nodes": [
            {"id": "qty", "type": "transform", "config": {"expression": "o.qty"}},
            {"id": "line", "type": "transform", "config": {"expression": "{qty: q, sku: 'A-1'}"}}
        ],
        "connections": [
            {"from": {"input": "order"}, "to": {"node": "qty", "input": "o"}},
            {"from": {"node": "qty", "output": "result"}, "to": {"node": "line", "input": "q"}}
        ],
        "outputs": {"line": {"node": "line", "output": "result"}}
    })
}

#[tokio::test]
async fn workflow_runs_are_checked_isolated_and_audited() {
    for overrides in backends() {
        let d = demo(&overrides).await;
        let dave = login(&d, "dave", "Dave-Demo-Passw0rd!", None).await;
        let bob = login(&d, "bob", "Bob-Demo-Passw0rd!", None).await;
        let carol = login(&d, "carol", "Carol-Demo-Passw0rd!", None).await;

        let r = call(&d, "POST", "/api/workflows", &dave, Some(order_workflow())).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let wf = r.json()["id"].as_str().unwrap().to_owned();

        // The seed's create_tenant_session metadata.
        let r = call(&d, "POST", "/api/sessions", &dave, None).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let session = r.json();
        let sid = session["id"].as_str().unwrap().to_owned();
        assert_eq!(
            r.header("location"),
            Some(format!("/api/sessions/{sid}").as_str())
        );
        // dave and bob watch their realtime sockets.
        let mut dave_ws = socket(&d, &dave).await;
        let mut bob_ws = socket(&d, &bob).await;
        assert_eq!(session["tenant_id"], "acme");
        assert_eq!(session["tenant_name"], "Acme Corporation");
        assert_eq!(session["billing_plan"], "enterprise");
        assert_eq!(session["isolation_level"], "session");
        let limits = &session["resource_limits"];
        assert_eq!(limits["max_concurrent_workflows"]["user"], 4);
        assert_eq!(limits["max_execution_time_secs"], 300);
        assert_eq!(limits["max_memory_mb"], 256);
        assert_eq!(limits["max_executions_per_hour"], 100);
        assert_eq!(limits["max_workflows"], 100);

        // A run: 202 with its record and Location, then completed.
        let body = json!({"workflow_id": wf, "inputs": {"order": {"qty": 3}}});
        let path = format!("/api/sessions/{sid}/executions");
        let r = call(&d, "POST", &path, &dave, Some(body)).await;
        assert_eq!(r.status, 202, "{}", r.text());
        let run = r.json()["run_id"].as_str().unwrap().to_owned();
        assert_eq!(r.json()["status"], "pending");
        assert_eq!(
            r.header("location"),
            Some(format!("/api/executions/{run}").as_str())
        );
        let runs_before = support::get(d.gw.addr, "/metrics").await.text();
        let done = finished(&d, &dave, &run).await;
        assert_eq!(done["status"], "completed", "{done}");
        let completed = r#"kailash_workflow_runs_total{status="completed"}"#;
        let runs_after = support::get(d.gw.addr, "/metrics").await.text();
        assert!(
            support::sample(&runs_after, completed) >= 1.0,
            "{runs_before}\n{runs_after}"
        );
        assert_eq!(done["outputs"], json!({"line": {"qty": 3, "sku": "A-1"}}));
        assert_eq!(done["nodes"][1]["status"], "completed");
        let mine = call(&d, "GET", "/api/executions", &dave, None).await.json();
        assert_eq!(mine["executions"][0]["run_id"], run.as_str());
        // The run's events reached dave's socket in order, on channel
        // `executions`; bob (same tenant, isolation on) got none.
        assert_eq!(run_events(&mut dave_ws, &run).await, ORDER_RUN_EVENTS);
        assert!(
            tokio::time::timeout(
                std::time::Duration::from_millis(300),
                next_frame(&mut bob_ws)
            )
            .await
            .is_err(),
            "bob saw dave's run"
        );

        // Isolation: bob (same tenant) and carol (globex) see nothing of it.
        for (who, token) in [("bob", &bob), ("carol", &carol)] {
            for (method, p) in [
                ("GET", format!("/api/executions/{run}")),
                ("POST", format!("/api/executions/{run}/cancel")),
                ("GET", format!("/api/sessions/{sid}")),
                ("DELETE", format!("/api/sessions/{sid}")),
            ] {
                let r = call(&d, method, &p, token, None).await;
                assert_eq!(r.status, 404, "{who} {method} {p}: {}", r.text());
            }
            let theirs = call(&d, "GET", "/api/executions", token, None).await.json();
            assert_eq!(theirs["executions"], json!([]), "{who}");
        }
        // bob may run the tenant's workflow in his own session (he holds
        // workflow:execute and node:transform:execute), not in dave's.
        let r = call(
            &d,
            "POST",
            &path,
            &bob,
            Some(json!({"workflow_id": wf, "inputs": {"order": {"qty": 1}}})),
        )
        .await;
        assert_eq!(r.status, 404, "{}", r.text());
        let bs = call(&d, "POST", "/api/sessions", &bob, None).await.json();
        let bpath = format!("/api/sessions/{}/executions", bs["id"].as_str().unwrap());
        let r = call(
            &d,
            "POST",
            &bpath,
            &bob,
            Some(json!({"workflow_id": wf, "inputs": {"order": {"qty": 1}}})),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.text());
        let brun = r.json()["run_id"].as_str().unwrap().to_owned();
        assert_eq!(finished(&d, &bob, &brun).await["status"], "completed");
        // carol's tenant has no such workflow.
        let cs = call(&d, "POST", "/api/sessions", &carol, None).await.json();
        let cpath = format!("/api/sessions/{}/executions", cs["id"].as_str().unwrap());
        let r = call(
            &d,
            "POST",
            &cpath,
            &carol,
            Some(json!({"workflow_id": wf, "inputs": {}})),
        )
        .await;
        assert_eq!(r.status, 404, "{}", r.text());

        // Bad input: named, nothing run.
        let r = call(
            &d,
            "POST",
            &path,
            &dave,
            Some(json!({"workflow_id": wf, "inputs": {"ordr": 1}})),
        )
        .await;
        let p = r.assert_problem(422);
        assert_eq!(p["reason"], "invalid_inputs");
        assert!(p["detail"].as_str().unwrap().contains("order"), "{p}");
        // A body outside the published schema: 422, pointing at the field.
        let r = call(&d, "POST", &path, &dave, Some(json!({"workflow": wf}))).await;
        let p = r.assert_problem(422);
        assert_eq!(p["errors"][0]["in"], "body", "{p}");
        let r = call(
            &d,
            "POST",
            &path,
            &dave,
            Some(json!({"workflow_id": wf, "inputs": {"order": "x".repeat(2 << 20)}})),
        )
        .await;
        assert!(r.status == 413, "{}", r.status);
        let r = call(
            &d,
            "POST",
            "/api/sessions/as-nope/executions",
            &dave,
            Some(json!({"workflow_id": wf})),
        )
        .await;
        r.assert_problem(404);
        let r = call(&d, "GET", "/api/executions?limit=x", &dave, None).await;
        assert_eq!(r.assert_problem(422)["errors"][0]["pointer"], "/limit");
        assert_eq!(
            call(&d, "GET", "/api/executions", &dave, None).await.json()["executions"]
                .as_array()
                .unwrap()
                .len(),
            1
        );

        // A finished run cannot be cancelled; closing the session ends it.
        let r = call(
            &d,
            "POST",
            &format!("/api/executions/{run}/cancel"),
            &dave,
            None,
        )
        .await;
        assert_eq!(r.assert_problem(409)["reason"], "finished");
        assert_eq!(
            call(&d, "DELETE", &format!("/api/sessions/{sid}"), &dave, None)
                .await
                .status,
            204
        );
        assert_eq!(
            call(&d, "GET", &format!("/api/sessions/{sid}"), &dave, None)
                .await
                .status,
            404
        );

        // Every decision and outcome is in the audit trail.
        // (Stopping waits for the runtime to finish its records and flushes.)
        let Demo { gw, data_dir, .. } = d;
        gw.stop().await;
        let lines = audit_lines(&data_dir);
        let count = |action: &str, decision: &str| {
            lines
                .iter()
                // Compact entries: `a` action, `d` decision.
                .filter(|l| l["a"] == action && l["d"] == decision)
                .count()
        };
        // Two runs, and the one refused for its inputs after the decision.
        assert_eq!(count("workflow.execute", "allow"), 3);
        assert_eq!(count("workflow.node", "allow"), 4);
        assert_eq!(count("workflow.run", "success"), 2);
        assert!(count("workflow.run", "deny") >= 4, "refusals audited");
        assert_eq!(count("workflow.session", "success"), 4);
        std::fs::remove_dir_all(&data_dir).ok();
    }
}

/// A local HTTP service for the `slow` integration: `/slow` answers after
/// 30 s (runs calling it stay in flight), anything else at once.
async fn slow_service() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                if head.starts_with("GET /slow") {
                    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                }
                let body = r#"{"ok":true}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

/// The demo config plus a `slow` integration on `addr` that acme and
/// globex may use, and a one-second deadline for globex's runs.
fn with_slow_integration(addr: std::net::SocketAddr) -> String {
    let text = demo_config_text();
    let acme = "allowed_integrations = [\"openai\", \"anthropic\"]";
    assert!(text.contains(acme));
    let globex =
        "allowed_node_types = [\"http_request\", \"transform\"]\n\n[[tenants]]\nid = \"initech\"";
    assert!(text.contains(globex));
    text.replace(
        acme,
        "allowed_integrations = [\"openai\", \"anthropic\", \"slow\"]",
    )
    .replace(
        globex,
        &globex.replace(
            "\n\n[[tenants]]",
            "\nallowed_integrations = [\"slow\"]\nmax_execution_time_secs = 1\n\n[[tenants]]",
        ),
    ) + format!(
        "\n[[integrations]]\nname = \"slow\"\nbase_urls = [\"http://{addr}\"]\nallow_private = true\n"
    )
    .as_str()
}

async fn session(d: &Demo, token: &str) -> String {
    let r = call(d, "POST", "/api/sessions", token, None).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_owned()
}

async fn start_run(d: &Demo, token: &str, session: &str, wf: &str, inputs: Value) -> Resp {
    let body = json!({ "workflow_id": wf, "inputs": inputs });
    call(
        d,
        "POST",
        &format!("/api/sessions/{session}/executions"),
        token,
        Some(body),
    )
    .await
}

fn slow_workflow() -> Value {
    json!({ "name": "slow call", "nodes": [
        {"id": "call", "type": "http_request", "config": {"integration": "slow", "method": "GET", "path": "/slow"}}
    ]})
}

#[tokio::test]
async fn runtime_limits_hold_over_http_and_across_instances() {
    let addr = slow_service().await;
    let text = with_slow_integration(addr);
    for overrides in backends() {
        let a = start_from(&text, "enterprise.toml", &overrides).await;
        // On Redis, a second instance shares runs, sessions and slots.
        let b = if overrides.is_empty() {
            None
        } else {
            Some(start_from(&text, "enterprise.toml", &overrides).await)
        };
        let dave = login(&a, "dave", "Dave-Demo-Passw0rd!", None).await;
        let r = call(&a, "POST", "/api/workflows", &dave, Some(slow_workflow())).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let slow = r.json()["id"].as_str().unwrap().to_owned();
        let sid = session(&a, &dave).await;

        // max_concurrent_workflows.user = 4: four run, the fifth waits.
        let mut runs = Vec::new();
        for _ in 0..4 {
            let r = start_run(&a, &dave, &sid, &slow, json!({})).await;
            assert_eq!(r.status, 202, "{}", r.text());
            runs.push(r.json()["run_id"].as_str().unwrap().to_owned());
        }
        let (other, other_dave) = match &b {
            Some(b) => (b, login(b, "dave", "Dave-Demo-Passw0rd!", None).await),
            None => (&a, dave.clone()),
        };
        let r = start_run(other, &other_dave, &sid, &slow, json!({})).await;
        let p = r.assert_problem(429);
        assert_eq!(
            (p["reason"].as_str(), p["scope"].as_str()),
            (Some("max_concurrent_workflows"), Some("user"))
        );
        assert!(r.header("retry-after").is_some());

        // Cancelled from the other instance, the run ends where it runs,
        // and its slot is free again.
        let r = call(
            other,
            "POST",
            &format!("/api/executions/{}/cancel", runs[0]),
            &other_dave,
            None,
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.text());
        let done = finished(&a, &dave, &runs[0]).await;
        assert_eq!(done["status"], "cancelled", "{done}");
        assert_eq!(done["nodes"][0]["status"], "cancelled");
        let r = start_run(other, &other_dave, &sid, &slow, json!({})).await;
        assert_eq!(r.status, 202, "{}", r.text());
        let moved = r.json()["run_id"].as_str().unwrap().to_owned();

        // bob holds node:transform:execute only: the node is refused.
        let bob = login(&a, "bob", "Bob-Demo-Passw0rd!", None).await;
        let bs = session(&a, &bob).await;
        let r = start_run(&a, &bob, &bs, &slow, json!({})).await;
        assert_eq!(r.status, 202, "{}", r.text());
        let refused = finished(&a, &bob, r.json()["run_id"].as_str().unwrap()).await;
        assert_eq!(refused["status"], "refused", "{refused}");
        assert_eq!(refused["failed_node"], "call");
        assert!(
            refused["reason"]
                .as_str()
                .unwrap()
                .contains("node:http_request:execute")
        );

        // globex runs its own transform workflows (llm is not among its
        // node types: refused at creation, naming the node).
        let carol = login(&a, "carol", "Carol-Demo-Passw0rd!", None).await;
        let r = call(&a, "POST", "/api/workflows", &carol, Some(order_workflow())).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let mapped = r.json()["id"].as_str().unwrap().to_owned();
        let cs = session(&a, &carol).await;
        let r = start_run(&a, &carol, &cs, &mapped, json!({"order": {"qty": 2}})).await;
        let done = finished(&a, &carol, r.json()["run_id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "completed", "{done}");
        let r = call(
            &a,
            "POST",
            "/api/workflows",
            &carol,
            Some(json!({"name": "ai", "nodes": [
                {"id": "ask", "type": "llm", "config": {"integration": "openai", "model": "m"}}
            ]})),
        )
        .await;
        assert_eq!(r.assert_problem(403)["node"], "ask");

        // globex's own deadline (1 s) times the run out.
        let r = call(&a, "POST", "/api/workflows", &carol, Some(slow_workflow())).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let theirs = r.json()["id"].as_str().unwrap().to_owned();
        let r = start_run(&a, &carol, &cs, &theirs, json!({})).await;
        let timed = finished(&a, &carol, r.json()["run_id"].as_str().unwrap()).await;
        assert_eq!(timed["status"], "timed_out", "{timed}");

        // An llm node on a provider without a key fails, saying which.
        let ask = json!({ "name": "ask", "inputs": ["prompt"], "nodes": [
            {"id": "ask", "type": "llm", "config": {"integration": "openai", "model": "gpt-4o-mini"}}
        ], "connections": [{"from": {"input": "prompt"}, "to": {"node": "ask", "input": "prompt"}}] });
        let r = call(&a, "POST", "/api/workflows", &dave, Some(ask)).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let ask = r.json()["id"].as_str().unwrap().to_owned();
        // (A slot is free: four of dave's runs are in flight.)
        let r = call(
            &a,
            "POST",
            &format!("/api/executions/{moved}/cancel"),
            &dave,
            None,
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.text());
        finished(&a, &dave, &moved).await;
        let r = start_run(&a, &dave, &sid, &ask, json!({"prompt": "hi"})).await;
        assert_eq!(r.status, 202, "{}", r.text());
        let failed = finished(&a, &dave, r.json()["run_id"].as_str().unwrap()).await;
        assert_eq!(
            (failed["status"].as_str(), failed["failed_node"].as_str()),
            (Some("failed"), Some("ask")),
            "{failed}"
        );
        if std::env::var_os("OPENAI_API_KEY").is_none() {
            assert!(
                failed["reason"]
                    .as_str()
                    .unwrap()
                    .contains("OPENAI_API_KEY"),
                "{failed}"
            );
        }

        // Stopping an instance ends its runs in flight as `abandoned`; the
        // other instance reads them so.
        let Demo { gw, data_dir, .. } = a;
        gw.stop().await;
        std::fs::remove_dir_all(&data_dir).ok();
        if let Some(b) = b {
            let left = call(
                &b,
                "GET",
                &format!("/api/executions/{}", runs[1]),
                &other_dave,
                None,
            )
            .await;
            assert_eq!(left.json()["status"], "abandoned", "{}", left.text());
            assert!(
                left.json()["reason"]
                    .as_str()
                    .unwrap()
                    .contains("shut down")
            );
            b.stop().await;
        }
    }
}

/// The reference deployment's whole document: derived, enforceable, and
/// honest about errors (each crate's routes are tested by the crate; this
/// checks what they add up to, as a client sees it).
#[tokio::test]
async fn the_reference_document_is_complete_and_enforceable() {
    let d = demo(&[]).await;
    let r = request(d.gw.addr, "GET /openapi.json HTTP/1.1\nHost: x", b"").await;
    assert_eq!(r.status, 200);
    let json = r.json();
    kailash::schema::check_document_json(&json).unwrap();

    let mut operation_ids = std::collections::BTreeSet::new();
    let mut count = 0;
    for (path, item) in json["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            count += 1;
            let at = format!("{method} {path}");
            if path == "/events" || path == "/ws" {
                // Outside the tenancy layer: no X-Tenant-ID.
                assert!(
                    !op["parameters"].to_string().contains("X-Tenant-ID"),
                    "{at}: documents a header it does not read"
                );
            }
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{at}: operationId"));
            assert!(
                operation_ids.insert(id.to_owned()),
                "{at}: duplicate operationId {id}"
            );
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|c| c.starts_with('2') || c == "101"),
                "{at}: a success response"
            );
            for code in ["429", "503", "504"] {
                assert!(responses.contains_key(code), "{at}: {code}");
            }
            for (code, response) in responses {
                if code.starts_with('4') {
                    let problem = &response["content"]["application/problem+json"]["schema"];
                    assert_eq!(
                        problem["$ref"], "#/components/schemas/Problem",
                        "{at} {code}: a problem+json Problem"
                    );
                }
            }
            if op.get("requestBody").is_some() {
                for code in ["413", "415", "422"] {
                    assert!(responses.contains_key(code), "{at}: {code} for a body");
                }
            }
            // A header, query or path value is text: never JSON null.
            for p in op["parameters"].as_array().into_iter().flatten() {
                let ty = &p["schema"]["type"];
                assert!(
                    !(ty == "null" || ty.as_array().is_some_and(|a| a.contains(&json!("null")))),
                    "{at}: parameter {} is nullable",
                    p["name"]
                );
            }
            let secured = op["security"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|r| r.as_object().is_some_and(|m| !m.is_empty()))
            });
            // (A WebSocket refuses a credential after the upgrade, with
            // close code 4001, not 401.)
            if secured && path != "/ws" {
                assert!(responses.contains_key("401"), "{at}: 401");
            }
            // No placeholder schemas: a JSON body names its shape (the
            // document itself is the one free-form object).
            for (code, response) in responses.iter().filter(|_| path != "/openapi.json") {
                if let Some(schema) = response["content"]["application/json"].get("schema") {
                    assert_ne!(
                        schema,
                        &json!({ "type": "object" }),
                        "{at} {code}: a bare object"
                    );
                }
            }
        }
    }
    assert!(count >= 30, "{count} operations");
    d.stop().await;
}

/// `[cache]` on: `GET /api/reports` is answered from the cache for 5 s
/// per caller, inside its permission check — every hit is still decided
/// and audited, and a logout stops it at once. Off (the demo's default):
/// the reports carry no freshness at all.
#[tokio::test]
async fn reports_are_cached_per_caller_inside_the_permission_check() {
    let off = demo(&[]).await;
    let bob = login(&off, "bob", "Bob-Demo-Passw0rd!", None).await;
    let r = call(&off, "GET", "/api/reports", &bob, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), None, "the demo's behaviour kept");
    assert_eq!(r.header("x-cache"), None);
    off.stop().await;

    for mut overrides in backends() {
        overrides.push(("KAILASH_CACHE__ENABLED", "true".into()));
        overrides.push(("KAILASH_CACHE__X_CACHE_HEADER", "true".into()));
        let d = demo(&overrides).await;
        let bob = login(&d, "bob", "Bob-Demo-Passw0rd!", None).await;
        let carol = login(&d, "carol", "Carol-Demo-Passw0rd!", None).await;
        const ALLOWED: &str =
            r#"kailash_access_decisions_total{permission="report:view",effect="allow"}"#;
        const HITS: &str = r#"kailash_cache_requests_total{outcome="hit"}"#;
        let scrape = |d: &Demo| {
            let addr = d.gw.addr;
            async move { support::get(addr, "/metrics").await.text() }
        };
        let first = call(&d, "GET", "/api/reports", &bob, None).await;
        assert_eq!(first.status, 200, "{}", first.text());
        assert_eq!(first.header("cache-control"), Some("private, max-age=5"));
        assert_eq!(first.header("x-cache"), Some("miss"));
        let before = scrape(&d).await;
        let hit = call(&d, "GET", "/api/reports", &bob, None).await;
        assert_eq!(hit.header("x-cache"), Some("hit"));
        assert_eq!(hit.text(), first.text());
        let after = scrape(&d).await;
        assert_eq!(
            support::sample(&after, ALLOWED) - support::sample(&before, ALLOWED),
            1.0,
            "a hit is still decided"
        );
        assert_eq!(
            support::sample(&after, HITS) - support::sample(&before, HITS),
            1.0
        );
        // A caller without report:view is refused before the cache.
        let refused = call(&d, "GET", "/api/reports", &carol, None).await;
        refused.assert_problem(403);
        assert_eq!(refused.header("x-cache"), None);
        // A logout stops it at once.
        assert_eq!(
            call(&d, "POST", "/auth/logout", &bob, None).await.status,
            204
        );
        let after = call(&d, "GET", "/api/reports", &bob, None).await;
        after.assert_problem(401);
        d.stop().await;
    }
}
