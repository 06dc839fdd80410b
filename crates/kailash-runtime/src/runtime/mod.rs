//! The access-controlled runtime: agent sessions, and workflow runs under
//! access checks, audit, session isolation and real resource limits.
//!
//! The seed's `AccessControlledRuntime(access_control_strategy,
//! audit_enabled, session_isolation, resource_limits)` with every switch
//! enforced:
//!
//! - **strategy**: the `rbac | abac | hybrid` strategy of the
//!   [`AccessControl`]'s policy decides every check below;
//! - **before a run**: `workflow:execute` on the workflow (attributes
//!   `data.workflow_id`, `data.owner`, `data.tenant`);
//! - **before each node**: `node:<type>:execute` (attributes
//!   `data.node_type`, `data.node_id`, `data.workflow_id`, `data.tenant`);
//!   a refused node ends the run `refused`, naming the node, and no later
//!   node runs;
//! - **`audit_enabled`**: the run decision (`workflow.execute`), every
//!   node decision (`workflow.node`), every refusal before a run and every
//!   run's outcome (`workflow.run`), sessions (`workflow.session`) and
//!   cancellations (`workflow.cancel`) are audited; a decision the audit
//!   trail refuses is not acted on;
//! - **`session_isolation`**: runs and sessions belong to the user who
//!   started them; nobody else in the tenant sees or cancels them without
//!   [`MANAGE_PERMISSION`]; other tenants never do (their keys differ);
//! - **`max_concurrent_workflows`** per process, tenant and user: slots
//!   are leases in the state backend that expire with the run's lease;
//! - **`max_execution_time`** and **`max_memory_mb`**: the executor's
//!   deadline (`timed_out`) and byte budget (see [`crate::executor`] for
//!   exactly what it measures), the lower of the runtime's and the
//!   tenant's; plus admission control on the process's resident memory;
//! - the role's **`max_executions_per_hour`**, charged per accepted run.
//!
//! Runs live in the shared state (keys `t:<tenant>:runtime.*`), so any
//! instance answers their status — with each node's status stored as the
//! node ends — and cancels them; a run whose instance stopped renewing
//! its lease reads as `abandoned`, never `running` forever.
//!
//! ```
//! use std::sync::Arc;
//! use kailash_access::{AccessControl, AccessPolicy, spec::AccessSpec};
//! use kailash_core::{Principal, TenantId, clock::SystemClock, state::SharedState};
//! use kailash_runtime::runtime::{AccessControlledRuntime, RunRequest, RuntimeConfig};
//! use kailash_runtime::{NewWorkflow, NodeRegistry, RunStatus, WorkflowStore};
//! use kailash_tenancy::model::{Tenant, TenantSpec};
//! use serde_json::json;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let spec: AccessSpec = serde_json::from_value(json!({ "roles": [{
//!     "name": "analyst",
//!     "permissions": ["workflow:create", "workflow:execute", "node:transform:execute"]
//! }]}))?;
//! let access = AccessControl::new(AccessPolicy::load(&spec).await?);
//! let state = SharedState::memory(Arc::new(SystemClock));
//! let workflows = WorkflowStore::new(access.clone(), state.clone(), NodeRegistry::builtin());
//! let config = RuntimeConfig { audit_enabled: false, ..RuntimeConfig::default() };
//! let runtime = AccessControlledRuntime::builder(config, access, state, workflows.clone())
//!     .build()
//!     .await?;
//!
//! let acme = Arc::new(Tenant::try_from(serde_json::from_str::<TenantSpec>(r#"{"id": "acme"}"#)?)?);
//! let dave = Principal::builder("dave").tenant(TenantId::new("acme")?).role("analyst").build();
//! let wf = workflows.create(&dave, &acme, serde_json::from_value::<NewWorkflow>(json!({
//!     "name": "double", "inputs": ["n"],
//!     "nodes": [{"id": "x2", "type": "transform", "config": {"expression": "sum([n, n])"}}],
//!     "connections": [{"from": {"input": "n"}, "to": {"node": "x2", "input": "n"}}]
//! }))?).await?;
//!
//! let session = runtime.open_session(&dave, &acme).await?;
//! let run = runtime
//!     .start(&dave, &acme, &session.id, RunRequest { workflow_id: wf.id, inputs: json!({"n": 21}) })
//!     .await?;
//! let done = runtime.wait(&dave, &acme, &run.run_id).await?;
//! assert_eq!(done.status, RunStatus::Completed);
//! assert_eq!(done.outputs, Some(json!({"x2": {"result": 42.0}})));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod config;
mod error;
pub(crate) mod rss;
mod runs;
mod sessions;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use kailash_access::condition::Attributes;
use kailash_access::limits::Limits;
use kailash_access::permission::Permission;
use kailash_access::{AccessControl, Decision};
use kailash_core::audit::{AuditDecision, AuditEvent, AuditSeverity, AuditSink, offer};
use kailash_core::state::SharedState;
use kailash_core::{Principal, TenantId};
use kailash_tenancy::model::Tenant;
use kailash_tenancy::quota::Quotas;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;

pub use config::{ConcurrencyLimits, ConfigError, ResourceLimits, RuntimeConfig};
pub use error::RuntimeError;
pub use sessions::{AgentSession, SessionLimits};

use crate::compile::{CompiledWorkflow, compile};
use crate::executor::{
    CancelToken, EventSink, Executor, NoEvents, NodeHook, NodeInfo, NodeStatus, Refusal,
    RunContext, RunEvent, RunLimits, RunRecord, RunStatus, new_record,
};
use crate::store::WorkflowStore;
use runs::{Runs, Slots};
use sessions::Sessions;

