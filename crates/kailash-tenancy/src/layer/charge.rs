//! Charging one API call to the resolved tenant's quota. Tenancy fails
//! closed: a quota store that cannot answer refuses the request rather
//! than let it through uncounted.

use http::StatusCode;
use kailash_core::TenantId;
use kailash_core::audit::{AuditDecision, AuditSeverity};
use kailash_core::problem::Problem;

use super::audit::Origin;
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
        )) => {
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
            Err(Refused::boxed(problem, event))
        }
        Err(error) => {
            tracing::warn!(%error, tenant = %id.as_str(), "quota state unavailable; failing closed");
            Err(origin.refuse(Refusal::QuotaUnavailable, Some(id)))
        }
    }
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
