//! [`AccessPolicy`]: roles, ABAC policies and limits, checked and compiled
//! once; decisions that cannot fail.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use casbin::Enforcer;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use kailash_core::Principal;
use kailash_core::hash::FnvHashMap;
use serde::Serialize;

use crate::condition::{Attributes, Clause, CompiledCondition, Context, Policy, Schema, clauses};
use crate::error::AccessError;
use crate::permission::Permission;
use crate::rbac::{self, RbacOutcome, RbacSnapshot};
use crate::spec::{AccessSpec, Effect, Strategy};

/// The longest policy name accepted.
pub const MAX_POLICY_NAME_LEN: usize = 64;

static NO_ATTRIBUTES: LazyLock<Attributes> = LazyLock::new(Attributes::new);

/// The resource a request is about, for `data.*` in conditions.
#[derive(Debug, Clone, Copy, Default)]
pub enum Resource<'a> {
    /// No resource: a condition reading `data.*` denies (missing attribute).
    #[default]
    None,
    /// The resource's attributes.
    Attributes(&'a Attributes),
    /// A route-level check before the handler has loaded the resource:
    /// conditions reading `data.*` are not evaluated but returned in
    /// [`Decision::pending`], and the handler must check them with the
    /// resource's attributes.
    Deferred,
}

/// One access question: may this principal use this permission now?
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// Who asks (verified; `user.*` comes only from here).
    pub principal: &'a Principal,
    /// What for.
    pub permission: &'a Permission,
    /// On what.
    pub resource: Resource<'a>,
    /// When (`current_time.*`).
    pub now: Timestamp,
    /// From where (`request.client_ip`); `None` makes conditions reading it deny.
    pub client_ip: Option<IpAddr>,
}

impl<'a> AccessRequest<'a> {
    /// A request at `now` with no resource and no client IP.
    pub fn new(principal: &'a Principal, permission: &'a Permission, now: Timestamp) -> Self {
        Self {
            principal,
            permission,
            resource: Resource::None,
            now,
            client_ip: None,
        }
    }

    /// Sets the resource's attributes.
    #[must_use]
    pub fn resource(mut self, attributes: &'a Attributes) -> Self {
        self.resource = Resource::Attributes(attributes);
        self
    }

    /// Defers `data.*` conditions to a later check with the resource.
    #[must_use]
    pub fn defer_resource(mut self) -> Self {
        self.resource = Resource::Deferred;
        self
    }

    /// Sets the client IP.
    #[must_use]
    pub fn client_ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(ip);
        self
    }
}

/// An access decision and the rule that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Whether access is allowed.
    pub allowed: bool,
    /// The rule that decided, e.g. ``role `data_scientist` grants `data:read`; policy `data_access` holds``.
    pub rule: String,
    /// With [`Resource::Deferred`]: policies still to be checked against the resource.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<Arc<str>>,
}

impl Decision {
    fn deny(rule: String) -> Self {
        Self {
            allowed: false,
            rule,
            pending: Vec::new(),
        }
    }
}

/// Where an explanation step comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A role of the principal.
    Role,
    /// An ABAC policy applying to the permission.
    Policy,
}

/// One line of an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
pub struct ExplainStep {
    /// Role or policy.
    pub kind: StepKind,
    /// Its name.
    pub name: String,
    /// What it contributed (`grants`, `denies`, `does not grant`, `unknown role`,
    /// `holds`, `not satisfied`, `cannot be evaluated: …`,
    /// `deferred to the resource check`, `not consulted`).
    pub outcome: String,
    /// A policy's condition, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// A policy's comparisons, each evaluated on its own: which held, which
    /// did not, and the values compared (empty for roles and for policies
    /// not evaluated).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clauses: Vec<Clause>,
}

/// Why a request was (or would be) allowed or denied: every role and every
/// applicable policy, evaluated without short-circuiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The strategy in force.
    pub strategy: Strategy,
    /// The decision (the same as [`AccessPolicy::decide`] gives).
    pub decision: Decision,
    /// What each role and policy said.
    pub steps: Vec<ExplainStep>,
}

/// Per-holder resource limits: for a principal, the most generous value
/// among its roles that set one (`None`: no role sets it, so unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ResourceLimits {
    /// Workflows owned at once.
    pub max_workflows: Option<u64>,
    /// Executions started per hour.
    pub max_executions_per_hour: Option<u64>,
}

struct CompiledPolicy {
    name: Arc<str>,
    applies_to: Vec<Permission>,
    effect: Effect,
    condition: CompiledCondition,
    reads_data: bool,
}

impl CompiledPolicy {
    fn applies(&self, p: &Permission) -> bool {
        self.applies_to.iter().any(|a| a.covers(p))
    }
}