/// The permission to see and cancel other users' runs and sessions in
/// one's own tenant when `session_isolation` is on.
pub const MANAGE_PERMISSION: &str = "execution:manage";
/// The permission a run (and an agent session) needs on its workflow.
pub const EXECUTE_PERMISSION: &str = "workflow:execute";

/// Audit action of the `workflow:execute` decision before a run.
pub const AUDIT_EXECUTE: &str = "workflow.execute";
/// Audit action of a run refused before it started, and of a run's outcome.
pub const AUDIT_RUN: &str = "workflow.run";
/// Audit action of a node decision.
pub const AUDIT_NODE: &str = "workflow.node";
/// Audit action of opening, refusing and ending agent sessions.
pub const AUDIT_SESSION: &str = "workflow.session";
/// Audit action of a cancellation.
pub const AUDIT_CANCEL: &str = "workflow.cancel";

/// The longest workflow, session or run id accepted, in bytes (longer
/// ones answer like unknown ids).
pub const MAX_WORKFLOW_ID_BYTES: usize = 64;
/// The most runs [`AccessControlledRuntime::list`] returns.
pub const MAX_LISTED: usize = 100;

const MIB: u64 = 1 << 20;

/// What a caller asks to run: a workflow of their tenant and its inputs.
///
/// Its published schema (feature `axum`) is its shape: a `workflow_id` of
/// 1 to [`MAX_WORKFLOW_ID_BYTES`] ASCII letters, digits, `_`, `-` or `.`
/// (so never more bytes than the lookup accepts), and `inputs` an object.
/// Whether the inputs match the workflow's declared inputs is decided
/// against the stored workflow ([`RuntimeError::Inputs`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The workflow's id.
    #[cfg_attr(
        feature = "axum",
        schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$")
    )]
    pub workflow_id: String,
    /// Its inputs: an object with exactly the workflow's declared inputs
    /// (default `{}`).
    #[serde(default = "empty_object")]
    #[cfg_attr(feature = "axum", schema(value_type = Object))]
    pub inputs: Value,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Builds an [`AccessControlledRuntime`].
pub struct RuntimeBuilder {
    config: RuntimeConfig,
    access: AccessControl,
    state: SharedState,
    workflows: WorkflowStore,
    audit: Option<Arc<dyn AuditSink>>,
    events: Arc<dyn EventSink>,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("config", &self.config)
            .field("audit", &self.audit.is_some())
            .finish_non_exhaustive()
    }
}

impl RuntimeBuilder {
    /// Audits to `sink` (required while `audit_enabled`).
    #[must_use]
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// Sends every run's events (`execution.started`, `node.completed`,
    /// `execution.completed`) to `events`.
    #[must_use]
    pub fn events(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = events;
        self
    }

    /// Validates the config and starts the runtime: it subscribes to
    /// cancellation requests from other instances (so it needs a tokio
    /// runtime) and takes a fresh instance id for its process slots.
    pub async fn build(self) -> Result<AccessControlledRuntime, ConfigError> {
        self.config.validate()?;
        let audit = if self.config.audit_enabled {
            Some(self.audit.ok_or(ConfigError {
                field: "audit_enabled",
                reason: "auditing is on but the runtime has no audit sink".into(),
            })?)
        } else {
            None
        };
        let instance = random_id("i-").ok_or(ConfigError {
            field: "instance",
            reason: "no randomness for an instance id".into(),
        })?;
        let r = &self.config.resource_limits;
        let limits = RunLimits {
            max_execution_time: r.max_execution_time_secs.map(Duration::from_secs),
            max_bytes: r.max_memory_mb.map(|mb| mb.saturating_mul(MIB)),
            ..RunLimits::default()
        };
        let guard = NodeGuard {
            access: self.access.clone(),
            audit: audit.clone(),
        };
        let events = self.events;
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| Inner {
            executor: Executor::new(self.state.clock.clone())
                .with_hook(Arc::new(guard))
                .with_events(Arc::new(ProgressSink {
                    inner: events,
                    runtime: weak.clone(),
                }))
                .with_limits(limits),
            runs: Runs {
                state: self.state.clone(),
                instance,
                lease: self.config.lease(),
                retention: Duration::from_secs(self.config.retention_secs),
                max_per_user: self.config.max_runs_per_user,
            },
            sessions: Sessions {
                state: self.state.clone(),
                max_per_user: self.config.max_sessions_per_user,
            },
            limits: Limits::new(self.access.clone(), self.state.clone()),
            quotas: Quotas::new(self.state.clone()),
            config: self.config,
            access: self.access,
            workflows: self.workflows,
            audit,
            local: Mutex::new(HashMap::new()),
            shutting_down: AtomicBool::new(false),
            running: watch::Sender::new(0),
            stats: StatCounters::default(),
        });
        listen_for_cancellations(&inner).await;
        Ok(AccessControlledRuntime { inner })
    }
}

/// Runs workflows under access control, audit, session isolation and
/// resource limits; see the [module docs](self). Cheap to clone.
#[derive(Clone)]
pub struct AccessControlledRuntime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AccessControlledRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessControlledRuntime")
            .field("config", &self.inner.config)
            .field("instance", &self.inner.runs.instance)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: RuntimeConfig,
    access: AccessControl,
    limits: Limits,
    quotas: Quotas,
    workflows: WorkflowStore,
    executor: Executor,
    runs: Runs,
    sessions: Sessions,
    audit: Option<Arc<dyn AuditSink>>,
    /// Runs on this instance, by id.
    local: Mutex<HashMap<String, LocalRun>>,
    shutting_down: AtomicBool,
    /// How many runs this instance has in flight.
    running: watch::Sender<usize>,
    /// Runs this instance has started and ended, since it started.
    stats: StatCounters,
}

