//! Runs a [`CompiledWorkflow`]: nodes in dependency order, independent
//! branches concurrently, values passed along connections.
//!
//! All of a run's nodes are futures polled by the one task that awaits
//! [`Executor::run`] (no task per node), so two branches waiting on each
//! other's I/O overlap, and ending the run — cancellation through the
//! caller's [`CancelToken`], the deadline, a failing or refused node —
//! drops every node still in flight at once.
//!
//! Limits (the lower of the executor's [`RunLimits`] and the tenant's own
//! `max_execution_time_secs` / `max_memory_mb` applies):
//!
//! - **deadline**: when `max_execution_time` passes, the run ends
//!   `timed_out` and the nodes in flight are dropped;
//! - **byte budget**: the data a run holds, measured as the size in bytes
//!   of its compact serialized JSON (what [`json_size`] returns): the run's
//!   inputs, each node's assembled input object while the node runs, and
//!   each node's output object from when it completes to the end of the
//!   run. Memory the process spends around that data (allocator overhead,
//!   `serde_json::Value`'s in-memory form, a node's private working state)
//!   is *not* measured; a node handed `budget_remaining` should keep its
//!   own working state below it. Passing the budget fails the run, naming
//!   the node.
//!
//! Before each node the executor asks its [`NodeHook`]; a refusal ends the
//! run `refused`, naming the node. Events go to its [`EventSink`].
//!
//! ```
//! use std::sync::Arc;
//! use kailash_core::{Principal, TenantId, clock::SystemClock};
//! use kailash_runtime::{CancelToken, Executor, NodeRegistry, RunContext, RunStatus, compile};
//! use kailash_runtime::definition::Definition;
//! use kailash_tenancy::model::{Tenant, TenantSpec};
//! use serde_json::json;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let tenant = Arc::new(Tenant::try_from(serde_json::from_str::<TenantSpec>(r#"{"id": "acme"}"#)?)?);
//! let def: Definition = serde_json::from_value(json!({
//!     "inputs": ["order"],
//!     "nodes": [
//!         {"id": "qty", "type": "transform", "config": {"expression": "o.qty"}},
//!         {"id": "price", "type": "transform", "config": {"expression": "o.price"}},
//!         {"id": "line", "type": "transform", "config": {"expression": "{qty: q, price: p}"}}
//!     ],
//!     "connections": [
//!         {"from": {"input": "order"}, "to": {"node": "qty", "input": "o"}},
//!         {"from": {"input": "order"}, "to": {"node": "price", "input": "o"}},
//!         {"from": {"node": "qty", "output": "result"}, "to": {"node": "line", "input": "q"}},
//!         {"from": {"node": "price", "output": "result"}, "to": {"node": "line", "input": "p"}}
//!     ],
//!     "outputs": {"line": {"node": "line", "output": "result"}}
//! }))?;
//! let workflow = compile(&def, &tenant, &NodeRegistry::builtin())?;
//!
//! let dave = Principal::builder("dave").tenant(TenantId::new("acme")?).build();
//! let ctx = RunContext::new("wf-1", tenant, dave)?;
//! let executor = Executor::new(Arc::new(SystemClock));
//! let run = executor
//!     .run(&ctx, &workflow, json!({"order": {"qty": 2, "price": 5}}), &CancelToken::new())
//!     .await;
//! assert_eq!(run.status, RunStatus::Completed);
//! assert_eq!(run.outputs, Some(json!({"line": {"qty": 2, "price": 5}})));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

pub(crate) mod budget;
mod cancel;
mod events;
mod hook;
mod record;

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use kailash_core::Principal;
use kailash_core::clock::Clock;
use kailash_tenancy::model::Tenant;
use serde_json::Value;
use tokio::time::Instant;

pub use budget::json_size;
pub use cancel::CancelToken;
pub use events::{EventSink, NoEvents, RunEvent};
pub use hook::{AllowAll, NodeHook, NodeInfo, Refusal};
pub use record::{NodeRecord, NodeStatus, RunRecord, RunStatus};

use crate::compile::{CompiledWorkflow, Slot};
use crate::node::{NodeContext, NodeError, Values};
use budget::Budget;

/// Bytes in one MiB, as the tenant's `max_memory_mb` counts them.
const MIB: u64 = 1 << 20;

