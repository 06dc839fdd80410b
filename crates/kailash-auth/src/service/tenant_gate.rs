//! [`TenantGate`]: whether a user's tenant may act at all, asked at login
//! and refresh.

use kailash_core::TenantId;

use super::{AuthError, AuthService};

/// Tells the login path whether a tenant may act at all. Implemented by the
/// gateway over its tenant registry (kailash-auth does not depend on
/// tenancy); deactivation takes effect at the next login or refresh.
#[async_trait::async_trait]
pub trait TenantGate: Send + Sync + 'static {
    /// Whether `tenant` is active; `Err` when it cannot be told (fail closed).
    async fn is_active(&self, tenant: &TenantId) -> Result<bool, String>;
}

impl AuthService {
    /// Whether `tenant` may act; users without a tenant, and services
    /// without a gate, always may.
    pub(super) async fn tenant_active(&self, tenant: Option<&TenantId>) -> Result<bool, AuthError> {
        match (&self.inner.tenants, tenant) {
            (Some(gate), Some(t)) => gate.is_active(t).await.map_err(|e| {
                tracing::warn!(error = %e, "tenant registry unavailable");
                AuthError::Unavailable
            }),
            _ => Ok(true),
        }
    }
}
