//! Authorization decision latency of peer engines on the kailash-access demo
//! policies: raw casbin 2.20 (rhai matchers, `MemoryAdapter`) and
//! cedar-policy 4 (`Authorizer::is_authorized`).
//!
//! ```text
//! cd benches/peers && cargo bench --bench access_peers
//! ```
//!
//! # The demo policies, as each engine is given them
//!
//! Roles (RBAC, granted in every tenant):
//! - admin: workflow:create, workflow:execute, workflow:delete, user:manage,
//!   system:configure, audit:view
//! - data_scientist: workflow:create, workflow:execute, data:read, model:train
//! - business_user: workflow:execute, report:view
//!
//! Conditions bound to permissions (hybrid = role grant AND every bound
//! condition; default deny):
//! - data_access (data:read): user.department == data.department AND
//!   user.clearance >= data.classification, with the classification order
//!   public < internal < confidential < secret encoded as ranks 0..=3
//!   ([`rank`]) in both engines;
//! - geo_restriction (data:read): user.location.country IN ['US','CA','GB'];
//! - time_based (system:configure): 9 <= hour <= 17 AND weekday < 5, with
//!   weekday 0 = Monday .. 6 = Sunday (ISO order minus one, as Python's
//!   `datetime.weekday()`), hour 0..=23; the clock is passed in the request
//!   (casbin: the `env` request argument; cedar: `context.current_time`).
//!
//! What is inside each timed loop: only the engine's decision call on a
//! request whose arguments were built before the loop (casbin:
//! `Enforcer::enforce` on a tuple of references, so casbin's own conversion of
//! the arguments to rhai values is timed; cedar: `Authorizer::is_authorized`
//! on a prebuilt `Request`). The one exception is `hybrid/cedar_entities_per_request`,
//! which also builds the request's `Entities` (principal, its roles, resource)
//! from plain Rust values on every iteration.
//!
//! Every bench asserts its expected decision once before it is timed.
//!
//! ---------------------------------------------------------------------------
//! kailash-access runs in the same process and group (`*/kailash`): the
//! demo policy of `crates/kailash-access/tests/fixtures/demo.json` loaded
//! with strategy `rbac`, `abac` and `hybrid`, timed on
//! `AccessPolicy::decide` with the request and the document's attributes
//! built before the loop (classifications as labels, ordered by the
//! condition language itself).
//! ---------------------------------------------------------------------------

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::str::FromStr;
use std::time::Duration;

use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi};
use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityUid, PolicySet, Request,
    RestrictedExpression,
};
use criterion::{Criterion, criterion_group, criterion_main};
use serde::Serialize;

// ---------------------------------------------------------------------------
// The demo data, shared by both engines.
// ---------------------------------------------------------------------------

const TENANT: &str = "acme";

/// (role, permissions "resource:action").
const ROLES: &[(&str, &[&str])] = &[
    (
        "admin",
        &[
            "workflow:create",
            "workflow:execute",
            "workflow:delete",
            "user:manage",
            "system:configure",
            "audit:view",
        ],
    ),
    (
        "data_scientist",
        &[
            "workflow:create",
            "workflow:execute",
            "data:read",
            "model:train",
        ],
    ),
    ("business_user", &["workflow:execute", "report:view"]),
];

/// Classification / clearance rank: public < internal < confidential < secret.
fn rank(level: &str) -> i32 {
    match level {
        "public" => 0,
        "internal" => 1,
        "confidential" => 2,
        "secret" => 3,
        other => panic!("unknown classification {other}"),
    }
}

struct DemoUser {
    id: &'static str,
    tenant: &'static str,
    role: &'static str,
    department: &'static str,
    clearance: &'static str,
    country: &'static str,
}

const DAVE: DemoUser = DemoUser {
    id: "dave",
    tenant: TENANT,
    role: "data_scientist",
    department: "engineering",
    clearance: "confidential",
    country: "GB",
};
const FRANK: DemoUser = DemoUser {
    id: "frank",
    country: "FR",
    ..DAVE
};
const BOB: DemoUser = DemoUser {
    id: "bob",
    tenant: TENANT,
    role: "business_user",
    department: "sales",
    clearance: "internal",
    country: "CA",
};
/// Not one of the demo users and never timed: an admin used only by the
/// one-off sanity checks, so that the time_based condition is exercised.
const ALICE: DemoUser = DemoUser {
    id: "alice",
    tenant: TENANT,
    role: "admin",
    department: "it",
    clearance: "secret",
    country: "US",
};
const USERS: [&DemoUser; 4] = [&DAVE, &FRANK, &BOB, &ALICE];