/// Who runs what: the run's identity, handed to every node and hook.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The run's id.
    pub run_id: String,
    /// The workflow being run.
    pub workflow_id: String,
    /// The tenant it runs in (its limits apply).
    pub tenant: Arc<Tenant>,
    /// The principal that started it.
    pub principal: Principal,
    /// The session it belongs to, if any.
    pub session: Option<String>,
}

/// No randomness was available for a run id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no randomness for a run id")]
pub struct NoRandomness;

impl RunContext {
    /// A new run (a fresh random id, `run-` and 24 hex digits) of
    /// `workflow_id` in `tenant` by `principal`, in no session.
    pub fn new(
        workflow_id: impl Into<String>,
        tenant: Arc<Tenant>,
        principal: Principal,
    ) -> Result<Self, NoRandomness> {
        use std::fmt::Write as _;
        let mut bytes = [0u8; 12];
        getrandom::fill(&mut bytes).map_err(|_| NoRandomness)?;
        let mut run_id = String::with_capacity(28);
        run_id.push_str("run-");
        for b in bytes {
            let _ = write!(run_id, "{b:02x}");
        }
        Ok(Self {
            run_id,
            workflow_id: workflow_id.into(),
            tenant,
            principal,
            session: None,
        })
    }

    /// The same run, in session `session`.
    pub fn with_session(mut self, session: impl Into<String>) -> Self {
        self.session = Some(session.into());
        self
    }
}

/// The executor's own limits; a tenant's lower limits apply instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLimits {
    /// The longest a run may take (default 300 s; `None`: no deadline
    /// unless the tenant sets one).
    pub max_execution_time: Option<Duration>,
    /// The byte budget (default 64 MiB; `None`: unlimited unless the
    /// tenant sets `max_memory_mb`). See the module doc for what counts.
    pub max_bytes: Option<u64>,
    /// The most bytes of a node's (or the run's) output JSON kept in the
    /// record (default 4096); longer ones are cut and flagged.
    pub max_recorded_output_bytes: usize,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            max_execution_time: Some(Duration::from_secs(300)),
            max_bytes: Some(64 * MIB),
            max_recorded_output_bytes: 4096,
        }
    }
}

/// The record of a run of `workflow` in `ctx` that no node has started yet.
pub(crate) fn new_record(
    ctx: &RunContext,
    workflow: &CompiledWorkflow,
    status: RunStatus,
    started_at: jiff::Timestamp,
) -> RunRecord {
    RunRecord {
        run_id: ctx.run_id.clone(),
        workflow_id: ctx.workflow_id.clone(),
        tenant_id: ctx.tenant.id.to_string(),
        subject: ctx.principal.subject().to_owned(),
        session: ctx.session.clone(),
        status,
        reason: None,
        failed_node: None,
        started_at,
        finished_at: None,
        duration_us: None,
        peak_bytes: 0,
        nodes: workflow
            .nodes
            .iter()
            .map(|n| NodeRecord {
                id: n.id.clone(),
                node_type: n.node_type.clone(),
                status: NodeStatus::Pending,
                started_at: None,
                duration_us: None,
                output: None,
                output_truncated: false,
                error: None,
            })
            .collect(),
        outputs: None,
        outputs_truncated: false,
    }
}

fn lower<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Runs compiled workflows. Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    clock: Arc<dyn Clock>,
    hook: Arc<dyn NodeHook>,
    events: Arc<dyn EventSink>,
    limits: RunLimits,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// How a run ended, when it did not complete.
struct Ending {
    status: RunStatus,
    reason: String,
    node: Option<String>,
}

impl Ending {
    fn new(status: RunStatus, reason: String, node: Option<&str>) -> Self {
        Self {
            status,
            reason,
            node: node.map(str::to_owned),
        }
    }
}

enum Stop {
    Refused(Refusal),
    Failed(NodeError),
}

