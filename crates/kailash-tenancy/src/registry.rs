//! Where tenants come from: the [`TenantRegistry`] trait and a
//! [`StaticTenantRegistry`] built from configuration.
//!
//! The static registry keeps the configured tenants in memory but stores
//! activation overrides in the shared state, so deactivating a tenant on one
//! gateway instance is seen by every instance on its next lookup.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use kailash_core::TenantId;
use kailash_core::state::{Check, Namespace, SharedState, StateError, StateKey};

use crate::model::{Tenant, TenantSpec};

/// Where activation overrides live (tenant-scoped).
const ACTIVE: Namespace = Namespace::new("tenant.active");
/// The id of the override key within [`ACTIVE`].
const ACTIVE_ID: &str = "override";

/// Why a registry lookup or change failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The registry's backing store cannot be reached or failed.
    #[error("tenant registry unavailable: {0}")]
    Unavailable(String),
    /// The registry's configuration or stored data is invalid, or the request names no known tenant.
    #[error("invalid tenant registry data: {0}")]
    Invalid(String),
}

impl From<StateError> for RegistryError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Corrupt(m) => Self::Invalid(m),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// What a registry answers without I/O ([`TenantRegistry::get_local`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LocalTenant {
    /// No tenant has this id.
    Unknown,
    /// The tenant's record, which says it is active; whether it is active
    /// *now* is `activation`, a state check the request's admission runs
    /// (with the session check, the quota and the rate limits: one round
    /// trip on Redis). The tenant is active exactly while it passes.
    Found {
        /// The tenant as configured (`active` is true).
        tenant: Arc<Tenant>,
        /// Passes while the tenant is active.
        activation: Check,
    },
}

/// A source of tenants.
#[async_trait]
pub trait TenantRegistry: Send + Sync + 'static {
    /// The tenant with `id`, with its current active flag, or `None` if unknown.
    async fn get(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>, RegistryError>;

    /// The tenant a custom domain maps to. `host` is lowercase and without a port.
    async fn by_domain(&self, host: &str) -> Result<Option<TenantId>, RegistryError>;

    /// Every tenant's id (active or not), for work over all tenants such as
    /// billing reports.
    async fn list(&self) -> Result<Vec<TenantId>, RegistryError>;

    /// [`get`](Self::get) without I/O, where the registry can give it: the
    /// record is held locally and its current activation is one
    /// [`Check`] (see [`LocalTenant::Found`]). A
    /// [`TenancyLayer`](crate::layer::TenancyLayer) composed
    /// [`deferred`](crate::layer::TenancyLayer::deferred) uses it to
    /// resolve a tenant with no lookup of its own. `None` (the default)
    /// means "ask `get`"; a registry whose tenants change at run time must
    /// answer `None` or a check that covers every change.
    fn get_local(&self, id: &TenantId) -> Option<LocalTenant> {
        let _ = id;
        None
    }
}

/// A registry of tenants fixed at start-up, with activation overrides kept in
/// the shared state.
///
/// ```
/// use std::sync::Arc;
/// use kailash_core::{clock::SystemClock, state::SharedState, TenantId};
/// use kailash_tenancy::model::TenantSpec;
/// use kailash_tenancy::registry::{StaticTenantRegistry, TenantRegistry};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let state = SharedState::memory(Arc::new(SystemClock));
/// let spec: TenantSpec = serde_json::from_str(r#"{"id": "acme", "domains": ["api.acme.test"]}"#)?;
/// let registry = StaticTenantRegistry::new(vec![spec], state)?;
/// let acme = TenantId::new("acme")?;
/// assert_eq!(registry.by_domain("api.acme.test").await?, Some(acme.clone()));
/// registry.set_active(&acme, false).await?;
/// assert!(!registry.get(&acme).await?.unwrap().active);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct StaticTenantRegistry {
    tenants: Arc<HashMap<TenantId, Arc<Tenant>>>,
    domains: Arc<HashMap<String, TenantId>>,
    state: SharedState,
}

