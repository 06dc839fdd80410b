//! Billing metering, delivered (`[billing]`): each tenant's usage per UTC
//! day ([`kailash_tenancy::metering`]: API calls, workflow runs and their
//! running time) reported once the day is over as a signed `billing.usage`
//! webhook, and shown at `GET /api/tenant/usage`.
//!
//! The webhook is a `POST` of the [`UsageReport`] as JSON with
//!
//! - `Idempotency-Key: <tenant>:<YYYY-MM-DD>` (the report's `id`; the same
//!   for every attempt at that day, so a receiver that saw it answers 2xx
//!   and ignores it);
//! - `X-Kailash-Event: billing.usage`;
//! - `X-Kailash-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` of
//!   `"<t>.<body>"` under the shared secret ([`kailash_core::webhook`]).
//!   A receiver checks it with [`verify_signature`] (constant time) and
//!   refuses a `t` outside its replay window (five minutes is usual).
//!
//! Any answer but 2xx, a connection failure or a timeout is retried with
//! backoff (30 s doubling to 1 h) while the day's figures are kept (35
//! days); days go out in order per tenant, and several instances never send
//! the same day at once. Delivery runs in the background: a receiver that
//! is down never slows a request.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use kailash::billing::WebhookDelivery;
//! use kailash_core::clock::SystemClock;
//!
//! let secret = b"0123456789abcdef0123456789abcdef";
//! let hook = WebhookDelivery::new("https://billing.example.com/usage", secret, Duration::from_secs(10), Arc::new(SystemClock)).unwrap();
//! // Neither the URL's path nor the secret shows.
//! assert!(!format!("{hook:?}").contains("usage"));
//! // Plain HTTP only to this machine; short secrets are refused.
//! assert!(WebhookDelivery::new("http://billing.example.com/", secret, Duration::from_secs(10), Arc::new(SystemClock)).is_err());
//! assert!(WebhookDelivery::new("https://billing.example.com/", b"short", Duration::from_secs(10), Arc::new(SystemClock)).is_err());
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, header};
use kailash_core::clock::Clock;
use kailash_tenancy::metering::{ReportDelivery, UsageReport};

pub use kailash_core::webhook::{SignatureError, sign, verify_signature};
pub use kailash_tenancy::metering::{Billing, DayUsage, DeliveryRecord, Metering, Round};

pub use kailash_core::webhook::SIGNATURE_HEADER;
/// The event header.
pub const EVENT_HEADER: &str = "x-kailash-event";
/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// The longest webhook URL accepted, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// The most bytes of a receiver's answer read (the rest is not needed).
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// How the gateway reports (`[billing]`, or [`GatewayBuilder::billing`](crate::GatewayBuilder::billing)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillingSettings {
    /// How often due days are looked for.
    pub interval: Duration,
    /// How long after midnight UTC a day is reported (runs and sockets
    /// that end just after it still count for it).
    pub settle: Duration,
    /// One attempt's deadline.
    pub timeout: Duration,
}

impl Default for BillingSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            settle: Duration::from_secs(600),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Checks a webhook URL as [`WebhookDelivery::new`] does: absolute,
/// `https://`, or `http://` to a loopback host; at most
/// [`MAX_URL_BYTES`]. The error never repeats the URL.
pub fn check_url(url: &str) -> Result<http::Uri, String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("longer than {MAX_URL_BYTES} bytes"));
    }
    let uri: http::Uri = url.parse().map_err(|_| "not an absolute URL".to_owned())?;
    let host = uri.host().ok_or("not an absolute URL with a host")?;
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if crate::client::loopback(host.trim_matches(['[', ']'])) => Ok(uri),
        _ => Err("must be https:// (http:// only to a loopback host)".to_owned()),
    }
}

/// Delivers reports as signed webhooks to one URL.
pub struct WebhookDelivery {
    uri: http::Uri,
    secret: Vec<u8>,
    client: crate::client::Client,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for WebhookDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the URL (it may carry a token) nor the secret.
        f.debug_struct("WebhookDelivery")
            .field("host", &self.uri.host())
            .finish_non_exhaustive()
    }
}

