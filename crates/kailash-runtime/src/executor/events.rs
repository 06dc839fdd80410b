//! What a run tells the outside: the events a realtime channel (or a log)
//! subscribes to, through a sink the runtime is handed.

use serde::Serialize;

use crate::executor::record::{NodeStatus, RunStatus};

/// One event of a run. Serialized with `"event"` set to its name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event")]
#[non_exhaustive]
pub enum RunEvent {
    /// The run started.
    #[serde(rename = "execution.started")]
    Started {
        /// The run.
        run_id: String,
        /// Its workflow.
        workflow_id: String,
        /// Its tenant.
        tenant_id: String,
        /// The subject that started it.
        subject: String,
    },
    /// A node ended (completed, failed or refused).
    #[serde(rename = "node.completed")]
    NodeCompleted {
        /// The run.
        run_id: String,
        /// Its tenant.
        tenant_id: String,
        /// The subject that started it.
        subject: String,
        /// The node.
        node: String,
        /// How it ended.
        status: NodeStatus,
        /// How long it ran, in microseconds.
        duration_us: u64,
    },
    /// The run ended.
    #[serde(rename = "execution.completed")]
    Completed {
        /// The run.
        run_id: String,
        /// Its tenant.
        tenant_id: String,
        /// The subject that started it.
        subject: String,
        /// How it ended.
        status: RunStatus,
        /// Why, when it did not complete.
        reason: Option<String>,
        /// How long it ran, in microseconds.
        duration_us: u64,
    },
}

impl RunEvent {
    /// The run's tenant.
    pub fn tenant_id(&self) -> &str {
        match self {
            Self::Started { tenant_id, .. }
            | Self::NodeCompleted { tenant_id, .. }
            | Self::Completed { tenant_id, .. } => tenant_id,
        }
    }

    /// The subject that started the run.
    pub fn subject(&self) -> &str {
        match self {
            Self::Started { subject, .. }
            | Self::NodeCompleted { subject, .. }
            | Self::Completed { subject, .. } => subject,
        }
    }

    /// The event's name (`execution.started`, `node.completed`,
    /// `execution.completed`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Started { .. } => "execution.started",
            Self::NodeCompleted { .. } => "node.completed",
            Self::Completed { .. } => "execution.completed",
        }
    }
}

/// Receives a run's events, in order. Called on the run's task between
/// node steps: it must not block (queue the event and return).
pub trait EventSink: Send + Sync + 'static {
    /// Takes one event.
    fn publish(&self, event: &RunEvent);
}

/// The sink that drops every event (the executor's default).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn publish(&self, _: &RunEvent) {}
}