struct DemoDoc {
    id: &'static str,
    tenant: &'static str,
    department: &'static str,
    classification: &'static str,
}

const ACME_ENG_CONF: DemoDoc = DemoDoc {
    id: "acme-eng-conf",
    tenant: TENANT,
    department: "engineering",
    classification: "confidential",
};
const ACME_ENG_SECRET: DemoDoc = DemoDoc {
    id: "acme-eng-secret",
    classification: "secret",
    ..ACME_ENG_CONF
};
const DOCS: [&DemoDoc; 2] = [&ACME_ENG_CONF, &ACME_ENG_SECRET];

/// Working hours (Wednesday 10:00) and out of hours (Wednesday 20:00).
const IN_HOURS: (i32, i32) = (10, 2);
const OUT_OF_HOURS: (i32, i32) = (20, 2);

fn criterion_config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

// ---------------------------------------------------------------------------
// casbin 2.20
// ---------------------------------------------------------------------------

/// RBAC with domains. Role permissions are granted in every tenant by the
/// domain "*" on `p` lines; user-role assignments are per tenant `g` lines.
const CASBIN_RBAC_MODEL: &str = r#"
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && (p.dom == "*" || p.dom == r.dom) && r.obj == p.obj && r.act == p.act
"#;

/// ABAC only: the two conditions bound to data:read, on struct fields of the
/// request arguments; the `p` line names the permission they guard.
const CASBIN_ABAC_MODEL: &str = r#"
[request_definition]
r = sub, obj, act

[policy_definition]
p = obj, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.obj.kind == p.obj && r.act == p.act && r.sub.department == r.obj.department && r.sub.clearance >= r.obj.classification && r.sub.country in ["US", "CA", "GB"]
"#;

/// Hybrid: the RBAC-with-domains grant AND every condition bound to the
/// granted permission (data:read -> data_access + geo_restriction,
/// system:configure -> time_based); any other permission has no conditions.
const CASBIN_HYBRID_MODEL: &str = r#"
[request_definition]
r = sub, dom, obj, act, env

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub.id, p.sub, r.dom) && (p.dom == "*" || p.dom == r.dom) && r.obj.kind == p.obj && r.act == p.act && (p.obj != "data" || p.act != "read" || (r.sub.department == r.obj.department && r.sub.clearance >= r.obj.classification && r.sub.country in ["US", "CA", "GB"])) && (p.obj != "system" || p.act != "configure" || (r.env.hour >= 9 && r.env.hour <= 17 && r.env.weekday < 5))
"#;

#[derive(Serialize, Hash)]
struct CasbinUser {
    id: &'static str,
    department: &'static str,
    clearance: i32,
    country: &'static str,
}

#[derive(Serialize, Hash)]
struct CasbinResource {
    id: &'static str,
    kind: &'static str,
    tenant: &'static str,
    department: &'static str,
    classification: i32,
}

#[derive(Serialize, Hash)]
struct CasbinEnv {
    hour: i32,
    weekday: i32,
}

fn casbin_user(u: &DemoUser) -> CasbinUser {
    CasbinUser {
        id: u.id,
        department: u.department,
        clearance: rank(u.clearance),
        country: u.country,
    }
}

fn casbin_doc(d: &DemoDoc) -> CasbinResource {
    CasbinResource {
        id: d.id,
        kind: "data",
        tenant: d.tenant,
        department: d.department,
        classification: rank(d.classification),
    }
}

fn casbin_system() -> CasbinResource {
    CasbinResource {
        id: "system",
        kind: "system",
        tenant: TENANT,
        department: "",
        classification: 0,
    }
}

fn casbin_env((hour, weekday): (i32, i32)) -> CasbinEnv {
    CasbinEnv { hour, weekday }
}

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|x| (*x).to_owned()).collect()
}

