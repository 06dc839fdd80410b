//! Decisions of the demo policy (DEMO.md's roles and ABAC policies) and of
//! each strategy; load-time refusals; reloads.

use std::sync::Arc;

use jiff::Timestamp;
use kailash_access::condition::Attributes;
use kailash_access::permission::Permission;
use kailash_access::spec::{AccessSpec, Strategy};
use kailash_access::{AccessControl, AccessError, AccessPolicy, AccessRequest, StepKind};
use kailash_core::audit::{AuditDecision, MemoryAuditSink};
use kailash_core::{AttributeValue, Principal, TenantId};

fn demo_spec() -> AccessSpec {
    serde_json::from_str(include_str!("fixtures/demo.json")).unwrap()
}

async fn demo() -> AccessPolicy {
    AccessPolicy::load(&demo_spec()).await.unwrap()
}

fn user(
    name: &str,
    tenant: &str,
    role: &str,
    dept: &str,
    clearance: &str,
    country: &str,
) -> Principal {
    let location: AttributeValue = AttributeValue::Map(
        [("country".to_owned(), country.into())]
            .into_iter()
            .collect(),
    );
    Principal::builder(name)
        .tenant(TenantId::new(tenant).unwrap())
        .role(role)
        .attribute("department", dept)
        .attribute("clearance", clearance)
        .attribute("location", location)
        .build()
}

fn dave() -> Principal {
    user(
        "dave",
        "acme",
        "data_scientist",
        "engineering",
        "confidential",
        "GB",
    )
}
fn frank() -> Principal {
    user(
        "frank",
        "acme",
        "data_scientist",
        "engineering",
        "confidential",
        "FR",
    )
}
fn bob() -> Principal {
    user("bob", "acme", "business_user", "sales", "internal", "CA")
}
fn alice() -> Principal {
    user("alice", "acme", "admin", "engineering", "secret", "US")
}

fn doc(dept: &str, class: &str) -> Attributes {
    let mut a = Attributes::new();
    a.insert("department".into(), dept.into());
    a.insert("classification".into(), class.into());
    a
}

fn perm(p: &str) -> Permission {
    Permission::parse(p).unwrap()
}

/// Tuesday 2026-12-01 at `hour`:00 UTC.
fn at(hour: i8) -> Timestamp {
    jiff::tz::TimeZone::UTC
        .to_timestamp(jiff::civil::date(2026, 12, 1).at(hour, 0, 0, 0))
        .unwrap()
}

#[tokio::test]
async fn dave_reads_confidential_engineering_data_but_not_secret() {
    let policy = demo().await;
    let read = perm("data:read");
    let d = dave();
    let conf = doc("engineering", "confidential");
    let secret = doc("engineering", "secret");
    let yes = policy.decide(&AccessRequest::new(&d, &read, at(10)).resource(&conf));
    assert!(yes.allowed, "{yes:?}");
    assert_eq!(
        yes.rule,
        "role `data_scientist` grants `data:read`; policy `data_access` holds; policy `geo_restriction` holds"
    );
    let no = policy.decide(&AccessRequest::new(&d, &read, at(10)).resource(&secret));
    assert!(!no.allowed);
    assert_eq!(no.rule, "policy `data_access` not satisfied");
    // Another department's document.
    let sales = doc("sales", "internal");
    assert!(
        !policy
            .decide(&AccessRequest::new(&d, &read, at(10)).resource(&sales))
            .allowed
    );
}

#[tokio::test]
async fn frank_in_france_reads_nothing() {
    let policy = demo().await;
    let read = perm("data:read");
    let f = frank();
    for class in ["confidential", "secret", "public"] {
        let a = doc("engineering", class);
        let d = policy.decide(&AccessRequest::new(&f, &read, at(10)).resource(&a));
        assert!(!d.allowed);
    }
    let a = doc("engineering", "public");
    let d = policy.decide(&AccessRequest::new(&f, &read, at(10)).resource(&a));
    assert_eq!(d.rule, "policy `geo_restriction` not satisfied");
}

