use std::borrow::Cow;
use std::net::IpAddr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::context::RequestContext;
use crate::principal::Principal;
use crate::tenant::TenantId;

/// The decision or outcome an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuditDecision {
    /// Access was granted.
    Allow,
    /// Access was refused.
    Deny,
    /// An operation succeeded (a login, a refresh).
    Success,
    /// An operation failed on the caller's side (wrong password, bad token).
    Failure,
    /// An operation failed on the server's side (backend unavailable).
    Error,
}

/// How urgently a human should look at the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuditSeverity {
    /// Routine.
    #[default]
    Info,
    /// Worth a look (repeated failures, refused access).
    Warning,
    /// Likely an attack or a compromise (refresh-token reuse).
    Critical,
}

/// The longest `actor`, `resource` or `reason` an event keeps, in bytes.
///
/// These fields may carry text a client chose (a path, a resource id, a
/// subject); the builders cut anything longer at a character boundary and
/// mark the cut with `…`, so no request can make one audit entry larger than
/// a few KiB.
pub const MAX_FIELD_BYTES: usize = 512;

/// `text`, cut to [`MAX_FIELD_BYTES`] (at a character boundary, marked `…`).
fn bounded(mut text: String) -> String {
    if text.len() > MAX_FIELD_BYTES {
        let mut end = MAX_FIELD_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// `text` with personal data redacted (feature `pii`).
#[cfg(feature = "pii")]
fn redacted(text: String) -> String {
    match crate::pii::PiiDetector::all().redact(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(clean) => clean,
    }
}

#[cfg(not(feature = "pii"))]
fn redacted(text: String) -> String {
    text
}

/// One audit record. Serialised as one JSON object per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEvent {
    /// When it happened (UTC).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub time: Timestamp,
    /// Who acted (a subject or a normalised username), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The tenant it happened in, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
    /// What was attempted, as `area.verb` (`auth.login`, `access.check`).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub action: Cow<'static, str>,
    /// What it was attempted on (a route, a permission, a resource id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The decision.
    pub decision: AuditDecision,
    /// How urgent.
    #[serde(default)]
    pub severity: AuditSeverity,
    /// Why: the rule or check that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub reason: Option<Cow<'static, str>>,
    /// The request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The client address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Ipv4))]
    pub client_ip: Option<IpAddr>,
    /// The distributed trace the request belonged to (32 hex digits), when
    /// the gateway exports traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl AuditEvent {
    /// An event happening now.
    pub fn new(action: impl Into<Cow<'static, str>>, decision: AuditDecision) -> Self {
        Self {
            time: Timestamp::now(),
            actor: None,
            tenant: None,
            action: action.into(),
            resource: None,
            decision,
            severity: AuditSeverity::default(),
            reason: None,
            request_id: None,
            client_ip: None,
            trace_id: None,
        }
    }

    /// Sets the time (normally from the deciding code's `Clock`).
    #[must_use]
    pub fn at(mut self, time: Timestamp) -> Self {
        self.time = time;
        self
    }

    /// Sets the actor (cut to [`MAX_FIELD_BYTES`]).
    #[must_use]
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(bounded(actor.into()));
        self
    }

    /// Sets the tenant (a `TenantId`, or an `Option` of one; `None` clears it).
    #[must_use]
    pub fn tenant(mut self, tenant: impl Into<Option<TenantId>>) -> Self {
        self.tenant = tenant.into();
        self
    }

    /// Sets the resource (cut to [`MAX_FIELD_BYTES`]).
    #[must_use]
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(bounded(resource.into()));
        self
    }

    /// Sets the severity.
    #[must_use]
    pub fn severity(mut self, severity: AuditSeverity) -> Self {
        self.severity = severity;
        self
    }

    /// Sets the reason (cut to [`MAX_FIELD_BYTES`]). A reason built at run
    /// time (owned: it may carry input) has personal data and secrets
    /// redacted (`[REDACTED:<kind>]`) with the `pii` feature.
    #[must_use]
    pub fn reason(mut self, reason: impl Into<Cow<'static, str>>) -> Self {
        self.reason = Some(match reason.into() {
            Cow::Owned(text) => Cow::Owned(bounded(redacted(text))),
            Cow::Borrowed(text) if text.len() > MAX_FIELD_BYTES => {
                Cow::Owned(bounded(text.to_owned()))
            }
            borrowed => borrowed,
        });
        self
    }

    /// Copies the request id and client IP from a request context, and
    /// the current trace id when traces are exported.
    #[must_use]
    pub fn context(mut self, ctx: &RequestContext) -> Self {
        self.request_id = Some(ctx.request_id().to_string());
        self.client_ip = Some(ctx.client_ip());
        self.trace_id = crate::trace_context::current_trace_id();
        self
    }

    /// Copies the actor and tenant from a principal.
    #[must_use]
    pub fn principal(mut self, principal: &Principal) -> Self {
        self.actor = Some(bounded(principal.subject().to_owned()));
        self.tenant = principal.tenant().cloned();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "pii")]
    #[test]
    fn run_time_reasons_have_personal_data_redacted() {
        let event = AuditEvent::new("t", AuditDecision::Deny)
            .reason("directory said: no entry for ann@example.com from 10.1.2.3".to_owned());
        assert_eq!(
            event.reason.as_deref(),
            Some("directory said: no entry for [REDACTED:email] from [REDACTED:ip_address]")
        );
        // Fixed reasons are code, not input: kept as they are.
        let fixed = AuditEvent::new("t", AuditDecision::Deny).reason("rule 10.0.0.0/8");
        assert_eq!(fixed.reason.as_deref(), Some("rule 10.0.0.0/8"));
    }

    #[test]
    fn free_text_fields_are_bounded() {
        let long = "é".repeat(4096);
        let leaked: &'static str = Box::leak(long.clone().into_boxed_str());
        let event = AuditEvent::new("t", AuditDecision::Deny)
            .actor(long.clone())
            .resource(long.clone())
            .reason(long.clone());
        for field in [
            event.actor.as_deref(),
            event.resource.as_deref(),
            event.reason.as_deref(),
        ] {
            let field = field.unwrap();
            assert!(field.len() <= MAX_FIELD_BYTES + '…'.len_utf8());
            assert!(field.ends_with('…'));
        }
        let borrowed = AuditEvent::new("t", AuditDecision::Deny).reason(leaked);
        assert!(borrowed.reason.unwrap().len() <= MAX_FIELD_BYTES + 3);
        let short = AuditEvent::new("t", AuditDecision::Allow)
            .resource("/api/x")
            .reason("rule");
        assert_eq!(short.resource.as_deref(), Some("/api/x"));
        assert_eq!(short.reason.as_deref(), Some("rule"));
    }
}
