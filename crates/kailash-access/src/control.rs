//! [`AccessControl`]: the policy in force, swapped atomically, and audited
//! decisions.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use kailash_core::audit::{AuditDecision, AuditError, AuditEvent, AuditSeverity, AuditSink, offer};
use kailash_core::clock::{Clock, SystemClock};
use kailash_core::context::RequestContext;
use kailash_core::{Principal, Problem};

use crate::error::AccessError;
use crate::permission::Permission;
use crate::policy::{AccessPolicy, AccessRequest, Decision, Explanation, Resource};
use crate::spec::AccessSpec;

/// The audit action of every access decision.
pub const AUDIT_ACTION: &str = "access.check";

struct Inner {
    policy: ArcSwap<AccessPolicy>,
    /// Counts the policies put in force (see [`AccessControl::generation`]).
    generation: AtomicU64,
    audit: Option<Arc<dyn AuditSink>>,
    clock: Arc<dyn Clock>,
    labels: PermissionLabels,
}

/// The permissions used as metric labels: at most [`MAX_PERMISSION_LABELS`]
/// distinct ones, later ones counted as `other`, so a caller that builds
/// permissions from data cannot grow the series without bound.
#[derive(Default)]
struct PermissionLabels(std::sync::RwLock<std::collections::HashSet<Arc<str>>>);

/// How many distinct permissions `kailash_access_decisions_total` labels.
pub const MAX_PERMISSION_LABELS: usize = 256;

impl PermissionLabels {
    fn label(&self, permission: &Permission) -> metrics::SharedString {
        let text = permission.as_str();
        {
            let known = self.0.read().unwrap_or_else(|p| p.into_inner());
            if let Some(label) = known.get(text) {
                return metrics::SharedString::from(label.clone());
            }
            if known.len() >= MAX_PERMISSION_LABELS {
                return metrics::SharedString::const_str("other");
            }
        }
        let mut known = self.0.write().unwrap_or_else(|p| p.into_inner());
        if known.len() >= MAX_PERMISSION_LABELS {
            return metrics::SharedString::const_str("other");
        }
        let label: Arc<str> = Arc::from(text);
        known.insert(label.clone());
        metrics::SharedString::from(label)
    }
}

/// The access policy in force and the audit trail its decisions go to.
///
/// Cheap to clone (one `Arc`); every clone sees the same policy. A
/// [`replace`](Self::replace) or [`reload`](Self::reload) is one atomic
/// pointer swap: each decision reads exactly one policy, old or new, never
/// a mix, and no lock is taken on the request path.
///
/// ```
/// use std::sync::Arc;
/// use kailash_access::{AccessControl, AccessPolicy, AccessRequest};
/// use kailash_access::permission::Permission;
/// use kailash_access::spec::AccessSpec;
/// use kailash_core::audit::MemoryAuditSink;
/// use kailash_core::Principal;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let spec: AccessSpec = serde_json::from_str(
///     r#"{ "roles": [{ "name": "business_user", "permissions": ["report:view"] }] }"#,
/// ).unwrap();
/// let audit = Arc::new(MemoryAuditSink::new());
/// let access = AccessControl::new(AccessPolicy::load(&spec).await?).audit(audit.clone());
///
/// let bob = Principal::builder("bob").role("business_user").build();
/// let view = Permission::parse("report:view")?;
/// let decision = access.check(&bob, &view, None, None).await?;
/// assert!(decision.allowed);
/// assert_eq!(decision.rule, "role `business_user` grants `report:view`");
/// assert_eq!(audit.events().len(), 1);
///
/// // A broken replacement is refused and the old policy stays.
/// let broken: AccessSpec = serde_json::from_str(
///     r#"{ "roles": [{ "name": "x", "inherits": ["nobody"] }] }"#,
/// ).unwrap();
/// let generation = access.generation();
/// assert!(access.reload(&broken).await.is_err());
/// assert!(access.decide(&AccessRequest::new(&bob, &view, jiff::Timestamp::now())).allowed);
/// assert_eq!(access.generation(), generation);
///
/// // Every reload that succeeds starts a new generation (caches key by it).
/// access.reload(&spec).await?;
/// assert_ne!(access.generation(), generation);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct AccessControl {
    inner: Arc<Inner>,
}

impl fmt::Debug for AccessControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessControl")
            .field("policy", &*self.inner.policy.load())
            .field("audit", &self.inner.audit.is_some())
            .finish()
    }
}

impl AccessControl {
    /// Puts `policy` in force, with the system clock and no audit sink.
    pub fn new(policy: AccessPolicy) -> Self {
        Self {
            inner: Arc::new(Inner {
                policy: ArcSwap::from_pointee(policy),
                generation: AtomicU64::new(0),
                audit: None,
                clock: Arc::new(SystemClock),
                labels: PermissionLabels::default(),
            }),
        }
    }

    fn rebuild(self, f: impl FnOnce(&mut Option<Arc<dyn AuditSink>>, &mut Arc<dyn Clock>)) -> Self {
        let policy = self.inner.policy.load_full();
        let generation = self.generation();
        let mut audit = self.inner.audit.clone();
        let mut clock = self.inner.clock.clone();
        f(&mut audit, &mut clock);
        Self {
            inner: Arc::new(Inner {
                policy: ArcSwap::new(policy),
                generation: AtomicU64::new(generation),
                audit,
                clock,
                labels: PermissionLabels::default(),
            }),
        }
    }

    /// Records every decision made through [`check`](Self::check) and the
    /// [`RequirePermissionLayer`](crate::layer::RequirePermissionLayer) layer in `sink`.
    #[must_use]
    pub fn audit(self, sink: Arc<dyn AuditSink>) -> Self {
        self.rebuild(|a, _| *a = Some(sink))
    }