#[derive(Default)]
struct StatCounters {
    started: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    other: AtomicU64,
}

/// What this instance's runs came to since it started: cumulative counts,
/// for rates (`workflow_failure_rate`, the execution-rate health check).
/// Also recorded as the `kailash_workflow_runs_total{status}` metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Runs accepted and started.
    pub started: u64,
    /// Runs that ended `completed`.
    pub completed: u64,
    /// Runs that ended `failed` or `timed_out`.
    pub failed: u64,
    /// Runs that ended otherwise (`refused`, `cancelled`, `abandoned`).
    pub other: u64,
}

impl RunStats {
    /// Runs that ended, whatever the outcome.
    pub fn finished(&self) -> u64 {
        self.completed + self.failed + self.other
    }
}

fn random_id(prefix: &str) -> Option<String> {
    use std::fmt::Write as _;
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).ok()?;
    let mut id = String::with_capacity(prefix.len() + 24);
    id.push_str(prefix);
    for b in bytes {
        let _ = write!(id, "{b:02x}");
    }
    Some(id)
}

fn parse_permission(text: &str) -> Result<Permission, RuntimeError> {
    Permission::parse(text).map_err(|_| RuntimeError::Forbidden {
        permission: text.to_owned(),
    })
}

impl AccessControlledRuntime {
    /// A builder for a runtime deciding with `access`, keeping runs and
    /// sessions in `state`, and running the workflows of `workflows`.
    pub fn builder(
        config: RuntimeConfig,
        access: AccessControl,
        state: SharedState,
        workflows: WorkflowStore,
    ) -> RuntimeBuilder {
        RuntimeBuilder {
            config,
            access,
            state,
            workflows,
            audit: None,
            events: Arc::new(NoEvents),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The workflows it runs.
    pub fn workflows(&self) -> &WorkflowStore {
        &self.inner.workflows
    }

    /// How many runs this instance has in flight.
    pub fn running(&self) -> usize {
        *self.inner.running.borrow()
    }

    /// This instance's run counts since it started.
    pub fn stats(&self) -> RunStats {
        let s = &self.inner.stats;
        RunStats {
            started: s.started.load(Ordering::Relaxed),
            completed: s.completed.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            other: s.other.load(Ordering::Relaxed),
        }
    }

    /// Opens an agent session for `principal` in `tenant` (the seed's
    /// `create_tenant_session`): the tenant must be active and within its
    /// workflow quota, and the principal hold `workflow:execute`.
    pub async fn open_session(
        &self,
        principal: &Principal,
        tenant: &Tenant,
    ) -> Result<AgentSession, RuntimeError> {
        match self.open_session_inner(principal, tenant).await {
            Ok(session) => {
                let event = self
                    .event(AUDIT_SESSION, AuditDecision::Success, principal)
                    .resource(format!("session {}", session.id))
                    .reason("opened");
                // Not audited, not opened.
                if let Err(e) = self.write(event).await {
                    let _ = self.inner.sessions.remove(&session).await;
                    return Err(e);
                }
                Ok(session)
            }
            Err(e) => {
                self.audit_refusal(AUDIT_SESSION, principal, "session", &e)
                    .await;
                Err(e)
            }
        }
    }

    async fn open_session_inner(
        &self,
        principal: &Principal,
        tenant: &Tenant,
    ) -> Result<AgentSession, RuntimeError> {
        same_tenant(principal, tenant)?;
        if !tenant.active {
            return Err(RuntimeError::TenantInactive);
        }
        self.require(principal, EXECUTE_PERMISSION)?;
        if let Some(limit) = tenant.quotas.max_workflows {
            let used = self.inner.quotas.usage(tenant).await?.workflows;
            if used > limit {
                return Err(RuntimeError::OverQuota { used, limit });
            }
        }
        let id = random_id("as-").ok_or(RuntimeError::NoRandomness)?;
        let now = self.inner.runs.state.clock.now();
        let ttl = Duration::from_secs(self.inner.config.session_ttl_secs);
        let limits = self.inner.executor.limits_for(tenant);
        let session = AgentSession {
            id,
            tenant_id: tenant.id.clone(),
            tenant_name: tenant.name.clone(),
            user: principal.subject().to_owned(),
            isolation_level: if self.inner.config.session_isolation {
                "session"
            } else {
                "tenant"
            }
            .to_owned(),
            resource_limits: SessionLimits {
                max_concurrent_workflows: self
                    .inner
                    .config
                    .resource_limits
                    .max_concurrent_workflows
                    .clone(),
                max_execution_time_secs: limits.max_execution_time.map(|d| d.as_secs()),
                max_memory_mb: limits.max_bytes.map(|b| b / MIB),
                max_executions_per_hour: self
                    .inner
                    .access
                    .policy()
                    .limits_for(principal)
                    .max_executions_per_hour,
                max_workflows: tenant.quotas.max_workflows,
            },
            billing_plan: tenant.plan.clone(),
            created_at: now,
            expires_at: now.checked_add(ttl).unwrap_or(jiff::Timestamp::MAX),
        };
        self.inner.sessions.insert(&session).await?;
        Ok(session)
    }

    /// A session `principal` may see (404 otherwise).
    pub async fn session(
        &self,
        principal: &Principal,
        tenant: &Tenant,
        id: &str,
    ) -> Result<AgentSession, RuntimeError> {
        let result = self.session_inner(principal, tenant, id).await;
        self.refusal_audited(AUDIT_SESSION, principal, || format!("session {id}"), result)
            .await
    }

    async fn session_inner(
        &self,
        principal: &Principal,
        tenant: &Tenant,
        id: &str,
    ) -> Result<AgentSession, RuntimeError> {
        same_tenant(principal, tenant)?;
        if id.len() > MAX_WORKFLOW_ID_BYTES {
            return Err(RuntimeError::NotFound);
        }
        let session = self
            .inner
            .sessions
            .get(&tenant.id, id)
            .await?
            .ok_or(RuntimeError::NotFound)?;
        if !self.may_see(principal, &session.user) {
            return Err(RuntimeError::NotFound);
        }
        Ok(session)
    }

    /// Ends a session `principal` may see, cancelling its runs in flight.
    pub async fn close_session(
        &self,
        principal: &Principal,
        tenant: &Tenant,
        id: &str,
    ) -> Result<(), RuntimeError> {
        let result = self.close_session_inner(principal, tenant, id).await;
        self.refusal_audited(AUDIT_SESSION, principal, || format!("session {id}"), result)
            .await
    }

    async fn close_session_inner(
        &self,
        principal: &Principal,
        tenant: &Tenant,
        id: &str,
    ) -> Result<(), RuntimeError> {
        let session = self.session_inner(principal, tenant, id).await?;
        // Audited first: an action the trail cannot record is not taken.
        let event = self
            .event(AUDIT_SESSION, AuditDecision::Success, principal)
            .resource(format!("session {id}"))
            .reason("closed");
        self.write(event).await?;
        for run in self.inner.runs.index(&tenant.id, &session.user).await? {
            if let Some(record) = self.inner.runs.load(&tenant.id, &run).await?
                && record.session.as_deref() == Some(id)
                && !record.status.is_final()
            {
                self.inner.runs.request_cancel(&tenant.id, &run).await?;
                self.cancel_local(&run);
            }
        }
        self.inner.sessions.remove(&session).await?;
        Ok(())
    }

    /// Starts a run of `request.workflow_id` in `principal`'s session
    /// `session_id`, after every check in the [module docs](self); returns
    /// its record, `pending`. Every refusal is audited.
    pub async fn start(
        &self,
        principal: &Principal,
        tenant: &Arc<Tenant>,
        session_id: &str,
        request: RunRequest,
    ) -> Result<RunRecord, RuntimeError> {
        let result = self
            .start_inner(principal, tenant, session_id, request)
            .await;
        match result {
            Ok(record) => Ok(record),
            Err(e) => {
                self.audit_refusal(AUDIT_RUN, principal, "run", &e).await;
                Err(e)
            }
        }
    }

    async fn start_inner(
        &self,
        principal: &Principal,
        tenant: &Arc<Tenant>,
        session_id: &str,
        request: RunRequest,
    ) -> Result<RunRecord, RuntimeError> {
        same_tenant(principal, tenant)?;
        if !tenant.active {
            return Err(RuntimeError::TenantInactive);
        }
        if session_id.len() > MAX_WORKFLOW_ID_BYTES {
            return Err(RuntimeError::NotFound);
        }
        let session = self
            .inner
            .sessions
            .get(&tenant.id, session_id)
            .await?
            .filter(|s| s.user == principal.subject())
            .ok_or(RuntimeError::NotFound)?;
        if request.workflow_id.len() > MAX_WORKFLOW_ID_BYTES {
            return Err(RuntimeError::NotFound);
        }
        let workflow = self
            .inner
            .workflows
            .get(tenant, &request.workflow_id)
            .await?
            .ok_or(RuntimeError::NotFound)?;

        // The run decision, on the workflow.
        let permission = parse_permission(EXECUTE_PERMISSION)?;
        let mut attrs = Attributes::new();
        attrs.insert("workflow_id".into(), workflow.id.as_str().into());
        attrs.insert("owner".into(), workflow.owner.as_str().into());
        attrs.insert("tenant".into(), tenant.id.as_str().into());
        let req = self
            .inner
            .access
            .request(principal, &permission, None)
            .resource(&attrs);
        let decision = self.inner.access.decide(&req);
        if decision.allowed {
            let event = self
                .decision_event(AUDIT_EXECUTE, principal, &decision)
                .resource(format!("{EXECUTE_PERMISSION} {}", workflow.id));
            self.write(event).await?;
        } else {
            let event = self
                .decision_event(AUDIT_EXECUTE, principal, &decision)
                .resource(format!("{EXECUTE_PERMISSION} {}", workflow.id));
            self.write(event).await?;
            return Err(RuntimeError::Forbidden {
                permission: EXECUTE_PERMISSION.to_owned(),
            });
        }

        let compiled = compile(
            &workflow.definition,
            tenant,
            self.inner.workflows.registry(),
        )?;
        compiled.check_inputs(&request.inputs)?;
        if let Some(mb) = self
            .inner
            .config
            .resource_limits
            .process_memory_watermark_mb
            && rss::resident_bytes().is_none_or(|b| b > mb.saturating_mul(MIB))
        {
            return Err(RuntimeError::MemoryPressure);
        }
        if self.inner.shutting_down.load(Ordering::Acquire) {
            return Err(RuntimeError::State(
                kailash_core::state::StateError::Unavailable("the runtime is shutting down".into()),
            ));
        }
        let ctx = RunContext::new(workflow.id.clone(), tenant.clone(), principal.clone())
            .map_err(|_| RuntimeError::NoRandomness)?
            .with_session(session.id);
        // From here on the run is taken, charged, stored and started in a
        // task of its own: a caller that goes away mid-way (a dropped
        // connection) never leaves a slot held or an execution charged
        // without a run.
        let inner = self.inner.clone();
        let principal = principal.clone();
        // The acceptance stays in the request's span (and trace).
        let accept = tokio::spawn(tracing::Instrument::instrument(
            async move { accept(&inner, &principal, ctx, compiled, request.inputs).await },
            tracing::Span::current(),
        ));
        match accept.await {
            Ok(result) => result,
            Err(_) => Err(RuntimeError::State(
                kailash_core::state::StateError::Unavailable(
                    "the run's acceptance was interrupted".into(),
                ),
            )),
        }
    }
}

/// Takes the run's slots, then charges its execution (a run refused by
/// either leaves nothing taken or charged), stores it `pending` and
/// starts it.
async fn accept(
    inner: &Arc<Inner>,
    principal: &Principal,
    ctx: RunContext,
    compiled: CompiledWorkflow,
    inputs: Value,
) -> Result<RunRecord, RuntimeError> {
    let tenant = ctx.tenant.id.clone();
    let slots = inner.runs.slots(
        &inner.config.resource_limits.max_concurrent_workflows,
        &tenant,
        principal.subject(),
    );
    inner.runs.acquire(&slots, &ctx.run_id).await?;
    if let Err(e) = inner.limits.charge_execution(principal).await {
        inner.runs.release(&slots, &ctx.run_id).await;
        return Err(e.into());
    }
    let record = new_record(
        &ctx,
        &compiled,
        RunStatus::Pending,
        inner.runs.state.clock.now(),
    );
    if let Err(e) = inner.runs.insert(&record, &tenant).await {
        inner.runs.release(&slots, &ctx.run_id).await;
        inner.runs.end_lease(&tenant, &ctx.run_id).await;
        if let Err(error) = inner.limits.refund_execution(principal).await {
            tracing::warn!(%error, "could not refund the execution of a run not started");
        }
        return Err(e);
    }
    spawn_run(inner, ctx, compiled, inputs, slots, record.clone());
    Ok(record)
}

/// Counts a run's end in [`RunStats`] and `kailash_workflow_runs_total{status}`.
fn count_end(inner: &Inner, status: RunStatus) {
    let counter = match status {
        RunStatus::Completed => &inner.stats.completed,
        RunStatus::Failed | RunStatus::TimedOut => &inner.stats.failed,
        _ => &inner.stats.other,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("kailash_workflow_runs_total", "status" => status.as_str()).increment(1);
}

/// Runs an accepted run in a task of its own: records it running, keeps
/// its lease, stores its progress, and records, releases and audits its
/// end.
fn spawn_run(
    inner: &Arc<Inner>,
    ctx: RunContext,
    compiled: CompiledWorkflow,
    inputs: Value,
    slots: Slots,
    pending: RunRecord,
) {
    let token = CancelToken::new();
    let progress = Arc::new(Progress::default());
    if let Ok(mut local) = inner.local.lock() {
        local.insert(
            ctx.run_id.clone(),
            LocalRun {
                tenant: ctx.tenant.id.clone(),
                token: token.clone(),
                progress: progress.clone(),
            },
        );
    }
    inner.running.send_modify(|n| *n += 1);
    inner.stats.started.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("kailash_workflow_runs_started_total").increment(1);
    // A shutdown that began while this run was being accepted.
    if inner.shutting_down.load(Ordering::Acquire) {
        token.cancel();
    }
    let count = Running(inner.clone());
    let inner = inner.clone();
    // The run is a child of the request that started it, when traces are
    // exported (DEBUG: free when only logs at INFO listen).
    let span = tracing::debug_span!("workflow.run", run_id = %ctx.run_id);
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            let _count = count;
            let tenant = ctx.tenant.id.clone();
            let mut running = pending;
            running.status = RunStatus::Running;
            running.started_at = inner.runs.state.clock.now();
            if let Err(error) = inner.runs.save(&running, &tenant).await {
                tracing::warn!(%error, run = %ctx.run_id, "could not record a run as running");
            }
            // The nodes run in a task of their own: a node busy on the CPU
            // never holds up the lease renewal below, and a node that
            // panics ends the run `failed` here instead of losing it.
            let executor = inner.executor.clone();
            let (run_ctx, run_token) = (ctx.clone(), token.clone());
            let nodes =
                tokio::spawn(
                    async move { executor.run(&run_ctx, &compiled, inputs, &run_token).await },
                );
            let aborter = nodes.abort_handle();
            let keep = keep_alive(&inner, &tenant, &slots, &ctx.run_id, &token);
            let progressed = record_progress(&inner, &tenant, running.clone(), &progress);
            // `biased`: the run's own end wins over a progress write.
            let mut record = tokio::select! {
                biased;
                joined = nodes => match joined {
                    Ok(record) => record,
                    Err(e) => {
                        let mut failed = running;
                        failed.status = RunStatus::Failed;
                        failed.reason = Some(if e.is_panic() {
                            "a node panicked".to_owned()
                        } else {
                            "the run's task was aborted".to_owned()
                        });
                        failed.finished_at = Some(inner.runs.state.clock.now());
                        failed
                    }
                },
                never = keep => match never {},
                never = progressed => match never {},
            };
            drop(aborter);
            if record.status == RunStatus::Cancelled && inner.shutting_down.load(Ordering::Acquire)
            {
                record.status = RunStatus::Abandoned;
                record.reason = Some("the instance shut down before the run ended".to_owned());
            }
            // Counted before the outcome is visible: a reader that saw the run
            // end finds it in `stats()`.
            count_end(&inner, record.status);
            let mut saved = inner.runs.save(&record, &tenant).await;
            if saved.is_err() {
                // One retry: a final status is worth the wait.
                tokio::time::sleep(Duration::from_millis(200)).await;
                saved = inner.runs.save(&record, &tenant).await;
            }
            if let Err(error) = saved {
                // The lease lapses and readers see `abandoned`.
                tracing::error!(%error, run = %ctx.run_id, "could not record a run's outcome");
            }
            inner.runs.end_lease(&tenant, &ctx.run_id).await;
            inner.runs.release(&slots, &ctx.run_id).await;
            if let Ok(mut local) = inner.local.lock() {
                local.remove(&ctx.run_id);
            }
            let outcome = outcome_event(&record, &ctx.principal);
            if let Some(sink) = &inner.audit
                && let Err(error) = offer(Some(sink), outcome).settle().await
            {
                tracing::error!(%error, run = %ctx.run_id, "could not audit a run's outcome");
            }
        },
        span,
    ));
}