/// `p, role, *, resource, action` for every role permission.
fn casbin_role_policies() -> Vec<Vec<String>> {
    ROLES
        .iter()
        .flat_map(|(role, perms)| {
            perms.iter().map(move |perm| {
                let (obj, act) = perm.split_once(':').expect("resource:action");
                strings(&[role, "*", obj, act])
            })
        })
        .collect()
}

/// `g, user, role, tenant` for every user.
fn casbin_grouping_policies() -> Vec<Vec<String>> {
    USERS
        .iter()
        .map(|u| strings(&[u.id, u.role, u.tenant]))
        .collect()
}

async fn casbin_rbac_enforcer() -> Enforcer {
    let model = DefaultModel::from_str(CASBIN_RBAC_MODEL)
        .await
        .expect("casbin rbac model");
    let mut e = Enforcer::new(model, MemoryAdapter::default())
        .await
        .expect("casbin enforcer");
    assert!(e.add_policies(casbin_role_policies()).await.expect("p"));
    assert!(
        e.add_grouping_policies(casbin_grouping_policies())
            .await
            .expect("g")
    );
    e
}

async fn casbin_abac_enforcer() -> Enforcer {
    let model = DefaultModel::from_str(CASBIN_ABAC_MODEL)
        .await
        .expect("casbin abac model");
    let mut e = Enforcer::new(model, MemoryAdapter::default())
        .await
        .expect("casbin enforcer");
    assert!(
        e.add_policies(vec![strings(&["data", "read"])])
            .await
            .expect("p")
    );
    e
}

async fn casbin_hybrid_enforcer() -> Enforcer {
    let model = DefaultModel::from_str(CASBIN_HYBRID_MODEL)
        .await
        .expect("casbin hybrid model");
    let mut e = Enforcer::new(model, MemoryAdapter::default())
        .await
        .expect("casbin enforcer");
    assert!(e.add_policies(casbin_role_policies()).await.expect("p"));
    assert!(
        e.add_grouping_policies(casbin_grouping_policies())
            .await
            .expect("g")
    );
    e
}

/// One-off checks beyond the timed scenarios, so the encodings are known to
/// mean the demo policies (clearance order, missing grant, time window).
fn casbin_sanity(rbac: &Enforcer, abac: &Enforcer, hybrid: &Enforcer) {
    let env = casbin_env(IN_HOURS);
    let hybrid_decide = |u: &DemoUser, obj: &CasbinResource, act: &str, env: &CasbinEnv| {
        hybrid
            .enforce((&casbin_user(u), TENANT, obj, act, env))
            .expect("casbin enforce")
    };
    // RBAC: grants exist only where a role has them, and only in the tenant
    // of the assignment.
    assert!(!rbac.enforce(("bob", TENANT, "data", "read")).unwrap());
    assert!(rbac.enforce(("dave", TENANT, "model", "train")).unwrap());
    assert!(!rbac.enforce(("dave", "globex", "model", "train")).unwrap());
    // ABAC: clearance below classification, wrong department, wrong country.
    let secret = casbin_doc(&ACME_ENG_SECRET);
    let conf = casbin_doc(&ACME_ENG_CONF);
    assert!(
        !abac
            .enforce((&casbin_user(&DAVE), &secret, "read"))
            .unwrap()
    );
    assert!(!abac.enforce((&casbin_user(&BOB), &conf, "read")).unwrap());
    assert!(!abac.enforce((&casbin_user(&FRANK), &conf, "read")).unwrap());
    // Hybrid: clearance, missing grant, time window on system:configure.
    assert!(!hybrid_decide(&DAVE, &secret, "read", &env));
    assert!(!hybrid_decide(&BOB, &conf, "read", &env));
    assert!(!hybrid_decide(&DAVE, &casbin_system(), "configure", &env));
    assert!(hybrid_decide(&ALICE, &casbin_system(), "configure", &env));
    assert!(!hybrid_decide(
        &ALICE,
        &casbin_system(),
        "configure",
        &casbin_env(OUT_OF_HOURS)
    ));
    assert!(!hybrid_decide(
        &ALICE,
        &casbin_system(),
        "configure",
        &casbin_env((10, 5))
    ));
}

// ---------------------------------------------------------------------------
// cedar-policy 4
// ---------------------------------------------------------------------------