#[tokio::test]
async fn rbac_grants_follow_the_demo_roles() {
    let policy = demo().await;
    let now = at(10);
    let cases = [
        (bob(), "workflow:create", false),
        (bob(), "workflow:execute", true),
        (bob(), "report:view", true),
        (bob(), "data:read", false),
        (dave(), "workflow:create", true),
        (dave(), "model:train", true),
        (dave(), "audit:view", false),
        (alice(), "audit:view", true),
        (alice(), "workflow:delete", true),
        (alice(), "data:read", false),
    ];
    for (p, wanted, expected) in cases {
        let w = perm(wanted);
        let d = policy.decide(&AccessRequest::new(&p, &w, now));
        assert_eq!(d.allowed, expected, "{} {wanted}: {}", p.subject(), d.rule);
    }
    let d = policy.decide(&AccessRequest::new(&bob(), &perm("workflow:create"), now));
    assert_eq!(d.rule, "no role grants `workflow:create`");
}

#[tokio::test]
async fn system_configure_only_in_office_hours_on_weekdays() {
    let policy = demo().await;
    let configure = perm("system:configure");
    let a = alice();
    assert!(
        policy
            .decide(&AccessRequest::new(&a, &configure, at(9)))
            .allowed
    );
    assert!(
        policy
            .decide(&AccessRequest::new(&a, &configure, at(17)))
            .allowed
    );
    assert!(
        !policy
            .decide(&AccessRequest::new(&a, &configure, at(18)))
            .allowed
    );
    assert!(
        !policy
            .decide(&AccessRequest::new(&a, &configure, at(8)))
            .allowed
    );
    // Saturday 2026-12-05, noon.
    let saturday = at(12)
        .checked_add(jiff::SignedDuration::from_hours(4 * 24))
        .unwrap();
    assert!(
        !policy
            .decide(&AccessRequest::new(&a, &configure, saturday))
            .allowed
    );
}

#[tokio::test]
async fn the_time_zone_moves_office_hours() {
    let mut spec = demo_spec();
    spec.time_zone = "America/New_York".into();
    let policy = match AccessPolicy::load(&spec).await {
        Ok(p) => p,
        Err(AccessError::TimeZone(_)) => {
            eprintln!("skipped: this machine has no zoneinfo for America/New_York");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let configure = perm("system:configure");
    // 10:00 UTC is 05:00 in New York: closed; 15:00 UTC is 10:00: open.
    assert!(
        !policy
            .decide(&AccessRequest::new(&alice(), &configure, at(10)))
            .allowed
    );
    assert!(
        policy
            .decide(&AccessRequest::new(&alice(), &configure, at(15)))
            .allowed
    );
}

#[tokio::test]
async fn missing_or_mistyped_attributes_deny_with_the_reason() {
    let policy = demo().await;
    let read = perm("data:read");
    let d = dave();
    // No resource at all.
    let no = policy.decide(&AccessRequest::new(&d, &read, at(10)));
    assert!(!no.allowed);
    assert!(
        no.rule.contains("missing attribute `data.department`"),
        "{}",
        no.rule
    );
    // A classification that is not a label.
    let bad = doc("engineering", "top-secret");
    let no = policy.decide(&AccessRequest::new(&d, &read, at(10)).resource(&bad));
    assert!(!no.allowed);
    assert!(
        no.rule.contains("not a classification label"),
        "{}",
        no.rule
    );
    // A number where a string is expected.
    let mut odd = doc("engineering", "internal");
    odd.insert("department".into(), AttributeValue::Int(7));
    let no = policy.decide(&AccessRequest::new(&d, &read, at(10)).resource(&odd));
    assert!(!no.allowed, "{}", no.rule);
    // A principal without the attributes the policies read.
    let bare = Principal::builder("x")
        .tenant(TenantId::new("acme").unwrap())
        .role("data_scientist")
        .build();
    let a = doc("engineering", "public");
    assert!(
        !policy
            .decide(&AccessRequest::new(&bare, &read, at(10)).resource(&a))
            .allowed
    );
}

#[tokio::test]
async fn unknown_roles_grant_nothing() {
    let policy = demo().await;
    let p = Principal::builder("mallory")
        .role("superuser")
        .role("ADMIN")
        .build();
    let d = policy.decide(&AccessRequest::new(&p, &perm("audit:view"), at(10)));
    assert!(!d.allowed);
    assert!(!policy.has_role("superuser"));
    let e = policy.explain(&AccessRequest::new(&p, &perm("audit:view"), at(10)));
    assert!(e.steps.iter().all(|s| s.outcome == "unknown role"));
}

#[tokio::test]
async fn a_deferred_check_leaves_data_policies_to_the_handler() {
    let policy = demo().await;
    let read = perm("data:read");
    let d = policy.decide(&AccessRequest::new(&dave(), &read, at(10)).defer_resource());
    assert!(d.allowed);
    assert_eq!(&*d.pending[0], "data_access");
    // Geography does not depend on the resource: decided at the route.
    let f = policy.decide(&AccessRequest::new(&frank(), &read, at(10)).defer_resource());
    assert!(!f.allowed);
    assert!(policy.needs_resource(&read));
    assert!(!policy.needs_resource(&perm("report:view")));
}

async fn spec_with(json: &str) -> Result<AccessPolicy, AccessError> {
    let spec: AccessSpec = serde_json::from_str(json).unwrap();
    AccessPolicy::load(&spec).await
}

#[tokio::test]
async fn deny_overrides_allow_across_roles_and_inheritance() {
    let policy = spec_with(
        r#"{ "roles": [
            { "name": "base", "permissions": ["report:*"] },
            { "name": "contractor", "permissions": [], "deny": ["report:export"] },
            { "name": "manager", "permissions": ["*"], "inherits": ["base"] },
            { "name": "temp_manager", "inherits": ["manager", "contractor"] }
        ] }"#,
    )
    .await
    .unwrap();
    let now = at(10);
    let export = perm("report:export");
    let manager = Principal::builder("m").role("manager").build();
    assert!(
        policy
            .decide(&AccessRequest::new(&manager, &export, now))
            .allowed
    );
    let both = Principal::builder("c")
        .role("manager")
        .role("contractor")
        .build();
    let d = policy.decide(&AccessRequest::new(&both, &export, now));
    assert!(!d.allowed);
    assert_eq!(d.rule, "role `contractor` denies `report:export`");
    let temp = Principal::builder("t").role("temp_manager").build();
    assert!(
        !policy
            .decide(&AccessRequest::new(&temp, &export, now))
            .allowed
    );
    assert!(
        policy
            .decide(&AccessRequest::new(&temp, &perm("report:view"), now))
            .allowed
    );
    assert!(
        policy
            .decide(&AccessRequest::new(&temp, &perm("anything:else"), now))
            .allowed
    );
}

