//! RBAC on casbin with tenant domains, and the compiled snapshot the
//! request path reads.
//!
//! casbin holds the model, the policy lines and the role graph: every
//! role's grants and denials are `p` lines in a domain (`*` for every
//! tenant, or one tenant), inheritance is a `g` line in domain `*`, and a
//! per-tenant grant of a role to a subject is a `g` line in that tenant.
//! Names are prefixed (`role:…`, `user:…`) so that a user called `admin` is
//! never mistaken for the role `admin`.
//!
//! Enforcing through casbin costs microseconds (its matcher is a script);
//! the request path instead reads a snapshot computed from casbin's
//! role graph when the policy is loaded: for each tenant domain, each role's
//! closure of allowed and denied permission patterns. A property test
//! (`tests/rbac_casbin.rs`) keeps the snapshot and casbin's own `enforce`
//! in agreement.

use std::collections::{BTreeSet, HashMap, HashSet};

use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi, RbacApi};
use kailash_core::hash::FnvHashMap;

use crate::error::AccessError;
use crate::permission::{Permission, PermissionSet};
use crate::spec::{GrantSpec, RoleDefinition};

/// The casbin model: RBAC with domains, deny overriding allow.
pub const CASBIN_MODEL: &str = r#"
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub, r.dom) && (p.dom == "*" || p.dom == r.dom) && (p.obj == "*" || p.obj == r.obj) && (p.act == "*" || p.act == r.act)
"#;

/// The domain of principals without a tenant (and of tenants with no lines of their own).
const NO_TENANT: &str = "";
const ANY_TENANT: &str = "*";
const ROLE: &str = "role:";
const USER: &str = "user:";

/// The longest role name accepted.
pub const MAX_ROLE_LEN: usize = 64;
/// The longest subject accepted in a grant.
pub const MAX_SUBJECT_LEN: usize = 256;

fn valid_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ROLE_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn role_err(role: &str, message: impl Into<String>) -> AccessError {
    AccessError::Role {
        role: role.to_owned(),
        message: message.into(),
    }
}

fn casbin_err(e: casbin::Error) -> AccessError {
    AccessError::Casbin(e.to_string())
}

/// What one role (with everything it inherits) allows and denies in one domain.
#[derive(Debug, Default)]
struct RoleGrants {
    allow: PermissionSet,
    deny: PermissionSet,
}

// FNV: keys are role names and tenant ids from configuration.
type DomainRoles = FnvHashMap<Box<str>, RoleGrants>;

/// tenant → subject → roles granted there.
type Grants = FnvHashMap<Box<str>, FnvHashMap<Box<str>, Vec<Box<str>>>>;

/// The outcome of the RBAC step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RbacOutcome<'a> {
    /// This role of the principal grants the permission and none denies it.
    Granted(&'a str),
    /// This role of the principal denies the permission.
    Denied(&'a str),
    /// No role of the principal grants it.
    NotGranted,
}

/// The request-path form of the RBAC policy.
#[derive(Debug, Default)]
pub(crate) struct RbacSnapshot {
    /// Roles for tenants with no lines of their own (and for no tenant).
    default: DomainRoles,
    /// Roles for tenants that have tenant-specific lines.
    tenants: FnvHashMap<Box<str>, DomainRoles>,
    /// tenant → subject → granted roles.
    grants: Grants,
}

impl RbacSnapshot {
    fn domain(&self, tenant: Option<&str>) -> &DomainRoles {
        if self.tenants.is_empty() {
            return &self.default;
        }
        tenant
            .and_then(|t| self.tenants.get(t))
            .unwrap_or(&self.default)
    }

    /// Roles granted to `subject` in `tenant` by configuration (not by its token).
    pub(crate) fn granted_roles(&self, tenant: Option<&str>, subject: &str) -> &[Box<str>] {
        if self.grants.is_empty() {
            return &[];
        }
        tenant
            .and_then(|t| self.grants.get(t))
            .and_then(|m| m.get(subject))
            .map_or(&[], Vec::as_slice)
    }

    /// Whether `role` is defined.
    pub(crate) fn knows(&self, role: &str) -> bool {
        self.default.contains_key(role)
    }

    /// The RBAC decision for a principal holding `token_roles` plus its grants.
    pub(crate) fn decide<'a>(
        &'a self,
        tenant: Option<&str>,
        subject: &str,
        token_roles: &'a [String],
        wanted: &Permission,
    ) -> RbacOutcome<'a> {
        let domain = self.domain(tenant);
        let grants = self.granted_roles(tenant, subject);
        let roles = token_roles
            .iter()
            .map(String::as_str)
            .chain(grants.iter().map(|r| &**r));
        let mut granted = None;
        for role in roles {
            let Some(g) = domain.get(role) else { continue };
            if g.deny.contains(wanted) {
                return RbacOutcome::Denied(role);
            }
            if granted.is_none() && g.allow.contains(wanted) {
                granted = Some(role);
            }
        }
        granted.map_or(RbacOutcome::NotGranted, RbacOutcome::Granted)
    }

    /// Whether `role`'s closure has any grant in `tenant`'s domain.
    pub(crate) fn role_has_grants(&self, tenant: Option<&str>, role: &str) -> bool {
        self.domain(tenant)
            .get(role)
            .is_some_and(|g| !g.allow.is_empty())
    }
}