    /// The clock `current_time.*` comes from when no request context says
    /// when the request arrived.
    #[must_use]
    pub fn clock(self, clock: Arc<dyn Clock>) -> Self {
        self.rebuild(|_, c| *c = clock)
    }

    /// The policy in force now.
    pub fn policy(&self) -> Arc<AccessPolicy> {
        self.inner.policy.load_full()
    }

    /// Puts `policy` in force for every decision from now on.
    pub fn replace(&self, policy: AccessPolicy) {
        self.inner.policy.store(Arc::new(policy));
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The policy's generation: a number that changes every time a policy
    /// is put in force ([`replace`](Self::replace), [`reload`](Self::reload)),
    /// even the same one again. A response cache keys its entries by it
    /// (kailash-core's `cache::Generation`), so nothing decided or computed
    /// under one policy is served under the next.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    /// Compiles `spec` and puts it in force; on error the policy in force
    /// stays and the error says what is wrong.
    pub async fn reload(&self, spec: &AccessSpec) -> Result<(), AccessError> {
        let policy = AccessPolicy::load(spec).await?;
        self.replace(policy);
        Ok(())
    }

    /// The time now, by this control's clock.
    pub fn now(&self) -> jiff::Timestamp {
        self.inner.clock.now()
    }

    /// Decides without auditing. Counted in
    /// `kailash_access_decisions_total{permission, effect}` (effect `allow`,
    /// `deny`, or `deferred` while policies wait for the resource).
    pub fn decide(&self, req: &AccessRequest<'_>) -> Decision {
        // A child span of the request's when traces are exported (DEBUG:
        // free when only logs at INFO listen).
        let span = tracing::debug_span!(
            "access.decide",
            permission = %req.permission,
            effect = tracing::field::Empty
        );
        let _entered = span.enter();
        let decision = self.inner.policy.load().decide(req);
        let effect = match (decision.allowed, decision.pending.is_empty()) {
            (false, _) => "deny",
            (true, true) => "allow",
            (true, false) => "deferred",
        };
        span.record("effect", effect);
        metrics::counter!(
            "kailash_access_decisions_total",
            "permission" => self.inner.labels.label(req.permission),
            "effect" => effect,
        )
        .increment(1);
        decision
    }

    /// Explains a decision (without auditing it).
    pub fn explain(&self, req: &AccessRequest<'_>) -> Explanation {
        self.inner.policy.load().explain(req)
    }

    /// The sink decisions are audited to.
    pub(crate) fn audit_sink(&self) -> Option<&Arc<dyn AuditSink>> {
        self.inner.audit.as_ref()
    }

    /// Builds the request for `principal` and `permission` from a request
    /// context (time of arrival, client IP) or this control's clock.
    pub fn request<'a>(
        &self,
        principal: &'a Principal,
        permission: &'a Permission,
        ctx: Option<&RequestContext>,
    ) -> AccessRequest<'a> {
        let mut req = AccessRequest::new(
            principal,
            permission,
            ctx.map_or_else(|| self.now(), RequestContext::received_at),
        );
        req.client_ip = ctx.map(RequestContext::client_ip);
        req
    }

    /// Decides and audits: the full check a handler makes once it knows the
    /// resource (`resource`: its id, for the audit entry, and its
    /// attributes, for `data.*`). Without a resource, conditions reading
    /// `data.*` deny.
    ///
    /// Returns once the decision's audit event is written; an event the
    /// sink refuses is the error, and the handler answers with
    /// [`AuditError::problem`] (503) instead of acting.
    pub async fn check(
        &self,
        principal: &Principal,
        permission: &Permission,
        resource: Option<(&str, &crate::condition::Attributes)>,
        ctx: Option<&RequestContext>,
    ) -> Result<Decision, AuditError> {
        let mut req = self.request(principal, permission, ctx);
        if let Some((_, attributes)) = resource {
            req.resource = Resource::Attributes(attributes);
        }
        let decision = self.decide(&req);
        if let Some(sink) = &self.inner.audit {
            let event = audit_event(
                principal,
                permission,
                resource.map(|r| r.0),
                ctx,
                decision.allowed,
                decision.rule.clone(),
            );
            offer(Some(sink), event).settle().await?;
        }
        Ok(decision)
    }
}

impl kailash_core::cache::Generation for AccessControl {
    fn generation(&self) -> u64 {
        AccessControl::generation(self)
    }
}

/// The audit entry of one decision.
pub(crate) fn audit_event(
    principal: &Principal,
    permission: &Permission,
    resource_id: Option<&str>,
    ctx: Option<&RequestContext>,
    allowed: bool,
    rule: String,
) -> AuditEvent {
    let resource = match resource_id {
        Some(id) => {
            let mut r = String::with_capacity(permission.as_str().len() + 1 + id.len());
            r.push_str(permission.as_str());
            r.push(' ');
            r.push_str(id);
            r
        }
        None => permission.as_str().to_owned(),
    };
    let mut event = AuditEvent::new(
        AUDIT_ACTION,
        if allowed {
            AuditDecision::Allow
        } else {
            AuditDecision::Deny
        },
    )
    .principal(principal)
    .resource(resource)
    .reason(rule)
    .severity(if allowed {
        AuditSeverity::Info
    } else {
        AuditSeverity::Warning
    });
    if let Some(ctx) = ctx {
        event = event.context(ctx).at(ctx.received_at());
    }
    event
}

/// The 403 problem of a denied decision: names the permission, never the
/// rule (that is in the audit trail and [`AccessControl::explain`]).
pub fn forbidden(permission: &Permission) -> Problem {
    Problem::forbidden(format!(
        "permission `{permission}` is not granted for this request"
    ))
    .with_extension("permission", permission.as_str())
}
