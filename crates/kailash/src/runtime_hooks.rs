//! What the gateway wires between its workflow runtime and its realtime
//! hub: every run's events (`execution.started`, `node.completed`,
//! `execution.completed`) go to the run's user (with session isolation) or
//! to the tenant's `workflow:execute` holders, on channel `executions`, in
//! the order the run produced them. Observers added with
//! [`GatewayBuilder::observe_runs`] get every event too, as it happens.

use std::sync::{Arc, OnceLock, RwLock};

use kailash_core::TenantId;
use kailash_realtime::Hub;
use kailash_realtime::event::{Classification, Event};
use kailash_runtime::{EventSink, RunEvent};
use tokio::sync::mpsc;

use crate::{GatewayBuilder, GatewayError};

/// The observers of every run event, besides the realtime hub.
pub(crate) type RunObservers = Arc<RwLock<Vec<Arc<dyn EventSink>>>>;

/// The realtime channel run events go out on.
pub(crate) const EXECUTIONS_CHANNEL: &str = "executions";

/// Events waiting to be published at once; past it, events are dropped
/// (and logged): a run never waits on its watchers.
const QUEUE: usize = 4096;

/// Queues run events for one forwarding task, which publishes them in
/// order once the hub exists (events before that, or without realtime,
/// are dropped: nobody could be listening).
pub(crate) struct RunEventsToRealtime {
    tx: mpsc::Sender<RunEvent>,
    observers: RunObservers,
}

impl RunEventsToRealtime {
    /// The sink, the slot the hub goes into once it is built, and the list
    /// observers go into. Spawns the forwarding task: call inside a tokio
    /// runtime.
    pub(crate) fn spawn(isolation: bool) -> (Arc<Self>, Arc<OnceLock<Hub>>, RunObservers) {
        let (tx, mut rx) = mpsc::channel::<RunEvent>(QUEUE);
        let slot: Arc<OnceLock<Hub>> = Arc::new(OnceLock::new());
        let hub = slot.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let Some(hub) = hub.get() else { continue };
                forward(hub, &event, isolation).await;
            }
        });
        let observers = RunObservers::default();
        (
            Arc::new(Self {
                tx,
                observers: observers.clone(),
            }),
            slot,
            observers,
        )
    }
}

impl EventSink for RunEventsToRealtime {
    fn publish(&self, event: &RunEvent) {
        if let Ok(observers) = self.observers.read() {
            for observer in observers.iter() {
                observer.publish(event);
            }
        }
        if self.tx.try_send(event.clone()).is_err() {
            tracing::warn!(event = event.name(), "run event queue full; event dropped");
        }
    }
}

async fn forward(hub: &Hub, event: &RunEvent, isolation: bool) {
    let Ok(tenant) = TenantId::new(event.tenant_id()) else {
        return;
    };
    let data = serde_json::to_value(event).unwrap_or(serde_json::Value::Null);
    let built = Event::new(tenant, EXECUTIONS_CHANNEL, event.name())
        .and_then(|e| e.required_permission(kailash_runtime::runtime::EXECUTE_PERMISSION))
        .map(|e| e.data(data).classification(Classification::Internal));
    let sent = match built {
        Ok(e) if isolation => hub.send_to_user(event.subject(), &e).await.map(drop),
        Ok(e) => hub.send_to_tenant(&e).await.map(drop),
        Err(error) => Err(error),
    };
    if let Err(error) = sent {
        tracing::warn!(%error, event = event.name(), "could not publish a run event");
    }
}

impl GatewayBuilder {
    /// Gives `observer` every event of the workflow runtime built from
    /// `[runtime]` by [`from_config_with_backends`](Self::from_config_with_backends)
    /// (`execution.started`, `node.completed`, `execution.completed`), as
    /// the run produces them, on the run's task: its `publish` must be
    /// quick and must not block (count, record a metric, queue). For a
    /// runtime you build yourself, give the sink to its
    /// `RuntimeBuilder::events` instead; here that is refused.
    pub fn observe_runs(self, observer: Arc<dyn EventSink>) -> Result<Self, GatewayError> {
        let Some(observers) = &self.run_observers else {
            return Err(GatewayError::Runtime(
                "observe_runs needs the workflow runtime built from [runtime] (from_config_with_backends)"
                    .into(),
            ));
        };
        observers
            .write()
            .map_err(|_| GatewayError::Runtime("the run observers are unusable".into()))?
            .push(observer);
        Ok(self)
    }
}
