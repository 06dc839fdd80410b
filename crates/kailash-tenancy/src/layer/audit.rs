//! The audit events of refused requests: who asked (the principal, if
//! authenticated) and from where (the request context), never what they
//! sent — a raw header or host could carry anything.

use std::borrow::Cow;

use http::Request;
use kailash_core::audit::{AuditDecision, AuditEvent, AuditSeverity};
use kailash_core::context::RequestContext;
use kailash_core::{Principal, TenantId};

use super::refusal::{Refusal, Refused};

/// The audit action of every event this layer records.
pub const AUDIT_ACTION: &str = "tenant.resolve";

/// Who and where, for audit events; taken from the request before it moves
/// into the inner service.
pub(super) struct Origin {
    principal: Option<Principal>,
    context: Option<RequestContext>,
}

impl Origin {
    pub(super) fn of<B>(req: &Request<B>) -> Self {
        Self::of_extensions(req.extensions())
    }

    pub(super) fn of_extensions(extensions: &http::Extensions) -> Self {
        Self {
            principal: extensions.get::<Principal>().cloned(),
            context: extensions.get::<RequestContext>().cloned(),
        }
    }

    /// The tenant of the authenticated principal: the only tenant an event
    /// names before resolution has agreed on one.
    pub(super) fn principal_tenant(&self) -> Option<&TenantId> {
        self.principal.as_ref().and_then(Principal::tenant)
    }

    /// `refusal` as a problem and its event.
    pub(super) fn refuse(&self, refusal: Refusal, tenant: Option<&TenantId>) -> Box<Refused> {
        Refused::boxed(refusal.problem(), self.event(refusal, tenant))
    }

    pub(super) fn event(&self, refusal: Refusal, tenant: Option<&TenantId>) -> AuditEvent {
        self.event_with(
            refusal.decision(),
            refusal.severity(),
            refusal.reason(),
            tenant,
        )
    }

    pub(super) fn event_with(
        &self,
        decision: AuditDecision,
        severity: AuditSeverity,
        reason: impl Into<Cow<'static, str>>,
        tenant: Option<&TenantId>,
    ) -> AuditEvent {
        let mut event = AuditEvent::new(AUDIT_ACTION, decision)
            .severity(severity)
            .reason(reason);
        if let Some(ctx) = &self.context {
            event = event.context(ctx);
        }
        if let Some(principal) = &self.principal {
            event = event.principal(principal);
        }
        if let Some(tenant) = tenant {
            event = event.tenant(tenant.clone());
        }
        event
    }
}
