//! Workflows in the shared state, with the owner's and the tenant's counts.
//!
//! Creating a workflow makes three reservations, in this order: the
//! owner's slot under its role's `max_workflows`
//! ([`Limits`](kailash_access::limits::Limits)), one unit of the tenant's
//! workflow quota ([`Quotas`](kailash_tenancy::quota::Quotas)), then the
//! workflow itself and its entry in the tenant's index. When a later step
//! fails, the earlier ones are undone, so a refused or failed create never
//! leaves a count charged. Deleting releases each count on its own, so one
//! failed release does not keep the others.

use kailash_access::AccessControl;
use kailash_access::limits::Limits;
use kailash_core::Principal;
use kailash_core::state::{Namespace, SharedState, StateError, StateKey, WhenFull, until_removed};
use kailash_tenancy::model::Tenant;
use kailash_tenancy::quota::{QuotaDecision, Quotas};

use crate::compile::compile;
use crate::error::{DefinitionError, WorkflowError};
use crate::registry::NodeRegistry;
use crate::workflow::{MAX_NAME_CHARS, NewWorkflow, Workflow};

// The reference deployment's key names from before this crate existed: a
// store already holding workflows keeps serving them.
/// One workflow (`t:<tenant>:demo.workflow:<id>`).
const WORKFLOW: Namespace = Namespace::new("demo.workflow");
/// The tenant's index of workflow ids (`t:<tenant>:demo.workflows:all`).
const INDEX: Namespace = Namespace::new("demo.workflows");

/// Tenant-scoped workflows that count against the owner's role limit and
/// the tenant's quota. Cheap to clone; every clone shares the state.
#[derive(Debug, Clone)]
pub struct WorkflowStore {
    limits: Limits,
    quotas: Quotas,
    state: SharedState,
    registry: NodeRegistry,
}

fn workflow_key(tenant: &Tenant, id: &str) -> StateKey {
    StateKey::tenant(&tenant.id, WORKFLOW, id)
}

fn index_key(tenant: &Tenant) -> StateKey {
    StateKey::tenant(&tenant.id, INDEX, "all")
}

fn new_id() -> Option<String> {
    use std::fmt::Write as _;
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).ok()?;
    let mut id = String::with_capacity(3 + 2 * bytes.len());
    id.push_str("wf-");
    for b in bytes {
        let _ = write!(id, "{b:02x}");
    }
    Some(id)
}

impl WorkflowStore {
    /// A store in `state`, charging the role limits `access` puts in force
    /// and the tenants' quotas (kept in the same state), and validating
    /// definitions against the node types of `registry`.
    pub fn new(access: AccessControl, state: SharedState, registry: NodeRegistry) -> Self {
        Self {
            limits: Limits::new(access, state.clone()),
            quotas: Quotas::new(state.clone()),
            state,
            registry,
        }
    }

    /// The node types definitions are validated against.
    pub fn registry(&self) -> &NodeRegistry {
        &self.registry
    }