impl WebhookDelivery {
    /// Reports to `url` ([`check_url`]), signed with `secret` (at least
    /// [`MIN_SECRET_BYTES`]), each attempt within `timeout`, with `https://`
    /// checked against the system's roots. `clock` dates the signatures.
    ///
    /// # Errors
    ///
    /// A refused URL or secret, or no usable root certificates; the message
    /// repeats neither the URL nor the secret.
    pub fn new(
        url: &str,
        secret: &[u8],
        timeout: Duration,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let uri = check_url(url)?;
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the signing secret must be at least {MIN_SECRET_BYTES} bytes"
            ));
        }
        let roots = crate::client::roots(None)?;
        let client = crate::client::Client::with_roots(roots, timeout, MAX_ANSWER_BYTES)?
            // The receiver is a third party (the billing system).
            .without_trace_context();
        Ok(Self {
            uri,
            secret: secret.to_vec(),
            client,
            clock,
        })
    }

    /// The same delivery drawing its connections from `pool` (the
    /// gateway's outbound pool).
    #[must_use]
    pub fn with_pool(mut self, pool: &kailash_core::outbound::ConnectionPool) -> Self {
        self.client = self.client.pool(pool);
        self
    }
}

#[async_trait::async_trait]
impl ReportDelivery for WebhookDelivery {
    async fn deliver(&self, report: &UsageReport) -> Result<(), String> {
        let body = serde_json::to_vec(report).map_err(|e| format!("report: {e}"))?;
        let signature = sign(&self.secret, self.clock.now().as_second(), &body);
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", &report.id)
            .header(EVENT_HEADER, report.kind)
            .header(SIGNATURE_HEADER, signature)
            .header(header::USER_AGENT, "kailash-billing")
            .body(Bytes::from(body))
            .map_err(|_| "the report could not be framed".to_owned())?;
        let answer = self.client.send(request).await?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "the receiver answered {}",
                answer.status().as_u16()
            ))
        }
    }
}

/// Meters every ended run of the gateway's runtime: one workflow run and
/// its running time (milliseconds, rounded up) for the run's tenant. The
/// runtime's event sink must not block, so events are queued for one task
/// (started with the first event) that records them.
pub(crate) struct RunUsage {
    tx: tokio::sync::mpsc::Sender<(kailash_core::TenantId, u64)>,
    rx: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<(kailash_core::TenantId, u64)>>>,
    metering: Metering,
}

/// Ended runs waiting to be recorded; past it one is dropped (and logged).
const RUN_QUEUE: usize = 4096;

impl RunUsage {
    pub(crate) fn new(metering: Metering) -> Arc<Self> {
        let (tx, rx) = tokio::sync::mpsc::channel(RUN_QUEUE);
        Arc::new(Self {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
            metering,
        })
    }

    fn start(&self) {
        let Some(mut rx) = self.rx.lock().ok().and_then(|mut rx| rx.take()) else {
            return;
        };
        let metering = self.metering.clone();
        tokio::spawn(async move {
            use kailash_core::usage::{UsageMetric, UsageSink};
            while let Some((tenant, duration_us)) = rx.recv().await {
                let ms = duration_us.div_ceil(1000);
                for (metric, amount) in [
                    (UsageMetric::WorkflowRuns, 1),
                    (UsageMetric::WorkflowRunMillis, ms),
                ] {
                    if let Err(error) = metering.record(&tenant, metric, amount).await {
                        tracing::error!(%error, tenant = %tenant, metric = metric.name(), "run usage not metered");
                    }
                }
            }
        });
    }
}

impl kailash_runtime::EventSink for RunUsage {
    fn publish(&self, event: &kailash_runtime::RunEvent) {
        let kailash_runtime::RunEvent::Completed {
            tenant_id,
            duration_us,
            ..
        } = event
        else {
            return;
        };
        let Ok(tenant) = kailash_core::TenantId::new(tenant_id) else {
            return;
        };
        self.start();
        if self.tx.try_send((tenant, *duration_us)).is_err() {
            tracing::error!(tenant = %tenant_id, "run usage queue full; a run was not metered");
        }
    }
}

/// The gateway's delivery loop: every `interval`, the registry's tenants'
/// due days.
#[derive(Clone)]
pub(crate) struct BillingLoop {
    pub(crate) billing: Billing,
    pub(crate) registry: Arc<dyn kailash_tenancy::registry::TenantRegistry>,
    pub(crate) interval: Duration,
}

impl BillingLoop {
    /// One round over every tenant now.
    pub(crate) async fn round(&self) -> Round {
        let ids = match self.registry.list().await {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(%error, "billing: the tenant list is unavailable");
                return Round::default();
            }
        };
        let mut tenants = Vec::with_capacity(ids.len());
        for id in ids {
            match self.registry.get(&id).await {
                Ok(Some(tenant)) => tenants.push(tenant),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, tenant = %id, "billing: tenant unavailable"),
            }
        }
        self.billing.deliver_due(&tenants).await
    }

    /// Runs rounds until aborted.
    pub(crate) fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(self.interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                self.round().await;
            }
        })
    }
}