/// Checks role definitions and grants before they reach casbin, so errors
/// name the role (casbin would accept dangling names silently).
fn validate(roles: &[RoleDefinition], grants: &[GrantSpec]) -> Result<(), AccessError> {
    let mut names = HashSet::new();
    for r in roles {
        if !valid_role_name(&r.name) {
            return Err(role_err(
                &r.name,
                format!(
                    "a role name is 1-{MAX_ROLE_LEN} characters of letters, digits, `_`, `.` and `-`"
                ),
            ));
        }
        if !names.insert(r.name.as_str()) {
            return Err(role_err(&r.name, "defined more than once"));
        }
    }
    let by_name: HashMap<&str, &RoleDefinition> =
        roles.iter().map(|r| (r.name.as_str(), r)).collect();
    for r in roles {
        for parent in &r.inherits {
            if !by_name.contains_key(parent.as_str()) {
                return Err(role_err(
                    &r.name,
                    format!("inherits `{parent}`, which is not defined"),
                ));
            }
        }
        if r.tenants.as_ref().is_some_and(Vec::is_empty) {
            return Err(role_err(
                &r.name,
                "`tenants` is empty; omit it to apply the role in every tenant",
            ));
        }
    }
    // Cycles: depth-first, reporting the path.
    fn visit<'a>(
        name: &'a str,
        by_name: &HashMap<&'a str, &'a RoleDefinition>,
        path: &mut Vec<&'a str>,
        done: &mut HashSet<&'a str>,
    ) -> Result<(), AccessError> {
        if done.contains(name) {
            return Ok(());
        }
        if let Some(start) = path.iter().position(|p| *p == name) {
            let mut cycle: Vec<&str> = path[start..].to_vec();
            cycle.push(name);
            return Err(role_err(
                name,
                format!("inheritance cycle: {}", cycle.join(" -> ")),
            ));
        }
        path.push(name);
        if let Some(r) = by_name.get(name) {
            for parent in &r.inherits {
                visit(parent, by_name, path, done)?;
            }
        }
        path.pop();
        done.insert(name);
        Ok(())
    }
    let mut done = HashSet::new();
    for r in roles {
        visit(&r.name, &by_name, &mut Vec::new(), &mut done)?;
    }
    for g in grants {
        let err = |message: String| AccessError::Grant {
            tenant: g.tenant.to_string(),
            subject: g.subject.clone(),
            message,
        };
        if g.subject.is_empty()
            || g.subject.len() > MAX_SUBJECT_LEN
            || g.subject.chars().any(char::is_control)
        {
            return Err(err(format!(
                "a subject is 1-{MAX_SUBJECT_LEN} bytes without control characters"
            )));
        }
        if g.roles.is_empty() {
            return Err(err("grants no roles".into()));
        }
        for role in &g.roles {
            if !by_name.contains_key(role.as_str()) {
                return Err(err(format!("role `{role}` is not defined")));
            }
        }
    }
    Ok(())
}

