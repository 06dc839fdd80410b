//! Agent sessions (the seed's `create_tenant_session`): a user's working
//! context in their tenant, which runs belong to.
//!
//! Keys: `t:<tenant>:runtime.session:<id>` (the [`AgentSession`] as JSON,
//! expiring with the session) and `t:<tenant>:runtime.sessions:<subject>`
//! (bounded set: the user's sessions, at most `max_sessions_per_user`).

use bytes::Bytes;
use jiff::Timestamp;
use kailash_core::TenantId;
use kailash_core::state::{Namespace, SharedState, StateError, StateKey, WhenFull};
use serde::{Deserialize, Serialize};

use crate::runtime::config::ConcurrencyLimits;
use crate::runtime::error::RuntimeError;

const SESSION: Namespace = Namespace::new("runtime.session");
const SESSIONS: Namespace = Namespace::new("runtime.sessions");

/// The limits a session's runs are held to, as the session was opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
pub struct SessionLimits {
    /// Concurrent runs per scope (`None`: unlimited).
    pub max_concurrent_workflows: ConcurrencyLimits,
    /// A run's deadline in seconds: the lower of the runtime's and the
    /// tenant's.
    pub max_execution_time_secs: Option<u64>,
    /// A run's byte budget in MiB: the lower of the runtime's and the
    /// tenant's.
    pub max_memory_mb: Option<u64>,
    /// The user's role limit on runs per hour.
    pub max_executions_per_hour: Option<u64>,
    /// The tenant's workflow quota.
    pub max_workflows: Option<u64>,
}

/// An agent session and the seed's session metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
pub struct AgentSession {
    /// Its id (`as-` and 24 hex digits).
    pub id: String,
    /// The tenant it is in.
    #[cfg_attr(feature = "axum", schema(value_type = String))]
    pub tenant_id: TenantId,
    /// The tenant's name.
    pub tenant_name: String,
    /// The user who opened it.
    pub user: String,
    /// `session` (runs are the user's own) or `tenant` (every holder of
    /// `workflow:execute` in the tenant sees them), per the runtime's
    /// `session_isolation`.
    pub isolation_level: String,
    /// The limits in force when it was opened.
    pub resource_limits: SessionLimits,
    /// The tenant's plan.
    pub billing_plan: String,
    /// When it was opened.
    #[cfg_attr(feature = "axum", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it ends by itself.
    #[cfg_attr(feature = "axum", schema(value_type = String, format = DateTime))]
    pub expires_at: Timestamp,
}

fn session_key(tenant: &TenantId, id: &str) -> StateKey {
    StateKey::tenant(tenant, SESSION, id)
}

fn index_key(tenant: &TenantId, subject: &str) -> StateKey {
    StateKey::tenant(tenant, SESSIONS, subject)
}

/// Sessions in one shared state.
#[derive(Debug, Clone)]
pub(crate) struct Sessions {
    pub(crate) state: SharedState,
    pub(crate) max_per_user: usize,
}

impl Sessions {
    /// Stores `session`, refusing when its user holds the most sessions.
    pub(crate) async fn insert(&self, session: &AgentSession) -> Result<(), RuntimeError> {
        let now = self.state.clock.now();
        let ttl = session.expires_at.duration_since(now).unsigned_abs();
        let taken = self
            .state
            .sets
            .insert(
                &index_key(&session.tenant_id, &session.user),
                &session.id,
                session.expires_at,
                self.max_per_user,
                WhenFull::Reject,
            )
            .await?;
        if !taken.inserted {
            return Err(RuntimeError::TooManySessions {
                max: self.max_per_user,
            });
        }
        let bytes = serde_json::to_vec(session)
            .map_err(|e| RuntimeError::State(StateError::Corrupt(e.to_string())))?;
        if let Err(e) = self
            .state
            .kv
            .set(
                &session_key(&session.tenant_id, &session.id),
                Bytes::from(bytes),
                Some(ttl),
            )
            .await
        {
            let _ = self
                .state
                .sets
                .remove(&index_key(&session.tenant_id, &session.user), &session.id)
                .await;
            return Err(e.into());
        }
        Ok(())
    }

    /// A live session of `tenant`.
    pub(crate) async fn get(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<AgentSession>, RuntimeError> {
        let Some(raw) = self.state.kv.get(&session_key(tenant, id)).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| RuntimeError::State(StateError::Corrupt(e.to_string())))
    }

    /// Ends a session. Returns whether it was live.
    pub(crate) async fn remove(&self, session: &AgentSession) -> Result<bool, RuntimeError> {
        let _ = self
            .state
            .sets
            .remove(&index_key(&session.tenant_id, &session.user), &session.id)
            .await?;
        Ok(self
            .state
            .kv
            .delete(&session_key(&session.tenant_id, &session.id))
            .await?)
    }
}