/// RBAC: one permit per role (also the grant half of the hybrid set).
fn cedar_rbac_src() -> String {
    ROLES
        .iter()
        .map(|(role, perms)| {
            let actions = perms
                .iter()
                .map(|p| format!("Action::\"{p}\""))
                .collect::<Vec<_>>()
                .join(", ");
            format!("permit(principal in Role::\"{role}\", action in [{actions}], resource);\n")
        })
        .collect()
}

/// The data:read conditions as one Cedar expression (`has` guards so that a
/// missing attribute makes the condition false instead of an evaluation
/// error, which Cedar would treat as "policy does not apply").
const CEDAR_DATA_READ_CONDITIONS: &str = r#"
    principal has department && resource has department
    && principal.department == resource.department
    && principal has clearance && resource has classification
    && principal.clearance >= resource.classification
    && principal has location && principal.location has country
    && ["US", "CA", "GB"].contains(principal.location.country)
"#;

const CEDAR_TIME_CONDITION: &str = r#"
    context has current_time
    && context.current_time.hour >= 9
    && context.current_time.hour <= 17
    && context.current_time.weekday < 5
"#;

/// ABAC only: the two data:read conditions, no role check.
fn cedar_abac_src() -> String {
    format!(
        "permit(principal, action == Action::\"data:read\", resource) when {{ {CEDAR_DATA_READ_CONDITIONS} }};\n"
    )
}

/// Hybrid: role permits, and every condition bound to a permission as a
/// `forbid ... unless` on that action, so a grant is allowed only when all of
/// its conditions hold (forbid overrides permit; no permit = deny).
fn cedar_hybrid_src() -> String {
    format!(
        "{}forbid(principal, action == Action::\"data:read\", resource) unless {{ {CEDAR_DATA_READ_CONDITIONS} }};\n\
         forbid(principal, action == Action::\"system:configure\", resource) unless {{ {CEDAR_TIME_CONDITION} }};\n",
        cedar_rbac_src()
    )
}

fn cedar_policies(src: &str) -> PolicySet {
    PolicySet::from_str(src).expect("cedar policy set")
}

fn uid(type_name: &str, id: &str) -> EntityUid {
    EntityUid::from_str(&format!("{type_name}::\"{id}\"")).expect("entity uid")
}

fn s(v: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(v.to_owned())
}

fn cedar_user(u: &DemoUser) -> Entity {
    let attrs = HashMap::from([
        ("tenant".to_owned(), s(u.tenant)),
        ("department".to_owned(), s(u.department)),
        (
            "clearance".to_owned(),
            RestrictedExpression::new_long(rank(u.clearance).into()),
        ),
        (
            "location".to_owned(),
            RestrictedExpression::new_record([("country".to_owned(), s(u.country))])
                .expect("record"),
        ),
    ]);
    Entity::new(
        uid("User", u.id),
        attrs,
        HashSet::from([uid("Role", u.role)]),
    )
    .expect("user entity")
}

fn cedar_role(role: &str) -> Entity {
    Entity::new_no_attrs(uid("Role", role), HashSet::new())
}

fn cedar_doc(d: &DemoDoc) -> Entity {
    let attrs = HashMap::from([
        ("tenant".to_owned(), s(d.tenant)),
        ("department".to_owned(), s(d.department)),
        (
            "classification".to_owned(),
            RestrictedExpression::new_long(rank(d.classification).into()),
        ),
    ]);
    Entity::new(uid("Document", d.id), attrs, HashSet::new()).expect("document entity")
}

/// The whole demo store: every role, user and document (built once).
fn cedar_all_entities() -> Entities {
    let entities = ROLES
        .iter()
        .map(|(role, _)| cedar_role(role))
        .chain(USERS.iter().map(|u| cedar_user(u)))
        .chain(DOCS.iter().map(|d| cedar_doc(d)))
        .chain([Entity::new_no_attrs(
            uid("System", "system"),
            HashSet::new(),
        )]);
    Entities::from_entities(entities, None).expect("cedar entities")
}

/// Only what one request needs: the principal, its role, the resource.
fn cedar_request_entities(u: &DemoUser, d: &DemoDoc) -> Entities {
    Entities::from_entities([cedar_user(u), cedar_role(u.role), cedar_doc(d)], None)
        .expect("cedar entities")
}