impl Executor {
    /// An executor with the default [`RunLimits`], a hook that allows
    /// every node and no event sink; timestamps come from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            hook: Arc::new(AllowAll),
            events: Arc::new(NoEvents),
            limits: RunLimits::default(),
        }
    }

    /// Asks `hook` before every node.
    pub fn with_hook(mut self, hook: Arc<dyn NodeHook>) -> Self {
        self.hook = hook;
        self
    }

    /// Sends the runs' events to `events`.
    pub fn with_events(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = events;
        self
    }

    /// Uses `limits`.
    pub fn with_limits(mut self, limits: RunLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits in force for a run in `tenant`: the lower of the
    /// executor's and the tenant's.
    pub fn limits_for(&self, tenant: &Tenant) -> RunLimits {
        RunLimits {
            max_execution_time: lower(
                self.limits.max_execution_time,
                tenant.config.max_execution_time,
            ),
            max_bytes: lower(
                self.limits.max_bytes,
                tenant.config.max_memory_mb.map(|mb| mb.saturating_mul(MIB)),
            ),
            max_recorded_output_bytes: self.limits.max_recorded_output_bytes,
        }
    }

    /// Runs `workflow` on `inputs` (checked against its declared inputs)
    /// until it completes, fails, is refused, passes its deadline or
    /// `cancel` is cancelled; returns the finished record. Publishes
    /// `execution.started`, a `node.completed` per node that ended, and
    /// `execution.completed`.
    ///
    /// Needs a tokio runtime with its time driver enabled when the run has
    /// a deadline (the default limits set one).
    pub async fn run(
        &self,
        ctx: &RunContext,
        workflow: &CompiledWorkflow,
        inputs: Value,
        cancel: &CancelToken,
    ) -> RunRecord {
        let start = Instant::now();
        let limits = self.limits_for(&ctx.tenant);
        let tenant_id = ctx.tenant.id.to_string();
        let mut record = new_record(ctx, workflow, RunStatus::Running, self.clock.now());
        self.events.publish(&RunEvent::Started {
            run_id: ctx.run_id.clone(),
            workflow_id: ctx.workflow_id.clone(),
            tenant_id: tenant_id.clone(),
            subject: ctx.principal.subject().to_owned(),
        });
        let mut budget = Budget::new(limits.max_bytes);
        let deadline = limits.max_execution_time.map(|d| start + d);
        let result = self
            .execute(
                ctx,
                workflow,
                inputs,
                cancel,
                deadline,
                &limits,
                &mut budget,
                &mut record,
            )
            .await;
        // Every node future is gone by now: `execute` owned them.
        match result {
            Ok(outputs) => {
                let size = json_size(&outputs);
                let (outputs, cut) = bounded(outputs, size, limits.max_recorded_output_bytes);
                record.status = RunStatus::Completed;
                record.outputs = Some(outputs);
                record.outputs_truncated = cut;
            }
            Err(end) => {
                record.status = end.status;
                record.reason = Some(end.reason);
                record.failed_node = end.node;
            }
        }
        record.peak_bytes = budget.peak();
        record.finished_at = Some(self.clock.now());
        let duration_us = micros(start.elapsed());
        record.duration_us = Some(duration_us);
        self.events.publish(&RunEvent::Completed {
            run_id: ctx.run_id.clone(),
            tenant_id,
            subject: ctx.principal.subject().to_owned(),
            status: record.status,
            reason: record.reason.clone(),
            duration_us,
        });
        record
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &self,
        ctx: &RunContext,
        workflow: &CompiledWorkflow,
        inputs: Value,
        cancel: &CancelToken,
        deadline: Option<Instant>,
        limits: &RunLimits,
        budget: &mut Budget,
        record: &mut RunRecord,
    ) -> Result<Value, Ending> {
        let tenant_id = record.tenant_id.clone();
        if cancel.is_cancelled() {
            return Err(Ending::new(
                RunStatus::Cancelled,
                "the run was cancelled".to_owned(),
                None,
            ));
        }
        if let Err(e) = workflow.check_inputs(&inputs) {
            return Err(Ending::new(RunStatus::Failed, format!("inputs: {e}"), None));
        }
        let input_size = json_size(&inputs);
        if budget.charge(input_size).is_err() {
            return Err(Ending::new(
                RunStatus::Failed,
                format!(
                    "the run's inputs ({input_size} bytes) exceed its byte budget of {} bytes",
                    budget.limit()
                ),
                None,
            ));
        }
        let Value::Object(inputs) = inputs else {
            return Err(Ending::new(
                RunStatus::Failed,
                "inputs: the inputs must be a JSON object".to_owned(),
                None,
            ));
        };

        let count = workflow.nodes.len();
        let mut outputs: Vec<Option<Values>> = vec![None; count];
        let mut waiting: Vec<usize> = workflow.nodes.iter().map(|n| n.upstream).collect();
        let mut started: Vec<Option<Instant>> = vec![None; count];
        let mut charged: Vec<u64> = vec![0; count];
        let mut ready: Vec<usize> = (0..count).rev().filter(|&i| waiting[i] == 0).collect();
        let hook = &*self.hook;
        let mut inflight = FuturesUnordered::new();
        let mut cancelled = pin!(cancel.cancelled());
        let mut timeout = pin!(async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        });

        let ending = loop {
            while let Some(i) = ready.pop() {
                let n = &workflow.nodes[i];
                let mut input = Values::new();
                for (port, slot) in &n.inputs {
                    let value = match slot {
                        Slot::Node { node, port } => {
                            outputs[*node].as_ref().and_then(|o| o.get(port)).cloned()
                        }
                        Slot::Input(name) => inputs.get(name).cloned(),
                    };
                    input.insert(port.clone(), value.unwrap_or(Value::Null));
                }
                let size = json_size(&input);
                if budget.charge(size).is_err() {
                    break_budget(record, i, "input", size, budget);
                    self.node_event(ctx, &tenant_id, &record.nodes[i]);
                    return Err(self.over_budget(&n.id, "input", size, budget, record, &started));
                }
                charged[i] = size;
                let now = Instant::now();
                started[i] = Some(now);
                record.nodes[i].status = NodeStatus::Running;
                record.nodes[i].started_at = Some(self.clock.now());
                let budget_remaining = budget.remaining();
                inflight.push(async move {
                    let info = NodeInfo {
                        id: &n.id,
                        node_type: &n.node_type,
                        config: &n.config,
                        input: &input,
                    };
                    if let Err(r) = hook.before_node(ctx, &info).await {
                        return (i, Err(Stop::Refused(r)), now.elapsed());
                    }
                    let nctx = NodeContext {
                        run: ctx,
                        node_id: &n.id,
                        input_bytes: size,
                        budget_remaining,
                    };
                    let result = n.node.run(&nctx, input).await;
                    (i, result.map_err(Stop::Failed), now.elapsed())
                });
            }
            if inflight.is_empty() {
                break None;
            }
            let (i, result, elapsed) = tokio::select! {
                biased;
                () = &mut cancelled => {
                    break Some(Ending::new(RunStatus::Cancelled, "the run was cancelled".to_owned(), None));
                }
                () = &mut timeout => {
                    break Some(Ending::new(
                        RunStatus::TimedOut,
                        format!(
                            "the run passed its deadline of {} ms",
                            limits.max_execution_time.map_or(0, |d| d.as_millis())
                        ),
                        None,
                    ));
                }
                Some(done) = inflight.next() => done,
            };
            let n = &workflow.nodes[i];
            let node = &mut record.nodes[i];
            node.duration_us = Some(micros(elapsed));
            budget.release(std::mem::take(&mut charged[i]));
            let values = match result {
                Ok(values) => values,
                Err(stop) => {
                    let (status, run_status, reason) = match stop {
                        Stop::Refused(r) => (
                            NodeStatus::Refused,
                            RunStatus::Refused,
                            format!("node {:?} was refused: {}", n.id, r.reason),
                        ),
                        Stop::Failed(e) => (
                            NodeStatus::Failed,
                            RunStatus::Failed,
                            format!("node {:?} failed: {e}", n.id),
                        ),
                    };
                    node.status = status;
                    node.error = Some(reason.clone());
                    self.node_event(ctx, &tenant_id, node);
                    break Some(Ending::new(run_status, reason, Some(&n.id)));
                }
            };
            if let Some(port) = n.needed_outputs.iter().find(|p| !values.contains_key(*p)) {
                let reason = format!("node {:?} failed: it gave no output {port:?}", n.id);
                node.status = NodeStatus::Failed;
                node.error = Some(reason.clone());
                self.node_event(ctx, &tenant_id, node);
                break Some(Ending::new(RunStatus::Failed, reason, Some(&n.id)));
            }
            let size = json_size(&values);
            if budget.charge(size).is_err() {
                break_budget(record, i, "output", size, budget);
                let node = &record.nodes[i];
                self.node_event(ctx, &tenant_id, node);
                break Some(self.over_budget(&n.id, "output", size, budget, record, &started));
            }
            let (shown, cut) = if size <= limits.max_recorded_output_bytes as u64 {
                (Value::Object(values.clone()), false)
            } else {
                bounded(
                    Value::Object(values.clone()),
                    size,
                    limits.max_recorded_output_bytes,
                )
            };
            let node = &mut record.nodes[i];
            node.status = NodeStatus::Completed;
            node.output = Some(shown);
            node.output_truncated = cut;
            self.node_event(ctx, &tenant_id, node);
            outputs[i] = Some(values);
            started[i] = None;
            for &d in n.dependents.iter().rev() {
                waiting[d] -= 1;
                if waiting[d] == 0 {
                    ready.push(d);
                }
            }
        };
        if let Some(end) = ending {
            drop(inflight);
            cancel_running(record, &started);
            return Err(end);
        }

        Ok(Value::Object(match &workflow.outputs {
            Some(named) => named
                .iter()
                .map(|(name, slot)| {
                    let v = match slot {
                        Slot::Node { node, port } => {
                            outputs[*node].as_ref().and_then(|o| o.get(port)).cloned()
                        }
                        Slot::Input(input) => inputs.get(input).cloned(),
                    };
                    (name.clone(), v.unwrap_or(Value::Null))
                })
                .collect(),
            None => workflow
                .nodes
                .iter()
                .zip(outputs)
                .filter(|(n, _)| n.dependents.is_empty())
                .map(|(n, o)| (n.id.clone(), Value::Object(o.unwrap_or_default())))
                .collect(),
        }))
    }

    fn over_budget(
        &self,
        node: &str,
        what: &str,
        size: u64,
        budget: &Budget,
        record: &mut RunRecord,
        started: &[Option<Instant>],
    ) -> Ending {
        cancel_running(record, started);
        Ending::new(
            RunStatus::Failed,
            format!(
                "node {node:?} passed the run's byte budget of {} bytes: its {what} is {size} bytes with {} left",
                budget.limit(),
                budget.remaining()
            ),
            Some(node),
        )
    }

    fn node_event(&self, ctx: &RunContext, tenant_id: &str, node: &NodeRecord) {
        self.events.publish(&RunEvent::NodeCompleted {
            run_id: ctx.run_id.clone(),
            tenant_id: tenant_id.to_owned(),
            subject: ctx.principal.subject().to_owned(),
            node: node.id.clone(),
            status: node.status,
            duration_us: node.duration_us.unwrap_or(0),
        });
    }
}

