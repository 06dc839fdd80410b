//! Why a request is refused, and what the client and the audit trail are
//! told. Fixed phrases only: nothing the client sent is echoed back or
//! written to the trail.

use kailash_core::audit::{AuditDecision, AuditEvent, AuditSeverity};
use kailash_core::problem::Problem;

/// Why resolution refused a request; mapped to a problem and an audit reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    MalformedHeader,
    MalformedHost,
    Mismatch,
    TenantlessPrincipal,
    NoTenant,
    Unknown,
    Inactive,
    RegistryUnavailable,
    QuotaUnavailable,
}

impl Refusal {
    pub(super) fn problem(self) -> Problem {
        match self {
            Refusal::MalformedHeader => {
                Problem::bad_request("the X-Tenant-ID header is not a single valid tenant id")
            }
            Refusal::MalformedHost => Problem::bad_request("the request's host is malformed"),
            Refusal::Mismatch => Problem::forbidden("tenant mismatch"),
            Refusal::TenantlessPrincipal => {
                Problem::forbidden("the caller belongs to no tenant and cannot choose one")
            }
            Refusal::NoTenant => Problem::bad_request("the request names no tenant"),
            Refusal::Unknown => Problem::forbidden("unknown tenant"),
            Refusal::Inactive => Problem::forbidden("tenant is inactive"),
            Refusal::RegistryUnavailable => {
                Problem::service_unavailable("the tenant registry is temporarily unavailable")
            }
            Refusal::QuotaUnavailable => {
                Problem::service_unavailable("tenant quotas are temporarily unavailable")
            }
        }
    }

    pub(super) fn reason(self) -> &'static str {
        match self {
            Refusal::MalformedHeader => "malformed tenant header",
            Refusal::MalformedHost => "malformed host",
            Refusal::Mismatch => "tenant sources disagree",
            Refusal::TenantlessPrincipal => "tenantless principal named a tenant",
            Refusal::NoTenant => "no tenant named",
            Refusal::Unknown => "unknown tenant",
            Refusal::Inactive => "tenant is inactive",
            Refusal::RegistryUnavailable => "tenant registry unavailable",
            Refusal::QuotaUnavailable => "quota state unavailable",
        }
    }

    pub(super) fn decision(self) -> AuditDecision {
        match self {
            Refusal::RegistryUnavailable | Refusal::QuotaUnavailable => AuditDecision::Error,
            _ => AuditDecision::Deny,
        }
    }

    pub(super) fn severity(self) -> AuditSeverity {
        match self {
            Refusal::Mismatch | Refusal::TenantlessPrincipal => AuditSeverity::Warning,
            _ => AuditSeverity::Info,
        }
    }
}

/// A refusal ready to send: the problem for the client and the event for
/// the audit trail (recorded only when the layer has a sink).
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) problem: Problem,
    pub(super) event: AuditEvent,
}

impl Refused {
    /// Boxed, because it travels in the error side of a `Result` whose
    /// success side is one pointer.
    pub(super) fn boxed(problem: Problem, event: AuditEvent) -> Box<Self> {
        Box::new(Self { problem, event })
    }
}