impl StaticTenantRegistry {
    /// Builds the registry, validating every spec. Duplicate tenant ids and a
    /// domain claimed twice are refused.
    pub fn new(specs: Vec<TenantSpec>, state: SharedState) -> Result<Self, RegistryError> {
        let mut tenants = HashMap::with_capacity(specs.len());
        let mut domains = HashMap::new();
        for spec in specs {
            let tenant =
                Tenant::try_from(spec).map_err(|e| RegistryError::Invalid(e.to_string()))?;
            for d in &tenant.domains {
                if let Some(other) = domains.insert(d.clone(), tenant.id.clone()) {
                    return Err(RegistryError::Invalid(format!(
                        "domain {d:?} is claimed by tenants `{other}` and `{}`",
                        tenant.id
                    )));
                }
            }
            let id = tenant.id.clone();
            if tenants.insert(id.clone(), Arc::new(tenant)).is_some() {
                return Err(RegistryError::Invalid(format!(
                    "tenant `{id}` is configured twice"
                )));
            }
        }
        Ok(Self {
            tenants: Arc::new(tenants),
            domains: Arc::new(domains),
            state,
        })
    }

    /// Activates or deactivates a configured tenant on every instance sharing
    /// this state. Fails with [`RegistryError::Invalid`] for an unknown tenant.
    pub async fn set_active(&self, id: &TenantId, active: bool) -> Result<(), RegistryError> {
        if !self.tenants.contains_key(id) {
            return Err(RegistryError::Invalid(format!("unknown tenant `{id}`")));
        }
        let value = Bytes::from_static(if active { b"1" } else { b"0" });
        self.state
            .kv
            .set(&StateKey::tenant(id, ACTIVE, ACTIVE_ID), value, None)
            .await?;
        Ok(())
    }

    /// The configured tenant ids, sorted.
    pub fn ids(&self) -> Vec<TenantId> {
        let mut ids: Vec<TenantId> = self.tenants.keys().cloned().collect();
        ids.sort();
        ids
    }
}

#[async_trait]
impl TenantRegistry for StaticTenantRegistry {
    async fn list(&self) -> Result<Vec<TenantId>, RegistryError> {
        Ok(self.ids())
    }

    async fn get(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>, RegistryError> {
        let Some(tenant) = self.tenants.get(id) else {
            return Ok(None);
        };
        let stored = self
            .state
            .kv
            .get(&StateKey::tenant(id, ACTIVE, ACTIVE_ID))
            .await?;
        let active = match stored.as_deref() {
            None => return Ok(Some(Arc::clone(tenant))),
            Some(b"1") => true,
            Some(b"0") => false,
            Some(_) => {
                return Err(RegistryError::Invalid(format!(
                    "activation override of tenant `{id}` is corrupt"
                )));
            }
        };
        if active == tenant.active {
            return Ok(Some(Arc::clone(tenant)));
        }
        let mut changed = Tenant::clone(tenant);
        changed.active = active;
        Ok(Some(Arc::new(changed)))
    }

    fn get_local(&self, id: &TenantId) -> Option<LocalTenant> {
        match self.tenants.get(id) {
            None => Some(LocalTenant::Unknown),
            // The override is the only thing that changes at run time.
            Some(tenant) if tenant.active => Some(LocalTenant::Found {
                tenant: Arc::clone(tenant),
                activation: Check::Flag {
                    key: StateKey::tenant(id, ACTIVE, ACTIVE_ID),
                    default: true,
                },
            }),
            // Configured inactive: an override may activate it, and the
            // record handed on must then say so; `get` builds that one.
            Some(_) => None,
        }
    }

    async fn by_domain(&self, host: &str) -> Result<Option<TenantId>, RegistryError> {
        if let Some(id) = self.domains.get(host) {
            return Ok(Some(id.clone()));
        }
        // Be lenient with callers that did not normalise the case.
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            return Ok(self.domains.get(&host.to_ascii_lowercase()).cloned());
        }
        Ok(None)
    }
}