impl AccessControlledRuntime {
    /// A run `principal` may see; one whose instance stopped renewing its
    /// lease reads `abandoned`.
    pub async fn get(
        &self,
        principal: &Principal,
        tenant: &Tenant,
        run_id: &str,
    ) -> Result<RunRecord, RuntimeError> {
        let result = self.get_inner(principal, tenant, run_id).await;
        self.refusal_audited(AUDIT_RUN, principal, || format!("run {run_id}"), result)
            .await
    }

    async fn get_inner(
        &self,
        principal: &Principal,
        tenant: &Tenant,
        run_id: &str,
    ) -> Result<RunRecord, RuntimeError> {
        same_tenant(principal, tenant)?;
        if run_id.len() > MAX_WORKFLOW_ID_BYTES {
            return Err(RuntimeError::NotFound);
        }
        let record = self
            .inner
            .runs
            .load(&tenant.id, run_id)
            .await?
            .ok_or(RuntimeError::NotFound)?;
        if !self.may_see(principal, &record.subject) {
            return Err(RuntimeError::NotFound);
        }
        Ok(record)
    }

    /// Waits until a run `principal` may see has ended, polling its record
    /// (so it works for runs on other instances too).
    pub async fn wait(
        &self,
        principal: &Principal,
        tenant: &Tenant,
        run_id: &str,
    ) -> Result<RunRecord, RuntimeError> {
        loop {
            let record = self.get_inner(principal, tenant, run_id).await?;
            if record.status.is_final() {
                return Ok(record);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `principal`'s own runs in `tenant`, newest first, at most `limit`
    /// (and [`MAX_LISTED`]).
    pub async fn list(
        &self,
        principal: &Principal,
        tenant: &Tenant,
        limit: usize,
    ) -> Result<Vec<RunRecord>, RuntimeError> {
        same_tenant(principal, tenant)?;
        let mut ids = self
            .inner
            .runs
            .index(&tenant.id, principal.subject())
            .await?;
        ids.truncate(limit.min(MAX_LISTED));
        let loads = ids.iter().map(|id| self.inner.runs.load(&tenant.id, id));
        let mut out = Vec::with_capacity(ids.len());
        for record in futures_util::future::join_all(loads).await {
            if let Some(record) = record? {
                out.push(record);
            }
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.started_at));
        Ok(out)
    }

    /// Cancels a run `principal` may see, wherever it runs; returns its
    /// record as it was (the run ends `cancelled` at its next await).
    pub async fn cancel(
        &self,
        principal: &Principal,
        tenant: &Tenant,
        run_id: &str,
    ) -> Result<RunRecord, RuntimeError> {
        let result = self.cancel_inner(principal, tenant, run_id).await;
        self.refusal_audited(AUDIT_CANCEL, principal, || format!("run {run_id}"), result)
            .await
    }

    async fn cancel_inner(
        &self,
        principal: &Principal,
        tenant: &Tenant,
        run_id: &str,
    ) -> Result<RunRecord, RuntimeError> {
        let record = self.get_inner(principal, tenant, run_id).await?;
        if record.status.is_final() {
            return Err(RuntimeError::Finished {
                status: record.status,
            });
        }
        // Audited first: an action the trail cannot record is not taken.
        let event = self
            .event(AUDIT_CANCEL, AuditDecision::Success, principal)
            .resource(format!("run {run_id}"))
            .reason(if record.subject == principal.subject() {
                "own run"
            } else {
                "another user's run"
            });
        self.write(event).await?;
        self.inner.runs.request_cancel(&tenant.id, run_id).await?;
        self.cancel_local(run_id);
        Ok(record)
    }

    /// Stops taking runs, cancels this instance's runs in flight (they are
    /// recorded `abandoned`, with the reason) and waits up to `grace` for
    /// their records to be written.
    pub async fn shutdown(&self, grace: Duration) {
        self.begin_shutdown();
        let mut rx = self.inner.running.subscribe();
        let _ = tokio::time::timeout(grace, rx.wait_for(|n| *n == 0)).await;
    }

    /// Stops taking runs and cancels this instance's runs in flight at once
    /// (without waiting: [`shutdown`](Self::shutdown) waits for their
    /// records). A gateway calls it when its shutdown begins, so runs end
    /// while connections drain.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
        if let Ok(local) = self.inner.local.lock() {
            for run in local.values() {
                run.token.cancel();
            }
        }
    }

    fn cancel_local(&self, run_id: &str) {
        if let Ok(local) = self.inner.local.lock()
            && let Some(run) = local.get(run_id)
        {
            run.token.cancel();
        }
    }

    /// Whether `principal` may see what `owner` started.
    fn may_see(&self, principal: &Principal, owner: &str) -> bool {
        if self.inner.config.session_isolation {
            owner == principal.subject() || self.holds(principal, MANAGE_PERMISSION)
        } else {
            owner == principal.subject() || self.holds(principal, EXECUTE_PERMISSION)
        }
    }

    fn holds(&self, principal: &Principal, permission: &str) -> bool {
        let Ok(permission) = Permission::parse(permission) else {
            return false;
        };
        let req = self.inner.access.request(principal, &permission, None);
        self.inner.access.decide(&req).allowed
    }

    fn require(&self, principal: &Principal, permission: &str) -> Result<(), RuntimeError> {
        if self.holds(principal, permission) {
            Ok(())
        } else {
            Err(RuntimeError::Forbidden {
                permission: permission.to_owned(),
            })
        }
    }

    fn event(
        &self,
        action: &'static str,
        decision: AuditDecision,
        principal: &Principal,
    ) -> AuditEvent {
        AuditEvent::new(action, decision)
            .at(self.inner.access.now())
            .principal(principal)
    }

    fn decision_event(
        &self,
        action: &'static str,
        principal: &Principal,
        d: &Decision,
    ) -> AuditEvent {
        let (decision, severity) = if d.allowed {
            (AuditDecision::Allow, AuditSeverity::Info)
        } else {
            (AuditDecision::Deny, AuditSeverity::Warning)
        };
        self.event(action, decision, principal)
            .severity(severity)
            .reason(d.rule.clone())
    }

    fn refusal(
        &self,
        action: &'static str,
        principal: &Principal,
        what: &str,
        e: &RuntimeError,
    ) -> AuditEvent {
        let decision = match e {
            RuntimeError::State(_) | RuntimeError::Audit(_) | RuntimeError::NoRandomness => {
                AuditDecision::Error
            }
            _ => AuditDecision::Deny,
        };
        self.event(action, decision, principal)
            .severity(AuditSeverity::Warning)
            .resource(what.to_owned())
            .reason(format!("{}: {e}", e.code()))
    }

    /// Writes `event` when auditing is on.
    async fn write(&self, event: AuditEvent) -> Result<(), RuntimeError> {
        match &self.inner.audit {
            Some(sink) => Ok(offer(Some(sink), event).settle().await?),
            None => Ok(()),
        }
    }

    /// `result`, its refusal audited (see [`audit_refusal`](Self::audit_refusal)).
    async fn refusal_audited<T>(
        &self,
        action: &'static str,
        principal: &Principal,
        what: impl FnOnce() -> String,
        result: Result<T, RuntimeError>,
    ) -> Result<T, RuntimeError> {
        if let Err(e) = &result {
            self.audit_refusal(action, principal, &what(), e).await;
        }
        result
    }

    /// Audits a refusal (a failure to write it is logged: the refusal
    /// stands either way). An audit failure itself is not audited again.
    async fn audit_refusal(
        &self,
        action: &'static str,
        principal: &Principal,
        what: &str,
        e: &RuntimeError,
    ) {
        if matches!(e, RuntimeError::Audit(_)) {
            return;
        }
        let event = self.refusal(action, principal, what, e);
        if let Err(error) = self.write(event).await {
            tracing::warn!(%error, action, "could not audit a refusal");
        }
    }
}

fn same_tenant(principal: &Principal, tenant: &Tenant) -> Result<(), RuntimeError> {
    if principal.tenant() == Some(&tenant.id) {
        Ok(())
    } else {
        Err(RuntimeError::TenantMismatch)
    }
}

/// Keeps a run's lease and slots alive, and picks up cancellation requests
/// made on other instances; never returns.
async fn keep_alive(
    inner: &Inner,
    tenant: &TenantId,
    slots: &Slots,
    run: &str,
    token: &CancelToken,
) -> std::convert::Infallible {
    let period = inner.runs.lease / 3;
    loop {
        tokio::time::sleep(period).await;
        match inner.runs.renew(tenant, slots, run).await {
            Ok(true) => {}
            Ok(false) => {
                // Lapsed (the state backend was unreachable for a whole
                // lease): the run is alive, so it takes its lease again; a
                // reader that marked it `abandoned` meanwhile is corrected
                // by the next progress or final write.
                tracing::warn!(
                    run,
                    "a run's lease had lapsed before its renewal; taken again"
                );
                if let Err(error) = inner.runs.retake_lease(tenant, run).await {
                    tracing::warn!(%error, run, "could not take a run's lease again");
                }
            }
            Err(error) => tracing::warn!(%error, run, "could not renew a run's lease"),
        }
        if inner
            .runs
            .cancel_requested(tenant, run)
            .await
            .unwrap_or(false)
        {
            token.cancel();
        }
    }
}

/// Subscribes to cancellation requests and cancels the matching local
/// runs; ends when the runtime is dropped.
async fn listen_for_cancellations(inner: &Arc<Inner>) {
    let mut sub = match inner
        .runs
        .state
        .pubsub
        .subscribe(&runs::cancel_topic())
        .await
    {
        Ok(sub) => sub,
        Err(error) => {
            // Lease renewals still read the requests, a third of a lease late.
            tracing::warn!(%error, "runtime cannot subscribe to cancellations");
            return;
        }
    };
    let weak: Weak<Inner> = Arc::downgrade(inner);
    tokio::spawn(async move {
        loop {
            let message = match sub.recv().await {
                Ok(m) => m,
                Err(kailash_core::state::RecvError::Lagged(_)) => continue,
                Err(kailash_core::state::RecvError::Closed) => return,
            };
            let Some(inner) = weak.upgrade() else { return };
            let Ok(text) = std::str::from_utf8(&message) else {
                continue;
            };
            let Some((tenant, run)) = text.split_once('\n') else {
                continue;
            };
            if let Ok(local) = inner.local.lock()
                && let Some(local_run) = local.get(run)
                && local_run.tenant.as_str() == tenant
            {
                local_run.token.cancel();
            }
        }
    });
}

/// A run in flight on this instance.
struct LocalRun {
    tenant: TenantId,
    token: CancelToken,
    progress: Arc<Progress>,
}

/// The nodes a run has ended so far, for its stored record while it runs.
#[derive(Default)]
struct Progress {
    ended: Mutex<Vec<(String, NodeStatus, u64)>>,
    changed: tokio::sync::Notify,
}

/// Passes every event on, and notes each ended node in its run's
/// [`Progress`] (the run's task stores it, coalescing bursts).
struct ProgressSink {
    inner: Arc<dyn EventSink>,
    runtime: Weak<Inner>,
}

impl EventSink for ProgressSink {
    fn publish(&self, event: &RunEvent) {
        self.inner.publish(event);
        let RunEvent::NodeCompleted {
            run_id,
            node,
            status,
            duration_us,
            ..
        } = event
        else {
            return;
        };
        let Some(runtime) = self.runtime.upgrade() else {
            return;
        };
        let progress = match runtime.local.lock() {
            Ok(local) => local.get(run_id).map(|r| r.progress.clone()),
            Err(_) => None,
        };
        if let Some(progress) = progress {
            if let Ok(mut ended) = progress.ended.lock() {
                ended.push((node.clone(), *status, *duration_us));
            }
            progress.changed.notify_one();
        }
    }
}

/// Stores the run's node progress each time nodes end; never returns.
async fn record_progress(
    inner: &Inner,
    tenant: &TenantId,
    mut record: RunRecord,
    progress: &Progress,
) -> std::convert::Infallible {
    loop {
        progress.changed.notified().await;
        let ended = match progress.ended.lock() {
            Ok(mut ended) => std::mem::take(&mut *ended),
            Err(_) => Vec::new(),
        };
        for (id, status, duration) in ended {
            if let Some(n) = record.nodes.iter_mut().find(|n| n.id == id) {
                n.status = status;
                n.duration_us = Some(duration);
            }
        }
        if let Err(error) = inner.runs.save(&record, tenant).await {
            tracing::warn!(%error, run = %record.run_id, "could not record a run's progress");
        }
    }
}

/// Counts a run in flight until dropped.
struct Running(Arc<Inner>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.send_modify(|n| *n = n.saturating_sub(1));
    }
}