#[tokio::test]
async fn roles_restricted_to_tenants_and_per_tenant_grants() {
    let policy = spec_with(
        r#"{ "roles": [
            { "name": "auditor", "permissions": ["audit:view"], "tenants": ["globex"] },
            { "name": "viewer", "permissions": ["report:view"] }
        ],
        "grants": [ { "tenant": "acme", "subject": "carol", "roles": ["viewer"] } ] }"#,
    )
    .await
    .unwrap();
    let now = at(10);
    let in_tenant = |t: &str, name: &str, role: Option<&str>| {
        let mut b = Principal::builder(name).tenant(TenantId::new(t).unwrap());
        if let Some(r) = role {
            b = b.role(r);
        }
        b.build()
    };
    let audit = perm("audit:view");
    assert!(
        policy
            .decide(&AccessRequest::new(
                &in_tenant("globex", "g", Some("auditor")),
                &audit,
                now
            ))
            .allowed
    );
    assert!(
        !policy
            .decide(&AccessRequest::new(
                &in_tenant("acme", "a", Some("auditor")),
                &audit,
                now
            ))
            .allowed
    );
    let view = perm("report:view");
    assert!(
        policy
            .decide(&AccessRequest::new(
                &in_tenant("acme", "carol", None),
                &view,
                now
            ))
            .allowed
    );
    assert!(
        !policy
            .decide(&AccessRequest::new(
                &in_tenant("globex", "carol", None),
                &view,
                now
            ))
            .allowed
    );
    // casbin agrees.
    let acme = TenantId::new("acme").unwrap();
    assert!(policy.casbin_enforce("carol", Some(&acme), &view).unwrap());
    assert!(
        !policy
            .casbin_enforce("carol", Some(&TenantId::new("globex").unwrap()), &view)
            .unwrap()
    );
}

#[tokio::test]
async fn the_abac_strategy_needs_a_policy_and_ignores_roles() {
    let mut spec = demo_spec();
    spec.strategy = Strategy::Abac;
    let policy = AccessPolicy::load(&spec).await.unwrap();
    let now = at(10);
    // No policy applies to report:view: denied even for a role that has it.
    let d = policy.decide(&AccessRequest::new(&bob(), &perm("report:view"), now));
    assert!(!d.allowed);
    assert_eq!(d.rule, "no policy grants `report:view`");
    // bob has no data:read role, but the policies alone decide.
    let mut sales = doc("sales", "internal");
    assert!(
        policy
            .decide(&AccessRequest::new(&bob(), &perm("data:read"), now).resource(&sales))
            .allowed
    );
    sales.insert("classification".into(), "secret".into());
    assert!(
        !policy
            .decide(&AccessRequest::new(&bob(), &perm("data:read"), now).resource(&sales))
            .allowed
    );
}

