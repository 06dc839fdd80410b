//! The tenant registry as kailash-auth's tenant gate, so login and refresh
//! refuse inactive tenants without the two crates knowing each other.

use std::sync::Arc;

use kailash_tenancy::registry::TenantRegistry;

/// The tenant registry as the auth service's tenant gate.
pub(crate) struct RegistryGate(pub(crate) Arc<dyn TenantRegistry>);

#[async_trait::async_trait]
impl kailash_auth::service::TenantGate for RegistryGate {
    async fn is_active(&self, tenant: &kailash_core::TenantId) -> Result<bool, String> {
        match self.0.get(tenant).await {
            Ok(found) => Ok(found.is_some_and(|t| t.active)),
            Err(e) => Err(e.to_string()),
        }
    }
}
