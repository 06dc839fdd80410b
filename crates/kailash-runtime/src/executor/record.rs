//! What a run leaves behind: its status, each node's status, timing and
//! (bounded) output, and the run's outputs.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Accepted, not started.
    Pending,
    /// Running.
    Running,
    /// Every node completed; the outputs are set.
    Completed,
    /// A node failed, an input was refused, or the byte budget was passed.
    Failed,
    /// The caller cancelled it.
    Cancelled,
    /// It passed its deadline (`max_execution_time`).
    TimedOut,
    /// The before-node check refused a node.
    Refused,
    /// The instance running it went away before it ended.
    Abandoned,
}

impl RunStatus {
    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }

    /// Its wire name (`timed_out`), as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
            Self::Refused => "refused",
            Self::Abandoned => "abandoned",
        }
    }
}

/// Where a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Not started yet (or never: the run ended first).
    Pending,
    /// Running.
    Running,
    /// Completed; its output is recorded.
    Completed,
    /// Failed (the record says why).
    Failed,
    /// The before-node check refused it.
    Refused,
    /// It was running when the run was cancelled, timed out or failed
    /// elsewhere, and was dropped.
    Cancelled,
}

/// One node's part of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
pub struct NodeRecord {
    /// The node's id.
    pub id: String,
    /// Its type.
    pub node_type: String,
    /// Where it is.
    pub status: NodeStatus,
    /// When it started.
    #[cfg_attr(feature = "axum", schema(value_type = Option<String>, format = DateTime))]
    pub started_at: Option<Timestamp>,
    /// How long it ran (or ran until dropped), in microseconds.
    pub duration_us: Option<u64>,
    /// Its outputs (an object by port) when completed; when their JSON is
    /// longer than the executor's `max_recorded_output_bytes`, the start
    /// of that JSON as a string, and `output_truncated` is set.
    pub output: Option<Value>,
    /// Whether `output` is cut short.
    #[serde(default)]
    pub output_truncated: bool,
    /// Why it failed or was refused.
    pub error: Option<String>,
}

/// A run: who ran what, where it is, and what each node did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
pub struct RunRecord {
    /// The run's id (`run-` and 24 hex digits).
    pub run_id: String,
    /// The workflow it runs.
    pub workflow_id: String,
    /// The tenant it runs in.
    pub tenant_id: String,
    /// The subject that started it.
    pub subject: String,
    /// The session it belongs to, if any.
    pub session: Option<String>,
    /// Where it is.
    pub status: RunStatus,
    /// Why it did not complete.
    pub reason: Option<String>,
    /// The node that failed or was refused, if one did.
    pub failed_node: Option<String>,
    /// When it started.
    #[cfg_attr(feature = "axum", schema(value_type = String, format = DateTime))]
    pub started_at: Timestamp,
    /// When it ended.
    #[cfg_attr(feature = "axum", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
    /// How long it ran, in microseconds.
    pub duration_us: Option<u64>,
    /// The most bytes it held at once (see the crate doc for what counts).
    pub peak_bytes: u64,
    /// Its nodes, in definition order.
    pub nodes: Vec<NodeRecord>,
    /// Its outputs, when completed (cut like a node's output).
    pub outputs: Option<Value>,
    /// Whether `outputs` is cut short.
    #[serde(default)]
    pub outputs_truncated: bool,
}

#[cfg(test)]
mod wire_name_tests {
    use super::RunStatus;

    #[test]
    fn as_str_is_the_serde_name() {
        use RunStatus::*;
        for s in [
            Pending, Running, Completed, Failed, Cancelled, TimedOut, Refused, Abandoned,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
