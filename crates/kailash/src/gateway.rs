//! The built gateway: an axum `Router` with the whole stack, plus the server
//! that runs it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use kailash_core::audit::AuditSink;
use kailash_core::clock::Clock;
use kailash_core::state::SharedState;
use tokio::net::TcpListener;

use crate::server::{Handler, ServerSettings};
use crate::{GatewayBuilder, GatewayError, server};

/// The field keys, their re-encryption targets and the round interval.
pub(crate) type FieldMaintenance = (
    Arc<kailash_core::field_encryption::FieldKeys>,
    Vec<Arc<dyn kailash_core::field_encryption::Reencrypt>>,
    std::time::Duration,
);

/// A composed gateway, ready to serve. Build one with [`Gateway::builder`].
///
/// [`Gateway::router`] gives the composed stack as a plain axum `Router`
/// (for tests, or to serve it yourself); [`Gateway::serve`] and
/// [`Gateway::run`] serve it with the connection limits, TLS and graceful
/// shutdown the builder configured.
pub struct Gateway {
    handler: Handler,
    settings: ServerSettings,
    tls: Option<Arc<rustls::ServerConfig>>,
    audit: Option<Arc<dyn AuditSink>>,
    state: SharedState,
    clock: Arc<dyn Clock>,
    realtime: Option<kailash_realtime::Hub>,
    runtime: Option<kailash_runtime::runtime::AccessControlledRuntime>,
    health: Option<kailash_monitoring::health::HealthRunner>,
    alerting: Option<kailash_monitoring::alert::Alerting>,
    ops: Option<crate::ops_access::OpsListener>,
    field_maintenance: Option<FieldMaintenance>,
    billing: Option<crate::billing::BillingLoop>,
}

