//! The part of resolution that asks the registry: which tenant owns a
//! custom domain, whether the agreed tenant exists and is active — and
//! then charges its quota. Every failure becomes a refusal; none passes.

use std::sync::Arc;

use super::audit::Origin;
use super::charge::charge_api_call;
use super::config::Config;
use super::refusal::{Refusal, Refused};
use super::sources::{Local, Source};
use crate::model::Tenant;
use crate::quota::ApiCallCharge;

/// The tenant a request resolved to, and the API call charged for it (to
/// give back if an inner guard refuses the request).
pub(super) struct Resolved {
    pub(super) tenant: Arc<Tenant>,
    pub(super) charge: Option<ApiCallCharge>,
}

/// The active, charged tenant of a request whose local sources were read
/// into `local`.
pub(super) async fn resolve(
    config: &Config,
    local: Local,
    origin: &Origin,
) -> Result<Resolved, Box<Refused>> {
    let Local {
        mut claims,
        lookup_host,
    } = local;
    if let Some(host) = lookup_host {
        match config.registry.by_domain(&host).await {
            Ok(Some(id)) => claims.add(Source::CustomDomain, id),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "tenant registry unavailable (domain lookup)");
                return Err(origin.refuse(Refusal::RegistryUnavailable, claims.principal()));
            }
        }
    }
    let id = claims
        .agreed()
        .map_err(|r| origin.refuse(r, claims.principal()))?;
    let tenant = match config.registry.get(&id).await {
        Ok(Some(tenant)) => tenant,
        Ok(None) => return Err(origin.refuse(Refusal::Unknown, Some(&id))),
        Err(error) => {
            tracing::warn!(%error, tenant = %id.as_str(), "tenant registry unavailable");
            return Err(origin.refuse(Refusal::RegistryUnavailable, Some(&id)));
        }
    };
    if !tenant.active {
        return Err(origin.refuse(Refusal::Inactive, Some(&id)));
    }
    // A deferred quota is charged by the admission, not here.
    let charge = match &config.quotas {
        Some(quotas) if !config.deferred => charge_api_call(quotas, &tenant, &id, origin).await?,
        _ => None,
    };
    Ok(Resolved { tenant, charge })
}