fn cedar_context((hour, weekday): (i32, i32)) -> Context {
    let current_time = RestrictedExpression::new_record([
        (
            "hour".to_owned(),
            RestrictedExpression::new_long(hour.into()),
        ),
        (
            "weekday".to_owned(),
            RestrictedExpression::new_long(weekday.into()),
        ),
    ])
    .expect("record");
    Context::from_pairs([("current_time".to_owned(), current_time)]).expect("context")
}

fn cedar_request(principal: &str, action: &str, resource: EntityUid, context: Context) -> Request {
    Request::new(
        uid("User", principal),
        uid("Action", action),
        resource,
        context,
        None,
    )
    .expect("cedar request")
}

fn cedar_sanity(
    authorizer: &Authorizer,
    rbac: &PolicySet,
    abac: &PolicySet,
    hybrid: &PolicySet,
    entities: &Entities,
) {
    let decide = |policies: &PolicySet, u: &str, act: &str, res: EntityUid, ctx: (i32, i32)| {
        let response = authorizer.is_authorized(
            &cedar_request(u, act, res, cedar_context(ctx)),
            policies,
            entities,
        );
        assert_eq!(
            response.diagnostics().errors().count(),
            0,
            "cedar evaluation errors for {u} {act}"
        );
        response.decision()
    };
    let secret = || uid("Document", ACME_ENG_SECRET.id);
    let conf = || uid("Document", ACME_ENG_CONF.id);
    let system = || uid("System", "system");
    let d = Decision::Deny;
    let a = Decision::Allow;
    assert_eq!(decide(rbac, "bob", "data:read", conf(), IN_HOURS), d);
    assert_eq!(decide(rbac, "dave", "model:train", conf(), IN_HOURS), a);
    assert_eq!(decide(abac, "dave", "data:read", secret(), IN_HOURS), d);
    assert_eq!(decide(abac, "bob", "data:read", conf(), IN_HOURS), d);
    assert_eq!(decide(abac, "frank", "data:read", conf(), IN_HOURS), d);
    assert_eq!(decide(hybrid, "dave", "data:read", secret(), IN_HOURS), d);
    assert_eq!(decide(hybrid, "bob", "data:read", conf(), IN_HOURS), d);
    assert_eq!(
        decide(hybrid, "dave", "system:configure", system(), IN_HOURS),
        d
    );
    assert_eq!(
        decide(hybrid, "alice", "system:configure", system(), IN_HOURS),
        a
    );
    assert_eq!(
        decide(hybrid, "alice", "system:configure", system(), OUT_OF_HOURS),
        d
    );
    assert_eq!(
        decide(hybrid, "alice", "system:configure", system(), (10, 5)),
        d
    );
}

// ---------------------------------------------------------------------------
// The benches
// ---------------------------------------------------------------------------

