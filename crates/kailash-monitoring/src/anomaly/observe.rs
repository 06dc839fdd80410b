//! The detector's inputs: a tee in front of the audit sink, and a layer
//! that observes requests.

use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use kailash_core::Principal;
use kailash_core::audit::{AuditError, AuditEvent, AuditSink, AuditTicket};
use kailash_core::context::RequestContext;

use super::{AnomalyDetector, Input, Observation};

/// An [`AuditSink`] that hands every event to the sink behind it and
/// queues the ones the detector judges ([`Observation::from_audit`]).
/// Queuing never waits: the request path pays one comparison of the
/// action for events it does not judge.
///
/// The detector writes its own `security.anomaly` events to the sink
/// behind this one, and would not judge them anyway: nothing loops.
#[derive(Clone)]
pub struct AnomalyAuditSink {
    inner: Arc<dyn AuditSink>,
    detector: AnomalyDetector,
}

impl std::fmt::Debug for AnomalyAuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnomalyAuditSink").finish_non_exhaustive()
    }
}

impl AnomalyAuditSink {
    /// The tee: events go to `inner`, observations to `detector`.
    pub fn new(inner: Arc<dyn AuditSink>, detector: AnomalyDetector) -> Self {
        Self { inner, detector }
    }
}

#[async_trait]
impl AuditSink for AnomalyAuditSink {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        let observation = Observation::from_audit(&event);
        self.inner.record(event).await?;
        if let Some(o) = observation {
            self.detector.offer(o);
        }
        Ok(())
    }

    fn try_record(&self, event: AuditEvent) -> Result<AuditTicket, AuditEvent> {
        let observation = Observation::from_audit(&event);
        let ticket = self.inner.try_record(event)?;
        // Given back events come again through `record`: observe once.
        if let Some(o) = observation {
            self.detector.offer(o);
        }
        Ok(ticket)
    }

    async fn flush(&self) -> Result<(), AuditError> {
        self.inner.flush().await
    }

    fn health(&self) -> Result<(), AuditError> {
        self.inner.health()
    }
}

/// A layer that queues one [`Input::Requests`] observation per request:
/// the client IP from the [`RequestContext`], the actor and tenant from
/// the [`Principal`] when authentication ran before it. It adds no
/// state round trip to the request: the background task counts.
#[derive(Clone, Debug)]
pub struct RequestRateLayer {
    detector: AnomalyDetector,
}

impl RequestRateLayer {
    /// The layer feeding `detector`.
    pub fn new(detector: AnomalyDetector) -> Self {
        Self { detector }
    }
}

impl<S> tower::Layer<S> for RequestRateLayer {
    type Service = RequestRate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestRate {
            inner,
            detector: self.detector.clone(),
        }
    }
}

/// The service of [`RequestRateLayer`].
#[derive(Clone, Debug)]
pub struct RequestRate<S> {
    inner: S,
    detector: AnomalyDetector,
}

impl<S, B> tower::Service<http::Request<B>> for RequestRate<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let ctx = req.extensions().get::<RequestContext>();
        let principal = req.extensions().get::<Principal>();
        if ctx.is_some() || principal.is_some() {
            self.detector.offer(Observation {
                input: Input::Requests,
                actor: principal.map(|p| p.subject().to_owned()),
                tenant: principal.and_then(|p| p.tenant().cloned()),
                client_ip: ctx.map(RequestContext::client_ip),
                time: ctx.map_or_else(jiff::Timestamp::now, RequestContext::received_at),
            });
        }
        self.inner.call(req)
    }
}