#[tokio::test]
async fn the_rbac_strategy_ignores_policies() {
    let mut spec = demo_spec();
    spec.strategy = Strategy::Rbac;
    let policy = AccessPolicy::load(&spec).await.unwrap();
    let d = policy.decide(&AccessRequest::new(&frank(), &perm("data:read"), at(10)));
    assert!(d.allowed);
    assert!(!policy.needs_resource(&perm("data:read")));
}

#[tokio::test]
async fn deny_policies_deny_while_they_hold_and_when_they_cannot_be_evaluated() {
    let policy = spec_with(
        r#"{ "attributes": { "data.locked": "bool" },
            "roles": [ { "name": "editor", "permissions": ["doc:*"] } ],
            "policies": [ { "name": "locked", "condition": "data.locked", "applies_to": ["doc:write"], "effect": "deny" } ] }"#,
    )
    .await
    .unwrap();
    let e = Principal::builder("e").role("editor").build();
    let write = perm("doc:write");
    let mut data = Attributes::new();
    data.insert("locked".into(), true.into());
    let d = policy.decide(&AccessRequest::new(&e, &write, at(10)).resource(&data));
    assert_eq!(
        (d.allowed, d.rule.as_str()),
        (false, "deny policy `locked` holds")
    );
    data.insert("locked".into(), false.into());
    assert!(
        policy
            .decide(&AccessRequest::new(&e, &write, at(10)).resource(&data))
            .allowed
    );
    let d = policy.decide(&AccessRequest::new(&e, &write, at(10)));
    assert!(!d.allowed, "an unevaluable deny policy must deny");
    assert!(
        policy
            .decide(&AccessRequest::new(&e, &perm("doc:read"), at(10)))
            .allowed
    );
}

#[tokio::test]
async fn client_ip_conditions_use_cidr() {
    let policy = spec_with(
        r#"{ "roles": [ { "name": "ops", "permissions": ["system:*"] } ],
            "policies": [ { "name": "office", "condition": "request.client_ip IN CIDR ['10.0.0.0/8', 'fd00::/8']", "applies_to": ["system:*"] } ] }"#,
    )
    .await
    .unwrap();
    let ops = Principal::builder("o").role("ops").build();
    let p = perm("system:restart");
    let inside = AccessRequest::new(&ops, &p, at(10)).client_ip("10.1.2.3".parse().unwrap());
    assert!(policy.decide(&inside).allowed);
    let outside = AccessRequest::new(&ops, &p, at(10)).client_ip("192.0.2.1".parse().unwrap());
    assert!(!policy.decide(&outside).allowed);
    // No client IP known: deny.
    assert!(!policy.decide(&AccessRequest::new(&ops, &p, at(10))).allowed);
}