/// Builds the casbin enforcer holding `roles` and `grants`.
pub(crate) async fn enforcer(
    roles: &[RoleDefinition],
    grants: &[GrantSpec],
) -> Result<Enforcer, AccessError> {
    validate(roles, grants)?;
    let model = DefaultModel::from_str(CASBIN_MODEL)
        .await
        .map_err(casbin_err)?;
    let mut e = Enforcer::new(model, MemoryAdapter::default())
        .await
        .map_err(casbin_err)?;
    // `*` in a g line's domain means every tenant; set before any link exists
    // so that pattern links propagate into concrete domains.
    e.get_role_manager()
        .write()
        .matching_fn(None, Some(casbin::function_map::key_match));

    let mut p_lines: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut g_lines: BTreeSet<Vec<String>> = BTreeSet::new();
    for r in roles {
        let sub = format!("{ROLE}{}", r.name);
        let domains: Vec<String> = match &r.tenants {
            Some(ts) => ts.iter().map(|t| t.as_str().to_owned()).collect(),
            None => vec![ANY_TENANT.to_owned()],
        };
        for dom in &domains {
            for (perms, eft) in [(&r.permissions, "allow"), (&r.deny, "deny")] {
                for p in perms {
                    p_lines.insert(vec![
                        sub.clone(),
                        dom.clone(),
                        p.resource().to_owned(),
                        p.action().to_owned(),
                        eft.to_owned(),
                    ]);
                }
            }
        }
        // A role restricted to some tenants inherits only there: what it
        // passes on from its parents is part of its permissions.
        for parent in &r.inherits {
            for dom in &domains {
                g_lines.insert(vec![sub.clone(), format!("{ROLE}{parent}"), dom.clone()]);
            }
        }
    }
    for g in grants {
        for role in &g.roles {
            g_lines.insert(vec![
                format!("{USER}{}", g.subject),
                format!("{ROLE}{role}"),
                g.tenant.as_str().to_owned(),
            ]);
        }
    }
    // Pattern-domain links first, so concrete domains copy them when created.
    let (pattern, concrete): (Vec<_>, Vec<_>) =
        g_lines.into_iter().partition(|l| l[2] == ANY_TENANT);
    for batch in [pattern, concrete] {
        if !batch.is_empty() {
            e.add_grouping_policies(batch).await.map_err(casbin_err)?;
        }
    }
    if !p_lines.is_empty() {
        e.add_policies(p_lines.into_iter().collect())
            .await
            .map_err(casbin_err)?;
    }
    Ok(e)
}

/// Computes the snapshot from casbin's policy lines and role graph, for the
/// defined `role_names` (a role with no lines is still a known role).
pub(crate) fn snapshot(e: &Enforcer, role_names: &[&str]) -> Result<RbacSnapshot, AccessError> {
    // Parsed p lines, by subject role.
    let mut lines: HashMap<String, Vec<(String, Permission, bool)>> = HashMap::new();
    for l in e.get_policy() {
        let [sub, dom, obj, act, eft] = l.as_slice() else {
            return Err(AccessError::Casbin(format!("unexpected policy line {l:?}")));
        };
        let perm = Permission::parse(&format!("{obj}:{act}"))
            .map_err(|err| AccessError::Casbin(err.to_string()))?;
        lines
            .entry(sub.clone())
            .or_default()
            .push((dom.clone(), perm, eft == "deny"));
    }
    let roles: BTreeSet<String> = role_names.iter().map(|r| format!("{ROLE}{r}")).collect();
    let mut tenant_domains: BTreeSet<String> = BTreeSet::new();
    for ls in lines.values() {
        for (dom, _, _) in ls {
            if dom != ANY_TENANT {
                tenant_domains.insert(dom.clone());
            }
        }
    }
    let mut grants = Grants::default();
    for l in e.get_grouping_policy() {
        let [n1, n2, dom] = l.as_slice() else {
            return Err(AccessError::Casbin(format!("unexpected role line {l:?}")));
        };
        if dom != ANY_TENANT {
            tenant_domains.insert(dom.clone());
        }
        if let (Some(subject), Some(role)) = (n1.strip_prefix(USER), n2.strip_prefix(ROLE)) {
            grants
                .entry(dom.as_str().into())
                .or_default()
                .entry(subject.into())
                .or_default()
                .push(role.into());
        }
    }
    let domain_roles = |domain: &str| -> DomainRoles {
        roles
            .iter()
            .map(|role| {
                let mut closure = e.get_implicit_roles_for_user(role, Some(domain));
                closure.push(role.clone());
                let mut g = RoleGrants::default();
                for member in closure.iter().filter(|r| r.starts_with(ROLE)) {
                    for (dom, perm, deny) in lines.get(member).into_iter().flatten() {
                        if dom == ANY_TENANT || dom == domain {
                            if *deny {
                                g.deny.insert(perm);
                            } else {
                                g.allow.insert(perm);
                            }
                        }
                    }
                }
                let name = role.strip_prefix(ROLE).unwrap_or(role);
                (Box::from(name), g)
            })
            .collect()
    };
    Ok(RbacSnapshot {
        default: domain_roles(NO_TENANT),
        tenants: tenant_domains
            .iter()
            .map(|t| (Box::from(t.as_str()), domain_roles(t)))
            .collect(),
        grants,
    })
}

/// casbin's own answer for `subject` in `tenant` (through its grants only:
/// token roles are not casbin lines). The slow reference the snapshot is
/// tested against.
pub(crate) fn casbin_enforce(
    e: &Enforcer,
    subject: &str,
    tenant: Option<&str>,
    wanted: &Permission,
) -> Result<bool, AccessError> {
    e.enforce((
        format!("{USER}{subject}"),
        tenant.unwrap_or(NO_TENANT),
        wanted.resource(),
        wanted.action(),
    ))
    .map_err(casbin_err)
}