fn outcome_event(record: &RunRecord, principal: &Principal) -> AuditEvent {
    let (decision, severity) = match record.status {
        RunStatus::Completed => (AuditDecision::Success, AuditSeverity::Info),
        RunStatus::Refused | RunStatus::Abandoned => {
            (AuditDecision::Failure, AuditSeverity::Warning)
        }
        _ => (AuditDecision::Failure, AuditSeverity::Info),
    };
    let status = serde_json::to_value(record.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut reason = status;
    if let Some(node) = &record.failed_node {
        reason.push_str(" at node ");
        reason.push_str(node);
    }
    if let Some(why) = &record.reason {
        reason.push_str(": ");
        reason.push_str(why);
    }
    let at = record.finished_at.unwrap_or(record.started_at);
    AuditEvent::new(AUDIT_RUN, decision)
        .at(at)
        .principal(principal)
        .severity(severity)
        .resource(format!("run {} of {}", record.run_id, record.workflow_id))
        .reason(reason)
}

/// The per-node check: `node:<type>:execute`, decided by the policy's
/// strategy on the node's attributes, and audited.
struct NodeGuard {
    access: AccessControl,
    audit: Option<Arc<dyn AuditSink>>,
}

#[async_trait]
impl NodeHook for NodeGuard {
    async fn before_node(&self, ctx: &RunContext, node: &NodeInfo<'_>) -> Result<(), Refusal> {
        let text = format!("node:{}:execute", node.node_type);
        let permission = Permission::parse(&text).map_err(|_| {
            Refusal::new(format!(
                "node type {:?} has no permission name",
                node.node_type
            ))
        })?;
        let mut attrs = Attributes::new();
        attrs.insert("node_type".into(), node.node_type.into());
        attrs.insert("node_id".into(), node.id.into());
        attrs.insert("workflow_id".into(), ctx.workflow_id.as_str().into());
        attrs.insert("tenant".into(), ctx.tenant.id.as_str().into());
        let req = self
            .access
            .request(&ctx.principal, &permission, None)
            .resource(&attrs);
        let decision = self.access.decide(&req);
        if let Some(sink) = &self.audit {
            let (d, severity) = if decision.allowed {
                (AuditDecision::Allow, AuditSeverity::Info)
            } else {
                (AuditDecision::Deny, AuditSeverity::Warning)
            };
            let event = AuditEvent::new(AUDIT_NODE, d)
                .at(self.access.now())
                .principal(&ctx.principal)
                .severity(severity)
                .resource(format!("{text} {}/{}", ctx.run_id, node.id))
                .reason(decision.rule.clone());
            if offer(Some(sink), event).settle().await.is_err() {
                return Err(Refusal::new(
                    "the audit trail could not record the node's access decision",
                ));
            }
        }
        if decision.allowed {
            Ok(())
        } else {
            Err(Refusal::new(format!("permission `{text}` is not granted")))
        }
    }
}