#[tokio::test]
async fn broken_specs_are_refused_with_what_and_where() {
    let cases = [
        (
            r#"{ "roles": [ { "name": "a", "inherits": ["ghost"] } ] }"#,
            "role `a`: inherits `ghost`, which is not defined",
        ),
        (
            r#"{ "roles": [ { "name": "a", "inherits": ["b"] }, { "name": "b", "inherits": ["a"] } ] }"#,
            "inheritance cycle: a -> b -> a",
        ),
        (
            r#"{ "roles": [ { "name": "a" }, { "name": "a" } ] }"#,
            "role `a`: defined more than once",
        ),
        (
            r#"{ "roles": [ { "name": "bad role" } ] }"#,
            "role `bad role`",
        ),
        (
            r#"{ "roles": [ { "name": "a", "tenants": [] } ] }"#,
            "`tenants` is empty",
        ),
        (
            r#"{ "policies": [ { "name": "p", "condition": "user.clearance >= 3", "applies_to": ["x:y"] } ] }"#,
            "policy `p`: condition line 1, column 1",
        ),
        (
            r#"{ "attributes": { "user.clearance": "classification" }, "policies": [ { "name": "p", "condition": "user.clearance >=\n 'top'", "applies_to": ["x:y"] } ] }"#,
            "line 2, column 2",
        ),
        (
            r#"{ "policies": [ { "name": "p", "condition": "true", "applies_to": [] } ] }"#,
            "`applies_to` names no permission",
        ),
        (
            r#"{ "policies": [ { "name": "p", "condition": "true", "applies_to": ["x:y"] }, { "name": "p", "condition": "true", "applies_to": ["x:y"] } ] }"#,
            "policy `p`: defined more than once",
        ),
        (
            r#"{ "grants": [ { "tenant": "acme", "subject": "carol", "roles": ["ghost"] } ] }"#,
            "role `ghost` is not defined",
        ),
        (
            r#"{ "attributes": { "request.x": "string" } }"#,
            "attribute `request.x`",
        ),
        (
            r#"{ "time_zone": "Mars/Olympus_Mons" }"#,
            "Mars/Olympus_Mons",
        ),
    ];
    for (json, wanted) in cases {
        let err = spec_with(json).await.unwrap_err().to_string();
        assert!(
            err.contains(wanted),
            "{json}\n  gave: {err}\n  wanted: {wanted}"
        );
    }
    // Bad permission text is refused when the spec is read.
    let err = serde_json::from_str::<AccessSpec>(
        r#"{ "roles": [ { "name": "a", "permissions": ["Data:Read"] } ] }"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("Data:Read"), "{err}");
}

#[tokio::test]
async fn a_reload_swaps_atomically_and_a_broken_one_keeps_the_old_policy() {
    let audit = Arc::new(MemoryAuditSink::new());
    let access = AccessControl::new(demo().await).audit(audit.clone());
    let b = bob();
    let create = perm("workflow:create");
    assert!(
        !access
            .decide(&AccessRequest::new(&b, &create, at(10)))
            .allowed
    );

    let mut spec = demo_spec();
    spec.roles[2].permissions.push(perm("workflow:create"));
    access.reload(&spec).await.unwrap();
    assert!(
        access
            .decide(&AccessRequest::new(&b, &create, at(10)))
            .allowed
    );

    let mut broken = spec.clone();
    broken.policies[0].condition = "user.department == ".into();
    let err = access.reload(&broken).await.unwrap_err();
    assert!(matches!(err, AccessError::Condition { ref policy, .. } if policy == "data_access"));
    assert!(
        access
            .decide(&AccessRequest::new(&b, &create, at(10)))
            .allowed,
        "old policy stays"
    );

    // Checks running while policies are swapped see one whole policy each.
    let (old_spec, new_spec) = (demo_spec(), spec);
    let swapper = {
        let access = access.clone();
        tokio::spawn(async move {
            for i in 0..50 {
                let s = if i % 2 == 0 { &old_spec } else { &new_spec };
                access.reload(s).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    for _ in 0..2000 {
        let d = access.decide(&AccessRequest::new(&b, &create, at(10)));
        let expected = if d.allowed {
            "role `business_user` grants `workflow:create`"
        } else {
            "no role grants `workflow:create`"
        };
        assert_eq!(d.rule, expected);
        tokio::task::yield_now().await;
    }
    swapper.await.unwrap();
}

#[tokio::test]
async fn checks_are_audited_with_the_rule_and_explained() {
    let audit = Arc::new(MemoryAuditSink::new());
    let access = AccessControl::new(demo().await).audit(audit.clone());
    let read = perm("data:read");
    let secret = doc("engineering", "secret");
    let d = access
        .check(&dave(), &read, Some(("acme-eng-secret", &secret)), None)
        .await
        .unwrap();
    assert!(!d.allowed);
    let events = audit.events();
    let e = events.last().unwrap();
    assert_eq!(e.action, "access.check");
    assert_eq!(e.decision, AuditDecision::Deny);
    assert_eq!(e.actor.as_deref(), Some("dave"));
    assert_eq!(e.tenant.as_ref().map(TenantId::as_str), Some("acme"));
    assert_eq!(e.resource.as_deref(), Some("data:read acme-eng-secret"));
    assert_eq!(
        e.reason.as_deref(),
        Some("policy `data_access` not satisfied")
    );

    let x = access.explain(&access.request(&frank(), &read, None).resource(&secret));
    assert!(!x.decision.allowed);
    let outcome = |name: &str| {
        x.steps
            .iter()
            .find(|s| s.name == name)
            .map(|s| (s.kind, s.outcome.clone()))
            .unwrap()
    };
    assert_eq!(outcome("data_scientist"), (StepKind::Role, "grants".into()));
    assert_eq!(
        outcome("data_access"),
        (StepKind::Policy, "not satisfied".into())
    );
    assert_eq!(
        outcome("geo_restriction"),
        (StepKind::Policy, "not satisfied".into())
    );
    let json = serde_json::to_value(&x).unwrap();
    assert_eq!(json["strategy"], "hybrid");

    // Each comparison of each policy, evaluated on its own, with values.
    let step = |name: &str| x.steps.iter().find(|s| s.name == name).unwrap().clone();
    let access_step = step("data_access");
    assert_eq!(
        access_step.condition.as_deref(),
        Some("user.department == data.department AND user.clearance >= data.classification")
    );
    let c = &access_step.clauses;
    assert_eq!(c.len(), 2);
    assert_eq!(
        (c[0].test.as_str(), c[0].outcome.as_str()),
        ("user.department == data.department", "holds")
    );
    assert_eq!(
        c[0].values.as_deref(),
        Some("'engineering' == 'engineering'")
    );
    assert_eq!(
        (c[1].test.as_str(), c[1].outcome.as_str()),
        ("user.clearance >= data.classification", "fails")
    );
    assert_eq!(c[1].values.as_deref(), Some("'confidential' >= 'secret'"));
    let geo = step("geo_restriction");
    assert_eq!(geo.clauses[0].outcome, "fails");
    assert_eq!(
        geo.clauses[0].values.as_deref(),
        Some("'FR' IN ['US', 'CA', 'GB']")
    );
    assert!(step("data_scientist").clauses.is_empty());
    // Without the resource, the comparisons reading data.* say why they
    // cannot be evaluated.
    let x = access.explain(&access.request(&dave(), &read, None));
    let c = &x
        .steps
        .iter()
        .find(|s| s.name == "data_access")
        .unwrap()
        .clauses;
    assert_eq!(c[0].values, None);
    assert_eq!(
        c[0].outcome,
        "cannot be evaluated: missing attribute `data.department`"
    );
    // The text form: the verdict with the audited rule, then each step.
    let text = x.to_string();
    assert!(
        text.starts_with("deny: policy `data_access`: missing attribute `data.department`\n"),
        "{text}"
    );
    assert!(text.contains("  role `data_scientist`: grants\n"), "{text}");
}

#[tokio::test]
async fn limits_are_the_most_generous_of_the_roles() {
    let policy = demo().await;
    let l = policy.limits_for(&dave());
    assert_eq!(
        (l.max_workflows, l.max_executions_per_hour),
        (Some(20), Some(100))
    );
    let both = Principal::builder("x")
        .role("business_user")
        .role("data_scientist")
        .build();
    assert_eq!(policy.limits_for(&both).max_workflows, Some(20));
    let none = Principal::builder("y").role("ghost").build();
    assert_eq!(policy.limits_for(&none).max_workflows, None);
}

#[tokio::test]
async fn a_tenant_restricted_role_inherits_and_limits_only_in_its_tenants() {
    let policy = spec_with(
        r#"{ "roles": [
            { "name": "reader", "permissions": ["report:view"] },
            { "name": "acme_lead", "inherits": ["reader"], "permissions": ["workflow:create"],
              "tenants": ["acme"], "max_workflows": 50 },
            { "name": "member", "max_workflows": 5 }
        ] }"#,
    )
    .await
    .unwrap();
    let now = at(10);
    let lead = |tenant: &str| {
        Principal::builder("l")
            .tenant(TenantId::new(tenant).unwrap())
            .role("acme_lead")
            .role("member")
            .build()
    };
    let (acme, globex) = (lead("acme"), lead("globex"));
    let view = perm("report:view");
    assert!(
        policy
            .decide(&AccessRequest::new(&acme, &view, now))
            .allowed
    );
    assert!(
        !policy
            .decide(&AccessRequest::new(&globex, &view, now))
            .allowed,
        "inherited grants stay in the role's tenants"
    );
    assert!(
        !policy
            .decide(&AccessRequest::new(&globex, &perm("workflow:create"), now))
            .allowed
    );
    assert!(policy.casbin_enforce("x", None, &view).is_ok());
    assert_eq!(policy.limits_for(&acme).max_workflows, Some(50));
    assert_eq!(policy.limits_for(&globex).max_workflows, Some(5));
}
