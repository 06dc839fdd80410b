//! Charging one API call to the resolved tenant's quota. Tenancy fails
//! closed: a quota store that cannot answer refuses the request rather
//! than let it through uncounted.

use std::sync::Arc;

use http::StatusCode;
use kailash_core::TenantId;
use kailash_core::admission::{CheckOwner, Refusal as AdmissionRefusal, RequestView};
use kailash_core::audit::offer;
use kailash_core::audit::{AuditDecision, AuditSeverity};
use kailash_core::problem::Problem;
use kailash_core::state::StateError;
use kailash_core::state::{BoundedAdd, Check, Outcome};

use super::audit::Origin;
use super::config::Config;
use super::refusal::{Refusal, Refused};
use crate::model::Tenant;
use crate::quota::{ApiCallCharge, QuotaDecision, Quotas};

/// Charges one API call to `tenant` (resolved as `id`, which its events
/// name), returning the receipt to refund it with; refuses with `429` (and
/// `Retry-After` when the quota resets by itself) once it is exhausted,
/// `503` when the quota state is unavailable.
pub(super) async fn charge_api_call(
    quotas: &Quotas,
    tenant: &Tenant,
    id: &TenantId,
    origin: &Origin,
) -> Result<Option<ApiCallCharge>, Box<Refused>> {
    match quotas.charge_api_call_refundable(tenant).await {
        Ok((QuotaDecision::Allowed { .. }, charge)) => Ok(charge),
        Ok((
            QuotaDecision::Refused {
                quota, retry_after, ..
            },
            _,
        )) => Err(exhausted(origin, id, quota, retry_after)),
        Err(error) => Err(unavailable(origin, id, &error)),
    }
}

/// The refusal of an exhausted quota: `429` (with `Retry-After` when the
/// quota resets by itself) naming the quota, and its audit event.
pub(super) fn exhausted(
    origin: &Origin,
    id: &TenantId,
    quota: &'static str,
    retry_after: Option<std::time::Duration>,
) -> Box<Refused> {
    let mut problem = match retry_after {
        Some(after) => Problem::too_many_requests(after),
        None => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "quota-exceeded",
            "Too Many Requests",
        ),
    };
    problem = problem
        .with_detail(format!("the tenant's {quota} quota is exhausted"))
        .with_extension("quota", quota);
    let event = origin.event_with(
        AuditDecision::Deny,
        AuditSeverity::Info,
        format!("{quota} quota exhausted"),
        Some(id),
    );
    Refused::boxed(problem, event)
}

/// The refusal of a quota store that cannot answer (fail closed).
pub(super) fn unavailable(origin: &Origin, id: &TenantId, error: &StateError) -> Box<Refused> {
    tracing::warn!(%error, tenant = %id.as_str(), "quota state unavailable; failing closed");
    origin.refuse(Refusal::QuotaUnavailable, Some(id))
}

/// Gives back a charged call after an inner guard refused the request: the
/// quota counts only requests that passed authentication, access control
/// and the per-user limit. A store that cannot answer keeps the charge
/// (logged): the tenant pays for one refused request rather than the
/// gateway failing an answer already made.
pub(super) async fn refund_api_call(quotas: &Quotas, charge: &ApiCallCharge, id: &TenantId) {
    if let Err(error) = quotas.refund_api_call(charge).await {
        tracing::warn!(%error, tenant = %id.as_str(), "could not refund a refused request's API call");
    }
}

/// Answers for the layer's deferred checks in the request's admission:
/// the tenant's activation (`403` inactive, `503` when the registry's state
/// cannot answer — as the lookup would) and the API-call charge (exactly as
/// [`charge_api_call`] answers).
pub(super) struct QuotaOwner {
    config: Arc<Config>,
}

impl QuotaOwner {
    pub(super) fn shared(config: &Arc<Config>) -> Arc<dyn CheckOwner> {
        Arc::new(Self {
            config: config.clone(),
        })
    }
}

impl CheckOwner for QuotaOwner {
    fn refuse(
        &self,
        check: &Check,
        outcome: &Outcome,
        request: RequestView<'_>,
    ) -> Option<AdmissionRefusal> {
        let origin = Origin::of_extensions(request.extensions);
        let Some(id) = request.extensions.get::<TenantId>() else {
            // The layer inserts the tenant with the check: fail closed.
            return Some(AdmissionRefusal::new(Refusal::QuotaUnavailable.problem()));
        };
        let refused = match (check, outcome) {
            (Check::Flag { .. }, Outcome::Flag(false)) => {
                origin.refuse(Refusal::Inactive, Some(id))
            }
            (Check::Flag { .. }, Outcome::Failed(error)) => {
                tracing::warn!(%error, tenant = %id.as_str(), "tenant registry unavailable");
                origin.refuse(Refusal::RegistryUnavailable, Some(id))
            }
            (Check::Counter { .. }, Outcome::Counter(BoundedAdd::Refused(_))) => exhausted(
                &origin,
                id,
                "api_calls_per_day",
                crate::quota::api_call_retry_after(check),
            ),
            (_, Outcome::Failed(error)) => unavailable(&origin, id, error),
            // Anything else is not an answer to a charge: fail closed.
            _ => unavailable(
                &origin,
                id,
                &StateError::Backend("unexpected admission outcome".into()),
            ),
        };
        let Refused { problem, event } = *refused;
        Some(AdmissionRefusal {
            problem,
            audit: offer(self.config.audit.as_ref(), event),
        })
    }
}