/// A loaded access policy: the casbin RBAC model with its compiled
/// snapshot, the compiled ABAC policies, the strategy, the time zone and
/// the role limits. Immutable; replace it whole through
/// [`AccessControl::replace`](crate::AccessControl::replace).
pub struct AccessPolicy {
    strategy: Strategy,
    time_zone: TimeZone,
    time_zone_name: String,
    rbac: RbacSnapshot,
    enforcer: Enforcer,
    policies: Vec<CompiledPolicy>,
    /// Each role's limits and, for a role restricted to some tenants, those
    /// tenants (its limits apply there only, like its permissions).
    limits: FnvHashMap<Box<str>, (ResourceLimits, Option<Vec<kailash_core::TenantId>>)>,
    roles: Vec<String>,
}

impl fmt::Debug for AccessPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessPolicy")
            .field("strategy", &self.strategy)
            .field("time_zone", &self.time_zone_name)
            .field("roles", &self.roles)
            .field(
                "policies",
                &self.policies.iter().map(|p| &p.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Concatenates `parts`, with room for what a decision appends (one
/// allocation, no formatting machinery: this is on the request path).
fn rule(parts: &[&str]) -> String {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut s = String::with_capacity(len + 72);
    for p in parts {
        s.push_str(p);
    }
    s
}

fn valid_policy_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_POLICY_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn schema(spec: &AccessSpec) -> Result<Schema, AccessError> {
    let mut schema = Schema::new();
    for (path, ty) in &spec.attributes {
        let ok = path
            .split_once('.')
            .is_some_and(|(root, rest)| matches!(root, "user" | "data") && !rest.is_empty());
        if !ok {
            return Err(AccessError::Attribute {
                path: path.clone(),
                message: "declared attributes are `user.<name>` or `data.<name>`".into(),
            });
        }
        schema = schema.attribute(path.clone(), *ty);
    }
    Ok(schema)
}

fn time_zone(name: &str) -> Result<TimeZone, AccessError> {
    if name.eq_ignore_ascii_case("utc") {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|_| AccessError::TimeZone(name.to_owned()))
}

impl AccessPolicy {
    /// Checks and compiles `spec`: role names, inheritance (no unknown
    /// roles, no cycles), grants, attribute declarations, every condition
    /// (parsed and type-checked, with its position on error) and the time
    /// zone. Nothing about a loaded policy can fail at request time.
    pub async fn load(spec: &AccessSpec) -> Result<Self, AccessError> {
        let time_zone_value = time_zone(&spec.time_zone)?;
        let schema = schema(spec)?;
        let mut policies = Vec::with_capacity(spec.policies.len());
        for p in &spec.policies {
            let err = |message: &str| AccessError::Policy {
                policy: p.name.clone(),
                message: message.to_owned(),
            };
            if !valid_policy_name(&p.name) {
                return Err(err(
                    "a policy name is 1-64 characters of letters, digits, `_`, `.` and `-`",
                ));
            }
            if policies.iter().any(|c: &CompiledPolicy| *c.name == *p.name) {
                return Err(err("defined more than once"));
            }
            if p.applies_to.is_empty() {
                return Err(err("`applies_to` names no permission"));
            }
            let condition =
                Policy::compile(&p.condition, &schema).map_err(|error| AccessError::Condition {
                    policy: p.name.clone(),
                    error,
                })?;
            policies.push(CompiledPolicy {
                name: Arc::from(p.name.as_str()),
                applies_to: p.applies_to.clone(),
                effect: p.effect,
                reads_data: condition.ast().reads_data(),
                condition,
            });
        }
        let enforcer = rbac::enforcer(&spec.roles, &spec.grants).await?;
        let names: Vec<&str> = spec.roles.iter().map(|r| r.name.as_str()).collect();
        let rbac = rbac::snapshot(&enforcer, &names)?;
        let limits = spec
            .roles
            .iter()
            .map(|r| {
                (
                    Box::from(r.name.as_str()),
                    (
                        ResourceLimits {
                            max_workflows: r.max_workflows,
                            max_executions_per_hour: r.max_executions_per_hour,
                        },
                        r.tenants.clone(),
                    ),
                )
            })
            .collect();
        Ok(Self {
            strategy: spec.strategy,
            time_zone: time_zone_value,
            time_zone_name: spec.time_zone.clone(),
            rbac,
            enforcer,
            policies,
            limits,
            roles: spec.roles.iter().map(|r| r.name.clone()).collect(),
        })
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The defined role names.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// Whether a role of this name is defined.
    pub fn has_role(&self, role: &str) -> bool {
        self.rbac.knows(role)
    }

    /// Whether a policy applying to `permission` reads `data.*`, i.e. the
    /// permission can only be fully checked with the resource.
    pub fn needs_resource(&self, permission: &Permission) -> bool {
        self.strategy != Strategy::Rbac
            && self
                .policies
                .iter()
                .any(|p| p.reads_data && p.applies(permission))
    }

    fn roles_of<'a>(&'a self, principal: &'a Principal) -> impl Iterator<Item = &'a str> {
        let tenant = principal.tenant().map(|t| t.as_str());
        principal.roles().iter().map(String::as_str).chain(
            self.rbac
                .granted_roles(tenant, principal.subject())
                .iter()
                .map(|r| &**r),
        )
    }

    /// The principal's resource limits (see [`ResourceLimits`]); a role
    /// restricted to other tenants contributes none.
    pub fn limits_for(&self, principal: &Principal) -> ResourceLimits {
        let mut out = ResourceLimits::default();
        let max = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        };
        let tenant = principal.tenant();
        for role in self.roles_of(principal) {
            let Some((l, tenants)) = self.limits.get(role) else {
                continue;
            };
            let applies = tenants
                .as_ref()
                .is_none_or(|ts| tenant.is_some_and(|t| ts.contains(t)));
            if applies {
                out.max_workflows = max(out.max_workflows, l.max_workflows);
                out.max_executions_per_hour =
                    max(out.max_executions_per_hour, l.max_executions_per_hour);
            }
        }
        out
    }

    /// casbin's own RBAC answer for `subject` in `tenant`, through the
    /// subject's configured grants (token roles are not casbin lines). Slow:
    /// the reference the compiled snapshot is tested against.
    pub fn casbin_enforce(
        &self,
        subject: &str,
        tenant: Option<&kailash_core::TenantId>,
        permission: &Permission,
    ) -> Result<bool, AccessError> {
        rbac::casbin_enforce(
            &self.enforcer,
            subject,
            tenant.map(|t| t.as_str()),
            permission,
        )
    }

    fn context<'a>(&self, req: &AccessRequest<'a>) -> Context<'a> {
        let data = match req.resource {
            Resource::Attributes(a) => a,
            Resource::None | Resource::Deferred => &NO_ATTRIBUTES,
        };
        let mut ctx = Context::new(req.principal, data, req.now, &self.time_zone);
        ctx.client_ip = req.client_ip;
        ctx
    }

    fn rbac(&self, req: &AccessRequest<'_>) -> Result<Option<String>, String> {
        let p = req.principal;
        match self.rbac.decide(
            p.tenant().map(|t| t.as_str()),
            p.subject(),
            p.roles(),
            req.permission,
        ) {
            RbacOutcome::Granted(role) => Ok(Some(rule(&[
                "role `",
                role,
                "` grants `",
                req.permission.as_str(),
                "`",
            ]))),
            RbacOutcome::Denied(role) => Err(rule(&[
                "role `",
                role,
                "` denies `",
                req.permission.as_str(),
                "`",
            ])),
            RbacOutcome::NotGranted => {
                Err(rule(&["no role grants `", req.permission.as_str(), "`"]))
            }
        }
    }

    /// Decides `req`. Never fails and never panics: an unknown role grants
    /// nothing, a missing attribute or a value of the wrong type makes its
    /// policy deny (a `deny` policy that cannot be evaluated denies too).
    pub fn decide(&self, req: &AccessRequest<'_>) -> Decision {
        let mut decided = match self.strategy {
            Strategy::Abac => None,
            Strategy::Rbac | Strategy::Hybrid => match self.rbac(req) {
                Ok(r) => r,
                Err(r) => return Decision::deny(r),
            },
        };
        if self.strategy == Strategy::Rbac {
            return Decision {
                allowed: true,
                rule: decided.unwrap_or_default(),
                pending: Vec::new(),
            };
        }
        let deferred = matches!(req.resource, Resource::Deferred);
        let mut ctx = None;
        let mut held = 0usize;
        let mut pending = Vec::new();
        for p in self.policies.iter().filter(|p| p.applies(req.permission)) {
            if deferred && p.reads_data {
                pending.push(p.name.clone());
                continue;
            }
            let ctx = ctx.get_or_insert_with(|| self.context(req));
            match (p.effect, p.condition.test(ctx)) {
                (Effect::Require, Ok(true)) => {
                    held += 1;
                    let r = decided.get_or_insert_with(|| String::with_capacity(64));
                    if !r.is_empty() {
                        r.push_str("; ");
                    }
                    for part in ["policy `", &p.name, "` holds"] {
                        r.push_str(part);
                    }
                }
                (Effect::Require, Ok(false)) => {
                    return Decision::deny(rule(&["policy `", &p.name, "` not satisfied"]));
                }
                (Effect::Deny, Ok(true)) => {
                    return Decision::deny(rule(&["deny policy `", &p.name, "` holds"]));
                }
                (Effect::Deny, Ok(false)) => {}
                // A policy that cannot be evaluated denies, whatever its
                // effect: doubt never allows.
                (_, Err(reason)) => {
                    return Decision::deny(rule(&["policy `", &p.name, "`: ", &reason]));
                }
            }
        }
        if self.strategy == Strategy::Abac && held == 0 && pending.is_empty() {
            return Decision::deny(rule(&["no policy grants `", req.permission.as_str(), "`"]));
        }
        Decision {
            allowed: true,
            rule: decided.unwrap_or_default(),
            pending,
        }
    }

    /// Explains `req`: the decision plus what every role of the principal
    /// and every applicable policy said.
    pub fn explain(&self, req: &AccessRequest<'_>) -> Explanation {
        let decision = self.decide(req);
        let mut steps = Vec::new();
        let tenant = req.principal.tenant().map(|t| t.as_str());
        for role in self.roles_of(req.principal) {
            let outcome = if !self.rbac.knows(role) {
                "unknown role".to_owned()
            } else if self.strategy == Strategy::Abac {
                "not consulted (strategy abac)".to_owned()
            } else {
                let one = [role.to_owned()];
                match self.rbac.decide(tenant, "", &one, req.permission) {
                    RbacOutcome::Granted(_) => "grants".to_owned(),
                    RbacOutcome::Denied(_) => "denies".to_owned(),
                    RbacOutcome::NotGranted if self.rbac.role_has_grants(tenant, role) => {
                        "does not grant".to_owned()
                    }
                    RbacOutcome::NotGranted => "grants nothing in this tenant".to_owned(),
                }
            };
            steps.push(ExplainStep {
                kind: StepKind::Role,
                name: role.to_owned(),
                outcome,
                condition: None,
                clauses: Vec::new(),
            });
        }
        let deferred = matches!(req.resource, Resource::Deferred);
        let ctx = self.context(req);
        for p in self.policies.iter().filter(|p| p.applies(req.permission)) {
            let evaluated = self.strategy != Strategy::Rbac && !(deferred && p.reads_data);
            let outcome = if self.strategy == Strategy::Rbac {
                "not consulted (strategy rbac)".to_owned()
            } else if deferred && p.reads_data {
                "deferred to the resource check".to_owned()
            } else {
                let effect = match p.effect {
                    Effect::Require => "",
                    Effect::Deny => "deny policy ",
                };
                match p.condition.test(&ctx) {
                    Ok(true) => format!("{effect}holds"),
                    Ok(false) => format!("{effect}not satisfied"),
                    Err(r) => format!("{effect}cannot be evaluated: {r}"),
                }
            };
            steps.push(ExplainStep {
                kind: StepKind::Policy,
                name: p.name.to_string(),
                outcome,
                condition: Some(p.condition.source().to_owned()),
                clauses: if evaluated {
                    clauses(p.condition.ast(), &ctx)
                } else {
                    Vec::new()
                },
            });
        }
        Explanation {
            strategy: self.strategy,
            decision,
            steps,
        }
    }
}

impl fmt::Display for Explanation {
    /// The explanation for people: the verdict with the rule the audit
    /// trail records, then one line per role and policy, and one per
    /// comparison of each evaluated policy.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.decision.allowed {
            "allow"
        } else {
            "deny"
        };
        writeln!(f, "{verdict}: {}", self.decision.rule)?;
        let strategy = match self.strategy {
            Strategy::Rbac => "rbac",
            Strategy::Abac => "abac",
            Strategy::Hybrid => "hybrid",
        };
        writeln!(f, "  strategy {strategy}")?;
        if self.steps.is_empty() {
            writeln!(f, "  (no role and no applicable policy)")?;
        }
        for step in &self.steps {
            let kind = match step.kind {
                StepKind::Role => "role",
                StepKind::Policy => "policy",
            };
            writeln!(f, "  {kind} `{}`: {}", step.name, step.outcome)?;
            if let Some(condition) = &step.condition {
                writeln!(f, "    condition: {condition}")?;
            }
            for c in &step.clauses {
                match &c.values {
                    Some(v) => writeln!(f, "    [{}] {}: {} ({v})", c.at, c.test, c.outcome)?,
                    None => writeln!(f, "    [{}] {}: {}", c.at, c.test, c.outcome)?,
                }
            }
        }
        for p in &self.decision.pending {
            writeln!(f, "  pending resource check: policy `{p}`")?;
        }
        Ok(())
    }
}
