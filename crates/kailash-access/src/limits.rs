//! Per-role resource limits, enforced in the shared state.
//!
//! A role's `max_workflows` caps the workflows a holder owns at once (a
//! bounded set per user: exact across instances, and a release can never
//! drive the count below zero); `max_executions_per_hour` caps executions
//! in a fixed one-hour window (a windowed counter). A principal's limit is
//! the most generous among its roles that set one
//! ([`ResourceLimits`](crate::ResourceLimits)); state keys are the
//! principal's tenant's.
//!
//! ```
//! use std::sync::Arc;
//! use kailash_access::{AccessControl, AccessPolicy};
//! use kailash_access::limits::{LimitError, Limits};
//! use kailash_access::spec::AccessSpec;
//! use kailash_core::clock::SystemClock;
//! use kailash_core::state::SharedState;
//! use kailash_core::{Principal, TenantId};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let spec: AccessSpec = serde_json::from_str(
//!     r#"{ "roles": [{ "name": "business_user", "max_workflows": 1, "max_executions_per_hour": 2 }] }"#,
//! )?;
//! let access = AccessControl::new(AccessPolicy::load(&spec).await?);
//! let limits = Limits::new(access, SharedState::memory(Arc::new(SystemClock)));
//! let bob = Principal::builder("bob").tenant(TenantId::new("acme")?).role("business_user").build();
//!
//! limits.reserve_workflow(&bob, "wf-1").await?;
//! let refused = limits.reserve_workflow(&bob, "wf-2").await.unwrap_err();
//! assert_eq!(refused.to_problem().status(), 403);
//! limits.release_workflow(bob.tenant(), bob.subject(), "wf-1").await?;
//! limits.reserve_workflow(&bob, "wf-2").await?;
//!
//! limits.charge_execution(&bob).await?;
//! limits.charge_execution(&bob).await?;
//! let LimitError::Exceeded { retry_after, .. } = limits.charge_execution(&bob).await.unwrap_err() else { panic!() };
//! assert!(retry_after.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::time::Duration;

use kailash_core::state::{
    BoundedAdd, Namespace, SharedState, StateError, StateKey, WhenFull, until_removed,
};
use kailash_core::{Principal, Problem, TenantId};

use crate::control::AccessControl;

const WORKFLOWS: Namespace = Namespace::new("access.workflows");
const EXECUTIONS: Namespace = Namespace::new("access.executions");
const HOUR: Duration = Duration::from_secs(3600);

/// Why a limit refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// The principal is at its limit.
    #[error("limit `{limit}` reached (at most {max})")]
    Exceeded {
        /// `max_workflows` or `max_executions_per_hour`.
        limit: &'static str,
        /// The principal's limit.
        max: u64,
        /// When a windowed limit allows again (`None` for a count cap).
        retry_after: Option<Duration>,
    },
    /// The state backend could not answer; the request is refused (fail closed).
    #[error(transparent)]
    State(#[from] StateError),
}

impl LimitError {
    /// `403` for a count cap, `429` with `Retry-After` for a windowed
    /// limit, `503` when the state is unavailable; each names the limit.
    pub fn to_problem(&self) -> Problem {
        match self {
            LimitError::Exceeded {
                limit,
                max,
                retry_after: None,
            } => Problem::forbidden(format!("limit `{limit}` reached: at most {max}"))
                .with_extension("limit", *limit)
                .with_extension("max", *max),
            LimitError::Exceeded {
                limit,
                max,
                retry_after: Some(after),
            } => Problem::too_many_requests(*after)
                .with_detail(format!("limit `{limit}` reached: at most {max}"))
                .with_extension("limit", *limit)
                .with_extension("max", *max),
            LimitError::State(_) => {
                Problem::service_unavailable("limit accounting is temporarily unavailable")
            }
        }
    }
}

/// Enforces role resource limits; cheap to clone.
#[derive(Debug, Clone)]
pub struct Limits {
    access: AccessControl,
    state: SharedState,
}

fn key(ns: Namespace, tenant: Option<&TenantId>, subject: &str) -> StateKey {
    match tenant {
        Some(t) => StateKey::tenant(t, ns, subject),
        // A principal without a tenant (a single-tenant deployment).
        None => StateKey::global(ns, subject),
    }
}

fn clamp(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

impl Limits {
    /// Limits from the policies `access` puts in force, counted in `state`.
    pub fn new(access: AccessControl, state: SharedState) -> Self {
        Self { access, state }
    }

    /// Records that `principal` now owns workflow `id`, within its
    /// `max_workflows`. Reserving an id it already owns changes nothing.
    pub async fn reserve_workflow(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<(), LimitError> {
        let max = self.access.policy().limits_for(principal).max_workflows;
        let owner = key(WORKFLOWS, principal.tenant(), principal.subject());
        let expires = until_removed(self.state.clock.now());
        if max == Some(0) {
            return Err(LimitError::Exceeded {
                limit: "max_workflows",
                max: 0,
                retry_after: None,
            });
        }
        let cap = max.map_or(usize::MAX, clamp);
        let done = self
            .state
            .sets
            .insert(&owner, id, expires, cap, WhenFull::Reject)
            .await?;
        if done.inserted {
            Ok(())
        } else {
            Err(LimitError::Exceeded {
                limit: "max_workflows",
                max: max.unwrap_or(u64::MAX),
                retry_after: None,
            })
        }
    }

    /// Releases workflow `id` of `subject` in `tenant` (its owner, who may
    /// not be the caller). Returns whether it was held.
    pub async fn release_workflow(
        &self,
        tenant: Option<&TenantId>,
        subject: &str,
        id: &str,
    ) -> Result<bool, StateError> {
        self.state
            .sets
            .remove(&key(WORKFLOWS, tenant, subject), id)
            .await
    }

    /// How many workflows `principal` owns.
    pub async fn workflows_owned(&self, principal: &Principal) -> Result<usize, StateError> {
        Ok(self
            .state
            .sets
            .members(&key(WORKFLOWS, principal.tenant(), principal.subject()))
            .await?
            .len())
    }

    /// Gives back one execution charged by
    /// [`charge_execution`](Self::charge_execution) for a run that was not
    /// started after all (a later check refused it). Never below zero.
    pub async fn refund_execution(&self, principal: &Principal) -> Result<(), StateError> {
        let k = key(EXECUTIONS, principal.tenant(), principal.subject());
        let v = self.state.counters.add(&k, -1, Some(HOUR)).await?;
        if v.value < 0 {
            // The window ended between charge and refund: undo the refund.
            self.state.counters.add(&k, 1, Some(HOUR)).await?;
        }
        Ok(())
    }

    /// Charges one execution against `max_executions_per_hour` (a fixed
    /// window that starts with the first execution). Returns the count in
    /// the window.
    pub async fn charge_execution(&self, principal: &Principal) -> Result<u64, LimitError> {
        let max = self
            .access
            .policy()
            .limits_for(principal)
            .max_executions_per_hour;
        let k = key(EXECUTIONS, principal.tenant(), principal.subject());
        let counters = &self.state.counters;
        let Some(max) = max else {
            let v = counters.add(&k, 1, Some(HOUR)).await?;
            return Ok(u64::try_from(v.value).unwrap_or(0));
        };
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        match counters.add_within(&k, 1, limit, Some(HOUR)).await? {
            BoundedAdd::Applied(v) => Ok(u64::try_from(v.value).unwrap_or(0)),
            BoundedAdd::Refused(v) => Err(LimitError::Exceeded {
                limit: "max_executions_per_hour",
                max,
                retry_after: Some(v.expires_in.unwrap_or(HOUR)),
            }),
        }
    }
}
