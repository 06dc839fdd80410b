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
use crate::quota::{QuotaDecision, Quotas};

/// Charges one API call to `tenant` (resolved as `id`, which its events
/// name); refuses with `429` (and `Retry-After`
/// when the quota resets by itself) once it is exhausted, `503` when the
/// quota state is unavailable.
pub(super) async fn charge_api_call(
    quotas: &Quotas,
    tenant: &Tenant,
    id: &TenantId,
    origin: &Origin,
) -> Result<(), Box<Refused>> {
    match quotas.charge_api_call(tenant).await {
        Ok(QuotaDecision::Allowed { .. }) => Ok(()),
        Ok(QuotaDecision::Refused {
            quota, retry_after, ..
        }) => {
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