    /// Creates a workflow owned by `principal` in `tenant`.
    ///
    /// Checks, in order: the principal belongs to `tenant`, the name, the
    /// definition ([`compile()`]: the tenant's rules, node types and configs,
    /// connections, no cycle, size bounds), the owner's `max_workflows`,
    /// the tenant's workflow quota; then stores it. A refusal or failure after
    /// a reservation releases it again.
    pub async fn create(
        &self,
        principal: &Principal,
        tenant: &Tenant,
        new: NewWorkflow,
    ) -> Result<Workflow, WorkflowError> {
        // Limits and audit entries use the principal's tenant, the keys the
        // request's: they must be one tenant (a principal without one never
        // acts inside a tenant).
        if principal.tenant() != Some(&tenant.id) {
            return Err(WorkflowError::TenantMismatch);
        }
        let name = new
            .checked_name()
            .ok_or(WorkflowError::InvalidName {
                max_chars: MAX_NAME_CHARS,
            })?
            .to_owned();
        let definition = new.into_definition();
        compile(&definition, tenant, &self.registry).map_err(|e| match e {
            DefinitionError::Tenant(v) => WorkflowError::Violation(v),
            other => WorkflowError::Definition(other),
        })?;
        let id = new_id().ok_or(WorkflowError::IdGenerator)?;

        self.limits.reserve_workflow(principal, &id).await?;
        let release_owner = || {
            self.limits
                .release_workflow(Some(&tenant.id), principal.subject(), &id)
        };
        match self.quotas.reserve_workflow(tenant).await {
            Ok(QuotaDecision::Allowed { .. }) => {}
            Ok(QuotaDecision::Refused { limit, .. }) => {
                let _ = release_owner().await;
                return Err(WorkflowError::QuotaExhausted { limit });
            }
            Err(e) => {
                let _ = release_owner().await;
                return Err(WorkflowError::Quota(e));
            }
        }

        let workflow = Workflow {
            id: id.clone(),
            name,
            owner: principal.subject().to_owned(),
            created_at: self.state.clock.now(),
            definition,
        };
        if let Err(e) = self.put(tenant, &workflow).await {
            // Undo in reverse: the half-written workflow, then both counts.
            let _ = self.state.kv.delete(&workflow_key(tenant, &id)).await;
            let _ = release_owner().await;
            let _ = self.quotas.release_workflow(tenant).await;
            return Err(WorkflowError::Store(e));
        }
        Ok(workflow)
    }

    async fn put(&self, tenant: &Tenant, workflow: &Workflow) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(workflow).map_err(|e| StateError::Backend(e.to_string()))?;
        self.state
            .kv
            .set(&workflow_key(tenant, &workflow.id), bytes.into(), None)
            .await?;
        let keep = until_removed(self.state.clock.now());
        self.state
            .sets
            .insert(
                &index_key(tenant),
                &workflow.id,
                keep,
                usize::MAX,
                WhenFull::Reject,
            )
            .await?;
        Ok(())
    }

    /// The workflow `id` of `tenant`; `None` for an unknown id or another
    /// tenant's (the key is the tenant's, so the two look the same).
    pub async fn get(&self, tenant: &Tenant, id: &str) -> Result<Option<Workflow>, WorkflowError> {
        let Some(bytes) = self
            .state
            .kv
            .get(&workflow_key(tenant, id))
            .await
            .map_err(WorkflowError::Store)?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| WorkflowError::Store(StateError::Corrupt(e.to_string())))
    }

    /// The tenant's workflows, oldest first (ties by id).
    pub async fn list(&self, tenant: &Tenant) -> Result<Vec<Workflow>, WorkflowError> {
        let members = self
            .state
            .sets
            .members(&index_key(tenant))
            .await
            .map_err(WorkflowError::Store)?;
        let mut out = Vec::with_capacity(members.len());
        for m in members {
            // An index entry whose workflow is gone (a delete in progress) is skipped.
            if let Some(w) = self.get(tenant, &m.member).await? {
                out.push(w);
            }
        }
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Deletes workflow `id` of `tenant` and releases the index entry, the
    /// owner's `max_workflows` slot and the tenant's quota unit. `false`
    /// when there is no such workflow (or a concurrent delete won: that one
    /// releases the counts). A failed release is logged, not returned: the
    /// workflow is gone either way.
    pub async fn delete(&self, tenant: &Tenant, id: &str) -> Result<bool, WorkflowError> {
        let Some(workflow) = self.get(tenant, id).await? else {
            return Ok(false);
        };
        if !self
            .state
            .kv
            .delete(&workflow_key(tenant, id))
            .await
            .map_err(WorkflowError::Store)?
        {
            return Ok(false);
        }
        let index = self
            .state
            .sets
            .remove(&index_key(tenant), id)
            .await
            .map(drop);
        let owner = self
            .limits
            .release_workflow(Some(&tenant.id), &workflow.owner, id)
            .await
            .map(drop);
        let quota = self.quotas.release_workflow(tenant).await;
        for (what, result) in [
            ("index entry", index),
            ("owner's max_workflows slot", owner),
            ("tenant quota", quota),
        ] {
            if let Err(e) = result {
                tracing::warn!(error = %e, workflow = id, "deleted, but releasing the {what} failed");
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