fn access(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");

    // casbin setup (async API; enforce itself is synchronous).
    let casbin_rbac = rt.block_on(casbin_rbac_enforcer());
    let casbin_abac = rt.block_on(casbin_abac_enforcer());
    let casbin_hybrid = rt.block_on(casbin_hybrid_enforcer());
    casbin_sanity(&casbin_rbac, &casbin_abac, &casbin_hybrid);
    let c_dave = casbin_user(&DAVE);
    let c_frank = casbin_user(&FRANK);
    let c_conf = casbin_doc(&ACME_ENG_CONF);
    let c_env = casbin_env(IN_HOURS);

    // cedar setup: policies parsed and the entity store built once.
    let authorizer = Authorizer::new();
    let cedar_rbac = cedar_policies(&cedar_rbac_src());
    let cedar_abac = cedar_policies(&cedar_abac_src());
    let cedar_hybrid = cedar_policies(&cedar_hybrid_src());
    let entities = cedar_all_entities();
    cedar_sanity(
        &authorizer,
        &cedar_rbac,
        &cedar_abac,
        &cedar_hybrid,
        &entities,
    );
    let conf_uid = uid("Document", ACME_ENG_CONF.id);
    let req_bob_report = cedar_request(
        "bob",
        "report:view",
        uid("Report", "any"),
        cedar_context(IN_HOURS),
    );
    let req_dave_read = cedar_request(
        "dave",
        "data:read",
        conf_uid.clone(),
        cedar_context(IN_HOURS),
    );
    let req_frank_read = cedar_request("frank", "data:read", conf_uid, cedar_context(IN_HOURS));

    // kailash-access: the demo policy under each strategy.
    let k = kailash::Engines::load(&rt);

    let mut group = c.benchmark_group("access");

    // 1. rbac: bob report:view in tenant acme -> allow.
    assert!(
        casbin_rbac
            .enforce(("bob", TENANT, "report", "view"))
            .expect("casbin enforce")
    );
    group.bench_function("rbac/casbin", |b| {
        b.iter(|| {
            casbin_rbac
                .enforce(black_box(("bob", TENANT, "report", "view")))
                .expect("casbin enforce")
        })
    });
    assert_eq!(
        authorizer
            .is_authorized(&req_bob_report, &cedar_rbac, &entities)
            .decision(),
        Decision::Allow
    );
    group.bench_function("rbac/cedar", |b| {
        b.iter(|| {
            authorizer
                .is_authorized(
                    black_box(&req_bob_report),
                    black_box(&cedar_rbac),
                    black_box(&entities),
                )
                .decision()
        })
    });

    // 2. abac: dave reads acme-eng-conf, data:read conditions only -> allow.
    assert!(
        casbin_abac
            .enforce((&c_dave, &c_conf, "read"))
            .expect("casbin enforce")
    );
    group.bench_function("abac/casbin", |b| {
        b.iter(|| {
            casbin_abac
                .enforce(black_box((&c_dave, &c_conf, "read")))
                .expect("casbin enforce")
        })
    });
    assert_eq!(
        authorizer
            .is_authorized(&req_dave_read, &cedar_abac, &entities)
            .decision(),
        Decision::Allow
    );
    group.bench_function("abac/cedar", |b| {
        b.iter(|| {
            authorizer
                .is_authorized(
                    black_box(&req_dave_read),
                    black_box(&cedar_abac),
                    black_box(&entities),
                )
                .decision()
        })
    });

    // 3. hybrid: dave data:read on acme-eng-conf, grant + conditions -> allow.
    assert!(
        casbin_hybrid
            .enforce((&c_dave, TENANT, &c_conf, "read", &c_env))
            .expect("casbin enforce")
    );
    group.bench_function("hybrid/casbin", |b| {
        b.iter(|| {
            casbin_hybrid
                .enforce(black_box((&c_dave, TENANT, &c_conf, "read", &c_env)))
                .expect("casbin enforce")
        })
    });
    assert_eq!(
        authorizer
            .is_authorized(&req_dave_read, &cedar_hybrid, &entities)
            .decision(),
        Decision::Allow
    );
    group.bench_function("hybrid/cedar", |b| {
        b.iter(|| {
            authorizer
                .is_authorized(
                    black_box(&req_dave_read),
                    black_box(&cedar_hybrid),
                    black_box(&entities),
                )
                .decision()
        })
    });
    let per_request = |authorizer: &Authorizer| {
        let entities = cedar_request_entities(black_box(&DAVE), black_box(&ACME_ENG_CONF));
        authorizer
            .is_authorized(
                black_box(&req_dave_read),
                black_box(&cedar_hybrid),
                &entities,
            )
            .decision()
    };
    assert_eq!(per_request(&authorizer), Decision::Allow);
    group.bench_function("hybrid/cedar_entities_per_request", |b| {
        b.iter(|| per_request(&authorizer))
    });

    // 4. hybrid_deny: frank data:read on acme-eng-conf -> deny (geo).
    assert!(
        !casbin_hybrid
            .enforce((&c_frank, TENANT, &c_conf, "read", &c_env))
            .expect("casbin enforce")
    );
    group.bench_function("hybrid_deny/casbin", |b| {
        b.iter(|| {
            casbin_hybrid
                .enforce(black_box((&c_frank, TENANT, &c_conf, "read", &c_env)))
                .expect("casbin enforce")
        })
    });
    assert_eq!(
        authorizer
            .is_authorized(&req_frank_read, &cedar_hybrid, &entities)
            .decision(),
        Decision::Deny
    );
    group.bench_function("hybrid_deny/cedar", |b| {
        b.iter(|| {
            authorizer
                .is_authorized(
                    black_box(&req_frank_read),
                    black_box(&cedar_hybrid),
                    black_box(&entities),
                )
                .decision()
        })
    });

    for (name, policy, principal, permission, resource, expected) in k.scenarios() {
        let req = kailash::request(principal, permission, resource);
        assert_eq!(policy.decide(&req).allowed, expected, "{name}");
        group.bench_function(name, |b| {
            b.iter(|| black_box(policy.decide(black_box(&req)).allowed))
        });
    }

    group.finish();
}

