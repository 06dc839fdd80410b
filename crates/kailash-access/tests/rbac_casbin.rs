//! The compiled RBAC snapshot agrees with casbin's own `enforce` on random
//! role graphs (inheritance, wildcards, denials, tenant-restricted roles,
//! per-tenant grants), and a role held in the token counts exactly like the
//! same role granted in casbin.

use jiff::Timestamp;
use kailash_access::permission::Permission;
use kailash_access::spec::{AccessSpec, GrantSpec, RoleDefinition, Strategy as Combine};
use kailash_access::{AccessPolicy, AccessRequest};
use kailash_core::{Principal, TenantId};
use proptest::prelude::*;

const RESOURCES: [&str; 3] = ["workflow", "data", "report"];
const ACTIONS: [&str; 3] = ["read", "execute", "delete"];
const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
const SUBJECTS: [&str; 3] = ["alice", "bob", "carol"];

fn pattern() -> impl Strategy<Value = Permission> {
    (0..4usize, 0..4usize).prop_map(|(r, a)| {
        let r = RESOURCES.get(r).copied().unwrap_or("*");
        let a = ACTIONS.get(a).copied().unwrap_or("*");
        Permission::parse(&format!("{r}:{a}")).unwrap()
    })
}

fn tenant() -> impl Strategy<Value = TenantId> {
    (0..TENANTS.len()).prop_map(|i| TenantId::new(TENANTS[i]).unwrap())
}

/// Up to five roles; role i may inherit only roles < i (no cycles).
fn spec() -> impl Strategy<Value = AccessSpec> {
    (1..=5usize)
        .prop_flat_map(|n| {
            let roles = (0..n)
                .map(|i| {
                    (
                        prop::collection::vec(pattern(), 0..4),
                        prop::collection::vec(pattern(), 0..2),
                        prop::collection::vec(0..i.max(1), 0..3),
                        prop::option::weighted(0.3, prop::collection::vec(tenant(), 1..3)),
                    )
                        .prop_map(
                            move |(permissions, deny, inherits, tenants)| RoleDefinition {
                                name: format!("r{i}"),
                                description: None,
                                permissions,
                                deny,
                                inherits: if i == 0 {
                                    Vec::new()
                                } else {
                                    let mut v: Vec<String> =
                                        inherits.into_iter().map(|j| format!("r{j}")).collect();
                                    v.sort();
                                    v.dedup();
                                    v
                                },
                                tenants,
                                max_workflows: None,
                                max_executions_per_hour: None,
                            },
                        )
                })
                .collect::<Vec<_>>();
            let grants = prop::collection::vec(
                (
                    tenant(),
                    0..SUBJECTS.len(),
                    prop::collection::vec(0..n, 1..3),
                ),
                0..5,
            );
            (roles, grants)
        })
        .prop_map(|(roles, grants)| AccessSpec {
            strategy: Combine::Rbac,
            roles,
            grants: grants
                .into_iter()
                .map(|(tenant, s, rs)| GrantSpec {
                    tenant,
                    subject: SUBJECTS[s].to_owned(),
                    roles: rs.into_iter().map(|r| format!("r{r}")).collect(),
                })
                .collect(),
            ..AccessSpec::default()
        })
}

fn concrete() -> impl Strategy<Value = Permission> {
    (0..RESOURCES.len(), 0..ACTIONS.len())
        .prop_map(|(r, a)| Permission::parse(&format!("{}:{}", RESOURCES[r], ACTIONS[a])).unwrap())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn snapshot_agrees_with_casbin(
        spec in spec(),
        queries in prop::collection::vec((0..SUBJECTS.len(), tenant(), concrete()), 1..12),
    ) {
        let policy = runtime().block_on(AccessPolicy::load(&spec)).unwrap();
        for (s, t, wanted) in queries {
            let subject = SUBJECTS[s];
            let by_casbin = policy.casbin_enforce(subject, Some(&t), &wanted).unwrap();
            // Roles through casbin grants only.
            let granted = Principal::builder(subject).tenant(t.clone()).build();
            let by_snapshot = policy
                .decide(&AccessRequest::new(&granted, &wanted, Timestamp::UNIX_EPOCH))
                .allowed;
            prop_assert_eq!(by_snapshot, by_casbin, "{} in {} wants {}", subject, t, wanted);
            // The same roles carried in the token instead of granted.
            let roles: Vec<String> = spec
                .grants
                .iter()
                .filter(|g| g.subject == subject && g.tenant == t)
                .flat_map(|g| g.roles.clone())
                .collect();
            let carried = Principal::builder(format!("{subject}-token"))
                .tenant(t.clone())
                .roles(roles)
                .build();
            let by_token = policy
                .decide(&AccessRequest::new(&carried, &wanted, Timestamp::UNIX_EPOCH))
                .allowed;
            prop_assert_eq!(by_token, by_casbin, "token roles of {} in {} want {}", subject, t, wanted);
        }
    }
}