/// Marks node `i` failed for passing the byte budget with its `what`.
fn break_budget(record: &mut RunRecord, i: usize, what: &str, size: u64, budget: &Budget) {
    let node = &mut record.nodes[i];
    node.status = NodeStatus::Failed;
    node.error = Some(format!(
        "its {what} of {size} bytes passes the run's byte budget ({} bytes left of {})",
        budget.remaining(),
        budget.limit()
    ));
}

/// Marks every node still running as cancelled (its future was dropped).
fn cancel_running(record: &mut RunRecord, started: &[Option<Instant>]) {
    for (node, at) in record.nodes.iter_mut().zip(started) {
        if node.status == NodeStatus::Running {
            node.status = NodeStatus::Cancelled;
            node.duration_us = at.map(|t| micros(t.elapsed()));
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `value` when its JSON (`size` bytes) fits in `cap` bytes; otherwise the
/// start of its JSON text, cut at a character boundary, and `true`.
fn bounded(value: Value, size: u64, cap: usize) -> (Value, bool) {
    if size <= cap as u64 {
        return (value, false);
    }
    let text = value.to_string();
    let mut end = cap.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (Value::String(text[..end].to_owned()), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_cuts_at_a_char_boundary() {
        let v = serde_json::json!(["ééééé"]);
        let size = json_size(&v);
        assert_eq!(bounded(v.clone(), size, 100), (v.clone(), false));
        let (cut, flag) = bounded(v, size, 5);
        assert!(flag);
        assert_eq!(cut, Value::String("[\"é".to_owned()));
    }

    #[test]
    fn the_lower_limit_applies() {
        assert_eq!(lower(Some(3), Some(2)), Some(2));
        assert_eq!(lower(None, Some(2)), Some(2));
        assert_eq!(lower(Some(3), None), Some(3));
        assert_eq!(lower::<u8>(None, None), None);
    }
}