/// kailash-access on the same demo policy.
mod kailash {
    use kailash_access::condition::Attributes;
    use kailash_access::permission::Permission;
    use kailash_access::spec::{AccessSpec, Strategy};
    use kailash_access::{AccessPolicy, AccessRequest};
    use kailash_core::{AttributeValue, Principal, TenantId};

    pub(super) struct Engines {
        rbac: AccessPolicy,
        abac: AccessPolicy,
        hybrid: AccessPolicy,
        bob: Principal,
        dave: Principal,
        frank: Principal,
        report_view: Permission,
        data_read: Permission,
        conf: Attributes,
        none: Attributes,
    }

    fn user(name: &str, role: &str, dept: &str, clearance: &str, country: &str) -> Principal {
        let location = AttributeValue::Map(
            [("country".to_owned(), country.into())]
                .into_iter()
                .collect(),
        );
        Principal::builder(name)
            .tenant(TenantId::new("acme").expect("tenant"))
            .role(role)
            .attribute("department", dept)
            .attribute("clearance", clearance)
            .attribute("location", location)
            .build()
    }

    /// Wednesday 2026-12-02 10:00 UTC, in office hours.
    fn now() -> jiff::Timestamp {
        jiff::tz::TimeZone::UTC
            .to_timestamp(jiff::civil::date(2026, 12, 2).at(10, 0, 0, 0))
            .expect("timestamp")
    }

    pub(super) fn request<'a>(
        principal: &'a Principal,
        permission: &'a Permission,
        resource: &'a Attributes,
    ) -> AccessRequest<'a> {
        AccessRequest::new(principal, permission, now()).resource(resource)
    }

    impl Engines {
        pub(super) fn load(rt: &tokio::runtime::Runtime) -> Self {
            let spec: AccessSpec = serde_json::from_str(include_str!(
                "../../../crates/kailash-access/tests/fixtures/demo.json"
            ))
            .expect("demo spec");
            let with = |strategy| {
                let mut s = spec.clone();
                s.strategy = strategy;
                rt.block_on(AccessPolicy::load(&s)).expect("policy")
            };
            let mut conf = Attributes::new();
            conf.insert("department".into(), "engineering".into());
            conf.insert("classification".into(), "confidential".into());
            Self {
                rbac: with(Strategy::Rbac),
                abac: with(Strategy::Abac),
                hybrid: with(Strategy::Hybrid),
                bob: user("bob", "business_user", "sales", "internal", "CA"),
                dave: user(
                    "dave",
                    "data_scientist",
                    "engineering",
                    "confidential",
                    "GB",
                ),
                frank: user(
                    "frank",
                    "data_scientist",
                    "engineering",
                    "confidential",
                    "FR",
                ),
                report_view: Permission::parse("report:view").expect("permission"),
                data_read: Permission::parse("data:read").expect("permission"),
                conf,
                none: Attributes::new(),
            }
        }

        /// (bench name, policy, principal, permission, resource, expected).
        #[allow(clippy::type_complexity)]
        pub(super) fn scenarios(
            &self,
        ) -> Vec<(
            &'static str,
            &AccessPolicy,
            &Principal,
            &Permission,
            &Attributes,
            bool,
        )> {
            vec![
                (
                    "rbac/kailash",
                    &self.rbac,
                    &self.bob,
                    &self.report_view,
                    &self.none,
                    true,
                ),
                (
                    "abac/kailash",
                    &self.abac,
                    &self.dave,
                    &self.data_read,
                    &self.conf,
                    true,
                ),
                (
                    "hybrid/kailash",
                    &self.hybrid,
                    &self.dave,
                    &self.data_read,
                    &self.conf,
                    true,
                ),
                (
                    "hybrid_deny/kailash",
                    &self.hybrid,
                    &self.frank,
                    &self.data_read,
                    &self.conf,
                    false,
                ),
            ]
        }
    }
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = access
}
criterion_main!(benches);