/// The longest the gateway waits, after draining, for queued alert
/// notifications to be delivered.
const ALERTS_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The longest the gateway waits, after draining, for cancelled runs to
/// write their records.
const RUNS_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("settings", &self.settings)
            .field("tls", &self.tls.is_some())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Starts a builder with secure defaults.
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::new()
    }

    pub(crate) fn new(
        handler: Handler,
        settings: ServerSettings,
        tls: Option<Arc<rustls::ServerConfig>>,
        audit: Option<Arc<dyn AuditSink>>,
        state: SharedState,
        clock: Arc<dyn Clock>,
        realtime: Option<kailash_realtime::Hub>,
    ) -> Self {
        Self {
            handler,
            settings,
            tls,
            audit,
            state,
            clock,
            realtime,
            runtime: None,
            health: None,
            alerting: None,
            field_maintenance: None,
            billing: None,
            ops: None,
        }
    }

    /// The same gateway, with an operations listener (`ops_access`).
    pub(crate) fn with_ops(mut self, ops: Option<crate::ops_access::OpsListener>) -> Self {
        self.ops = ops;
        self
    }

    /// The address of the operations listener
    /// ([`GatewayBuilder::ops_listen`]), when one is configured.
    pub fn ops_listen_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().map(|ops| ops.settings.listen)
    }

    /// The operations listener's routes as an axum `Router`, when one is
    /// configured (like [`router`](Self::router), without the server-level
    /// limits).
    pub fn ops_router(&self) -> Option<Router> {
        self.ops.as_ref().map(crate::ops_access::router)
    }

    /// The same gateway, ending `runtime`'s runs at shutdown.
    pub(crate) fn with_runtime(
        mut self,
        runtime: Option<kailash_runtime::runtime::AccessControlledRuntime>,
    ) -> Self {
        self.runtime = runtime;
        self
    }

    /// The same gateway, running `health`'s checks while it serves.
    pub(crate) fn with_health(mut self, health: kailash_monitoring::health::HealthRunner) -> Self {
        self.health = Some(health);
        self
    }

    /// The same gateway, maintaining the field keys while it serves.
    pub(crate) fn with_field_maintenance(mut self, maintenance: Option<FieldMaintenance>) -> Self {
        self.field_maintenance = maintenance;
        self
    }

    /// The field-encryption keys (`[security.field_encryption]`), for your
    /// own [`Encrypted`](kailash_core::field_encryption::Encrypted) fields
    /// and for running a maintenance round on demand.
    pub fn field_keys(&self) -> Option<&Arc<kailash_core::field_encryption::FieldKeys>> {
        self.field_maintenance.as_ref().map(|(keys, _, _)| keys)
    }

    /// One field-key maintenance round now (rotation when due, KEK
    /// re-wrap, re-encryption of what older keys sealed) — what the
    /// gateway runs on its own every interval while it serves.
    pub async fn maintain_field_keys(
        &self,
    ) -> Option<
        Result<
            kailash_core::field_encryption::MaintenanceReport,
            kailash_core::field_encryption::FieldError,
        >,
    > {
        let (keys, targets, _) = self.field_maintenance.as_ref()?;
        Some(keys.maintain(targets).await)
    }

    /// The same gateway, reporting usage while it serves.
    pub(crate) fn with_billing(mut self, billing: Option<crate::billing::BillingLoop>) -> Self {
        self.billing = billing;
        self
    }

    /// The usage metering and its reporting ([`GatewayBuilder::billing`](crate::GatewayBuilder::billing)),
    /// when configured.
    pub fn billing(&self) -> Option<&crate::billing::Billing> {
        self.billing.as_ref().map(|b| &b.billing)
    }

    /// One billing round now over every tenant (what the gateway runs on
    /// its own every `interval` while it serves); `None` without billing.
    pub async fn deliver_usage(&self) -> Option<crate::billing::Round> {
        Some(self.billing.as_ref()?.round().await)
    }

    /// The same gateway, evaluating `alerting`'s rules while it serves.
    pub(crate) fn with_alerting(
        mut self,
        alerting: Option<kailash_monitoring::alert::Alerting>,
    ) -> Self {
        self.alerting = alerting;
        self
    }

    /// The alert evaluator, when rules were configured: its rules' phases
    /// ([`Alerting::states`](kailash_monitoring::alert::Alerting::states))
    /// and whether this instance holds the evaluation lease.
    pub fn alerting(&self) -> Option<&kailash_monitoring::alert::Alerting> {
        self.alerting.as_ref()
    }

    /// The background health checks behind `/health/ready`: their stored
    /// state ([`HealthRunner::report`](kailash_monitoring::health::HealthRunner::report)),
    /// and a [`SignalSource`](kailash_monitoring::signal::SignalSource) of
    /// `<check>_health` flags and measured values for alert rules.
    pub fn health(&self) -> Option<&kailash_monitoring::health::HealthRunner> {
        self.health.as_ref()
    }

    /// The workflow runtime, when [`GatewayBuilder::runtime`] was set.
    pub fn runtime(&self) -> Option<&kailash_runtime::runtime::AccessControlledRuntime> {
        self.runtime.as_ref()
    }

    /// The realtime hub, when [`GatewayBuilder::realtime`] was set: to send
    /// events from outside a request, and to read its statistics.
    pub fn realtime(&self) -> Option<&kailash_realtime::Hub> {
        self.realtime.as_ref()
    }

    /// The composed stack as an axum `Router` (one catch-all service), to
    /// serve it yourself or to test it with `tower::ServiceExt::oneshot`.
    /// Serving it yourself skips the server-level limits (connection caps,
    /// header limits, header read and idle deadlines, HTTP/2 keep-alive,
    /// TLS, graceful shutdown); without a
    /// `ConnectInfo<SocketAddr>` or [`PeerAddr`](kailash_core::context::PeerAddr)
    /// every client shares one rate-limit bucket.
    pub fn router(&self) -> Router {
        let handler = self.handler.clone();
        Router::new().fallback_service(tower::service_fn(move |req| {
            let response = handler(req);
            async move { Ok::<_, std::convert::Infallible>(response.await) }
        }))
    }

    /// The shared state backend.
    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// The address [`run`](Self::run) binds.
    pub fn listen_addr(&self) -> SocketAddr {
        self.settings.listen
    }

    /// Whether the gateway serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Binds the configured address and serves until SIGINT or SIGTERM, then
    /// shuts down gracefully.
    pub async fn run(self) -> Result<(), GatewayError> {
        let addr = self.settings.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| GatewayError::Listen { addr, source })?;
        self.serve(listener, shutdown_signal()).await
    }

    /// Serves on `listener` until `shutdown` completes; then stops accepting,
    /// lets in-flight requests finish (up to the grace period), and flushes
    /// the audit trail. With an operations listener configured, binds its
    /// address too and serves it until the same shutdown.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), GatewayError> {
        let ops = match &self.ops {
            Some(ops) => Some(crate::ops_access::bind(ops).await?),
            None => None,
        };
        self.serve_listeners(listener, ops, shutdown).await
    }

    /// [`serve`](Self::serve) with the operations listener already bound
    /// (`ops_listener`, instead of the configured address). Refused when no
    /// operations listener is configured ([`GatewayBuilder::ops_listen`]).
    pub async fn serve_with_ops(
        self,
        listener: TcpListener,
        ops_listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), GatewayError> {
        if self.ops.is_none() {
            return Err(GatewayError::Ops(
                "no operations listener is configured (ops_listen)".into(),
            ));
        }
        self.serve_listeners(listener, Some(ops_listener), shutdown)
            .await
    }

    async fn serve_listeners(
        self,
        listener: TcpListener,
        ops_listener: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), GatewayError> {
        let addr = listener.local_addr().unwrap_or(self.settings.listen);
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, scheme, state = self.state.backend_name(), "gateway listening");
        self.audit_lifecycle("gateway.start", format!("{scheme}://{addr}"))
            .await;
        if let Some(health) = &self.health {
            health.start();
        }
        if let Some(alerting) = &self.alerting {
            alerting.start();
        }
        // Aborted when serving ends, also when this future is dropped. A
        // report cut off mid-flight is sent again once its claim lapses
        // (the receiver deduplicates by its id).
        let billing = self.billing.clone().map(|b| AbortOnDrop(b.spawn()));
        // Aborted when serving ends, also when this future is dropped.
        let maintenance = self
            .field_maintenance
            .as_ref()
            .map(|(keys, targets, every)| {
                AbortOnDrop(keys.spawn_maintenance(targets.clone(), *every))
            });

        // Realtime connections are long-lived: closed (1001 going away) as
        // soon as the shutdown starts, so they never hold the grace period.
        let hub = self.realtime.clone();
        let runtime = self.runtime.clone();
        // The operations listener stops accepting with the main one.
        let (shutdown, ops_shutdown) = crate::ops_access::fork_shutdown(shutdown);
        let shutdown = async move {
            shutdown.await;
            if let Some(hub) = hub {
                hub.close_all();
            }
            // Runs end while connections drain (recorded `abandoned`).
            if let Some(runtime) = runtime {
                runtime.begin_shutdown();
            }
        };
        let main = server::serve(
            listener,
            self.handler.clone(),
            &self.settings,
            self.tls.clone(),
            shutdown,
        );
        let ops = crate::ops_access::serve(self.ops.as_ref().zip(ops_listener), ops_shutdown);
        tokio::join!(main, ops);
        // The socket time of the last usage interval is billed, not lost.
        if let Some(hub) = &self.realtime {
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(5), hub.flush_usage()).await;
        }
        // A re-encryption pass is compare-and-set per record: stopping it
        // midway leaves every record whole.
        drop(maintenance);
        drop(billing);
        // No more checks once the listener is closed.
        if let Some(health) = &self.health {
            health.stop();
        }
        // The lease is given up so another instance evaluates at once;
        // notifications already queued get a few seconds to go out.
        if let Some(alerting) = &self.alerting {
            alerting
                .shutdown(ALERTS_GRACE.min(self.settings.shutdown_grace))
                .await;
        }

        // Runs in flight end here: recorded `abandoned` (with the reason)
        // before the audit trail is flushed, never left `running`.
        if let Some(runtime) = &self.runtime {
            // Cancelled when the shutdown began: only their records remain.
            runtime
                .shutdown(RUNS_GRACE.min(self.settings.shutdown_grace))
                .await;
        }
        self.audit_lifecycle("gateway.stop", format!("{scheme}://{addr}"))
            .await;
        if let Some(audit) = &self.audit
            && let Err(error) = audit.flush().await
        {
            tracing::error!(%error, "audit trail could not be flushed at shutdown");
        }
        tracing::info!("gateway stopped");
        Ok(())
    }

    async fn audit_lifecycle(&self, action: &'static str, resource: String) {
        if let Some(audit) = &self.audit {
            let event = lifecycle_event(action, resource).at(self.clock.now());
            if let Err(error) = audit.record(event).await {
                tracing::error!(%error, action, "audit event could not be recorded");
            }
        }
    }
}

/// A background task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}

/// An audit event about the gateway itself.
fn lifecycle_event(action: &'static str, resource: String) -> kailash_core::audit::AuditEvent {
    kailash_core::audit::AuditEvent::new(action, kailash_core::audit::AuditDecision::Success)
        .resource(resource)
}
