//! Billing metering: each tenant's usage per UTC day in the shared state,
//! exact across instances, and its delivery as one `billing.usage` report
//! per tenant and day.
//!
//! * **Recording.** [`Metering`] is the [`UsageSink`] the workflow runtime
//!   and the realtime hub report to: one counter per tenant, metric and UTC
//!   day (`t:<tenant>:usage.day:<metric>:<YYYY-MM-DD>`). API calls are the
//!   tenancy layer's daily quota counter, read as it is.
//! * **Reporting.** [`Billing::deliver_due`] reports every day that has
//!   ended (plus `settle`, for runs and sockets that end late) and was not
//!   reported yet, oldest first, through a [`ReportDelivery`] (the gateway's
//!   is a signed webhook). Any instance may run it: an attempt is claimed
//!   with a compare-and-set on the tenant's delivery record, so one instance
//!   sends a day at a time; a failure is retried with backoff (30 s
//!   doubling to 1 h) while the day's counters are kept (35 days). A day is
//!   reported at least once; its report's `id` (`<tenant>:<day>`) is the
//!   receiver's idempotency key.
//! * **Watching.** [`Billing::delivery`] is the record: the last day
//!   delivered, the day pending with its attempts, last error and next
//!   attempt.
//!
//! ```
//! use std::sync::Arc;
//! use kailash_core::clock::{Clock, ManualClock};
//! use kailash_core::state::SharedState;
//! use kailash_core::usage::{UsageMetric, UsageSink};
//! use kailash_tenancy::metering::Metering;
//! use kailash_core::TenantId;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let clock = Arc::new(ManualClock::new("2026-12-01T10:00:00Z".parse().unwrap()));
//! let state = SharedState::memory(clock.clone());
//! let metering = Metering::new(state);
//! let acme = TenantId::new("acme").unwrap();
//! metering.record(&acme, UsageMetric::WorkflowRuns, 1).await.unwrap();
//! metering.record(&acme, UsageMetric::WorkflowRunMillis, 1500).await.unwrap();
//! let day = metering.day(&acme, "2026-12-01".parse().unwrap()).await.unwrap();
//! assert_eq!((day.workflow_runs, day.workflow_run_ms), (1, 1500));
//! # });
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use kailash_core::TenantId;
use kailash_core::state::{Namespace, SharedState, StateError, StateKey};
use kailash_core::usage::{UsageMetric, UsageSink};
use serde::{Deserialize, Serialize};

use crate::model::Tenant;
use crate::quota::{DAY_KEPT, Quotas, api_calls_key};

/// Usage per day (`t:<tenant>:usage.day:<metric>:<YYYY-MM-DD>`).
const USAGE: Namespace = Namespace::new("usage.day");
/// The delivery record (`t:<tenant>:billing:delivery`).
const BILLING: Namespace = Namespace::new("billing");

/// The first retry's wait; it doubles per failed attempt.
const FIRST_RETRY: Duration = Duration::from_secs(30);
/// The longest wait between attempts.
const MAX_RETRY: Duration = Duration::from_secs(3600);
/// Days one round reports per tenant at most (a backlog drains over rounds).
const MAX_DAYS_PER_ROUND: usize = 31;
/// The longest error text kept in the record.
const MAX_ERROR_CHARS: usize = 200;

fn clamp_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn utc_date(at: Timestamp) -> Date {
    TimeZone::UTC.to_datetime(at).date()
}

/// Midnight UTC starting `date`.
fn day_start(date: Date) -> Timestamp {
    TimeZone::UTC
        .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
        .unwrap_or(Timestamp::MAX)
}

fn next_day(date: Date) -> Date {
    date.tomorrow().unwrap_or(date)
}

/// Keeps usage per tenant, metric and UTC day in the shared state, exactly
/// across instances. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metering {
    state: SharedState,
}

/// One tenant's usage on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
pub struct DayUsage {
    /// The day (UTC), `YYYY-MM-DD`.
    #[cfg_attr(feature = "axum", schema(value_type = String, format = Date))]
    pub day: Date,
    /// API calls admitted (the daily quota's count).
    pub api_calls: u64,
    /// Workflow runs that ended.
    pub workflow_runs: u64,
    /// Their running time, milliseconds.
    pub workflow_run_ms: u64,
    /// Seconds realtime sockets were open.
    pub realtime_connection_seconds: u64,
}

impl Metering {
    /// Usage kept in `state` (and timed by its clock).
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }

    fn key(tenant: &TenantId, metric: UsageMetric, date: Date) -> StateKey {
        StateKey::tenant(tenant, USAGE, &format!("{}:{date}", metric.name()))
    }

    /// `tenant`'s usage on `date` (zeros for a day with none, or whose
    /// counters are no longer kept).
    pub async fn day(&self, tenant: &TenantId, date: Date) -> Result<DayUsage, StateError> {
        let counters = &self.state.counters;
        let keys = [
            api_calls_key(tenant, date),
            Self::key(tenant, UsageMetric::WorkflowRuns, date),
            Self::key(tenant, UsageMetric::WorkflowRunMillis, date),
            Self::key(tenant, UsageMetric::RealtimeConnectionSeconds, date),
        ];
        // Independent reads, asked together (one round trip's wait on Redis).
        let (api, runs, ms, socket_secs) = tokio::join!(
            counters.get(&keys[0]),
            counters.get(&keys[1]),
            counters.get(&keys[2]),
            counters.get(&keys[3]),
        );
        Ok(DayUsage {
            day: date,
            api_calls: clamp_u64(api?.value),
            workflow_runs: clamp_u64(runs?.value),
            workflow_run_ms: clamp_u64(ms?.value),
            realtime_connection_seconds: clamp_u64(socket_secs?.value),
        })
    }

    /// `tenant`'s usage so far today (UTC).
    pub async fn today(&self, tenant: &TenantId) -> Result<DayUsage, StateError> {
        self.day(tenant, utc_date(self.state.clock.now())).await
    }
}

#[async_trait::async_trait]
impl UsageSink for Metering {
    async fn record(
        &self,
        tenant: &TenantId,
        metric: UsageMetric,
        amount: u64,
    ) -> Result<(), StateError> {
        if amount == 0 {
            return Ok(());
        }
        let now = self.state.clock.now();
        let date = utc_date(now);
        let ends = day_start(next_day(date));
        let remaining = Duration::try_from(ends.duration_since(now)).unwrap_or_default();
        self.state
            .counters
            .add(
                &Self::key(tenant, metric, date),
                i64::try_from(amount).unwrap_or(i64::MAX),
                Some(remaining + DAY_KEPT),
            )
            .await
            .map(drop)
    }
}

/// The `billing.usage` report of one tenant's day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageReport {
    /// Always `billing.usage`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `<tenant>:<YYYY-MM-DD>`: the same for every attempt at this day, the
    /// receiver's idempotency key.
    pub id: String,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The tenant's plan (`[[tenants]] plan`) when the report was made.
    pub billing_plan: String,
    /// The period's start (midnight UTC, inclusive).
    pub period_start: Timestamp,
    /// The period's end (the next midnight UTC, exclusive).
    pub period_end: Timestamp,
    /// The usage in it.
    pub usage: DayUsage,
    /// Bytes the tenant stores when the report is made (a level, not a sum
    /// over the day).
    pub storage_bytes: u64,
}

/// Sends reports: the gateway's is a signed webhook.
#[async_trait::async_trait]
pub trait ReportDelivery: Send + Sync + 'static {
    /// Delivers `report`; `Err` (a short reason, never a secret or URL)
    /// when it was not accepted, so it is tried again later.
    async fn deliver(&self, report: &UsageReport) -> Result<(), String>;
}

/// A tenant's delivery record, as kept in the state and shown by
/// `GET /api/tenant/usage`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
pub struct DeliveryRecord {
    /// The last day delivered (all days before it were too); `null` before
    /// the first delivery.
    #[cfg_attr(feature = "axum", schema(value_type = Option<String>, format = Date))]
    pub delivered_through: Option<Date>,
    /// Failed attempts at the next day.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the last attempt was made.
    #[cfg_attr(feature = "axum", schema(value_type = Option<String>, format = DateTime))]
    pub last_attempt_at: Option<Timestamp>,
    /// No attempt before this (backoff after a failure).
    #[cfg_attr(feature = "axum", schema(value_type = Option<String>, format = DateTime))]
    pub next_attempt_at: Option<Timestamp>,
    /// An instance is sending until this time; others wait.
    #[cfg_attr(feature = "axum", schema(value_type = Option<String>, format = DateTime))]
    pub claimed_until: Option<Timestamp>,
    /// Days whose counters were gone before they could be delivered
    /// (delivery failed for longer than the 35 days they are kept).
    pub expired_days: u32,
}

/// What one [`Billing::deliver_due`] round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Reports accepted by the receiver.
    pub delivered: usize,
    /// Attempts that failed (tried again after the backoff).
    pub failed: usize,
}

/// What one step of a tenant's round did.
enum Step {
    /// Nothing due, waiting for the backoff, or another instance has it.
    Nothing,
    /// A day was delivered.
    Delivered,
    /// An attempt failed.
    Failed,
    /// Expired days were skipped.
    Skipped,
}

fn signed(d: Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX)
}

fn encode(record: &DeliveryRecord) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(record).map_err(|e| StateError::Backend(format!("billing record: {e}")))
}

/// Reports each tenant's ended days through a [`ReportDelivery`].
#[derive(Clone)]
pub struct Billing {
    metering: Metering,
    quotas: Quotas,
    delivery: Arc<dyn ReportDelivery>,
    settle: Duration,
    attempt_timeout: Duration,
}

impl std::fmt::Debug for Billing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Billing")
            .field("settle", &self.settle)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}

impl Billing {
    /// Reports the usage `state` holds through `delivery`, each day once it
    /// has ended and `settle` has passed (runs and sockets that end just
    /// after midnight count for the day they end in; `settle` waits for
    /// reports still on their way). An attempt is given `attempt_timeout`
    /// before another instance may try the same day.
    pub fn new(
        state: SharedState,
        delivery: Arc<dyn ReportDelivery>,
        settle: Duration,
        attempt_timeout: Duration,
    ) -> Self {
        Self {
            metering: Metering::new(state.clone()),
            quotas: Quotas::new(state),
            delivery,
            settle,
            attempt_timeout,
        }
    }

    /// The metering it reports from.
    pub fn metering(&self) -> &Metering {
        &self.metering
    }

    fn record_key(tenant: &TenantId) -> StateKey {
        StateKey::tenant(tenant, BILLING, "delivery")
    }

    async fn read(&self, tenant: &TenantId) -> Result<(DeliveryRecord, Option<Bytes>), StateError> {
        let raw = self
            .metering
            .state
            .kv
            .get(&Self::record_key(tenant))
            .await?;
        let record = match &raw {
            None => DeliveryRecord::default(),
            Some(bytes) => serde_json::from_slice(bytes).map_err(|_| {
                StateError::Corrupt(format!("the billing delivery record of tenant `{tenant}`"))
            })?,
        };
        Ok((record, raw))
    }

    /// Replaces the record read as `old` with `new`; false when another
    /// instance changed it first.
    async fn swap(
        &self,
        tenant: &TenantId,
        old: Option<&Bytes>,
        new: &DeliveryRecord,
    ) -> Result<bool, StateError> {
        let bytes = encode(new)?;
        self.metering
            .state
            .kv
            .compare_and_swap(
                &Self::record_key(tenant),
                old.map(|b| &b[..]),
                Some(Bytes::from(bytes)),
                None,
            )
            .await
    }

    /// `tenant`'s delivery record.
    pub async fn delivery(&self, tenant: &TenantId) -> Result<DeliveryRecord, StateError> {
        self.read(tenant).await.map(|(record, _)| record)
    }

    /// Reports every ended, settled and unreported day of each tenant in
    /// `tenants`, oldest first; a failure stops that tenant's round (days
    /// go out in order) and is retried after the backoff.
    pub async fn deliver_due(&self, tenants: &[Arc<Tenant>]) -> Round {
        let mut round = Round::default();
        for tenant in tenants {
            let mut sent = 0;
            // A skip of expired days is one step more, at most.
            for _ in 0..=MAX_DAYS_PER_ROUND {
                if sent == MAX_DAYS_PER_ROUND {
                    break;
                }
                match self.deliver_next(tenant).await {
                    Ok(Step::Delivered) => {
                        round.delivered += 1;
                        sent += 1;
                    }
                    Ok(Step::Skipped) => {}
                    Ok(Step::Failed) => {
                        round.failed += 1;
                        break;
                    }
                    Ok(Step::Nothing) => break,
                    Err(error) => {
                        tracing::warn!(%error, tenant = %tenant.id, "billing delivery state unavailable");
                        break;
                    }
                }
            }
        }
        round
    }

    /// Claims, builds and sends the tenant's next due day.
    async fn deliver_next(&self, tenant: &Tenant) -> Result<Step, StateError> {
        let now = self.metering.state.clock.now();
        let today = utc_date(now);
        let (record, raw) = self.read(&tenant.id).await?;
        // The first delivery starts with yesterday: older days were never
        // metered for billing.
        let day = record
            .delivered_through
            .map_or_else(|| today.yesterday().unwrap_or(today), next_day);
        let due = day_start(next_day(day)).checked_add(signed(self.settle));
        if day >= today || !due.is_ok_and(|due| due <= now) {
            return Ok(Step::Nothing);
        }
        if record.next_attempt_at.is_some_and(|t| t > now)
            || record.claimed_until.is_some_and(|t| t > now)
        {
            return Ok(Step::Nothing);
        }
        // Counters are kept DAY_KEPT after their day: an older day can no
        // longer be reported truthfully. It is skipped, counted and logged.
        let oldest_kept = today
            .checked_sub(jiff::Span::new().days(34))
            .unwrap_or(today);
        if day < oldest_kept {
            let through = oldest_kept.yesterday().unwrap_or(oldest_kept);
            let days = through.since(day).map_or(0, |s| s.get_days() + 1);
            tracing::error!(tenant = %tenant.id, from = %day, %through, "billing days expired undelivered");
            let mut next = record.clone();
            next.delivered_through = Some(through);
            next.expired_days = next
                .expired_days
                .saturating_add(u32::try_from(days).unwrap_or(u32::MAX));
            next.attempts = 0;
            next.next_attempt_at = None;
            return Ok(if self.swap(&tenant.id, raw.as_ref(), &next).await? {
                Step::Skipped
            } else {
                Step::Nothing
            });
        }
        // The claim: one instance sends this day at a time.
        let mut claimed = record;
        claimed.claimed_until = now
            .checked_add(signed(self.attempt_timeout.saturating_mul(2)))
            .ok();
        claimed.last_attempt_at = Some(now);
        if !self.swap(&tenant.id, raw.as_ref(), &claimed).await? {
            return Ok(Step::Nothing);
        }
        let sent = match self.build(tenant, day).await {
            Ok(report) => {
                tokio::time::timeout(self.attempt_timeout, self.delivery.deliver(&report))
                    .await
                    .unwrap_or_else(|_| Err("timed out".to_owned()))
            }
            Err(error) => Err(format!("usage unreadable: {error}")),
        };
        let now = self.metering.state.clock.now();
        let mut done = claimed.clone();
        done.claimed_until = None;
        let step = match &sent {
            Ok(()) => {
                done.delivered_through = Some(day);
                done.attempts = 0;
                done.last_error = None;
                done.next_attempt_at = None;
                Step::Delivered
            }
            Err(error) => {
                done.attempts = done.attempts.saturating_add(1);
                done.last_error = Some(error.chars().take(MAX_ERROR_CHARS).collect());
                let wait = FIRST_RETRY
                    .saturating_mul(1 << done.attempts.saturating_sub(1).min(16))
                    .min(MAX_RETRY);
                done.next_attempt_at = now.checked_add(signed(wait)).ok();
                tracing::warn!(tenant = %tenant.id, %day, attempts = done.attempts, %error, "billing report not delivered; retrying later");
                Step::Failed
            }
        };
        let outcome = if sent.is_ok() { "delivered" } else { "failed" };
        metrics::counter!("kailash_billing_deliveries_total", "outcome" => outcome).increment(1);
        // The record still holds our claim unless it lapsed and another
        // instance took the day over: then its outcome stands (the receiver
        // deduplicates by the report id).
        let claimed_raw = Bytes::from(encode(&claimed)?);
        if self.swap(&tenant.id, Some(&claimed_raw), &done).await? {
            Ok(step)
        } else {
            Ok(Step::Nothing)
        }
    }

    async fn build(&self, tenant: &Tenant, day: Date) -> Result<UsageReport, StateError> {
        let usage = self.metering.day(&tenant.id, day).await?;
        let storage = self.quotas.usage(tenant).await?.storage_bytes;
        Ok(UsageReport {
            kind: "billing.usage",
            id: format!("{}:{day}", tenant.id),
            tenant_id: tenant.id.clone(),
            billing_plan: tenant.plan.clone(),
            period_start: day_start(day),
            period_end: day_start(next_day(day)),
            usage,
            storage_bytes: storage,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use kailash_core::clock::ManualClock;

    use super::*;
    use crate::model::TenantSpec;

    /// Accepts or refuses, and keeps what it accepted.
    #[derive(Default)]
    struct Receiver {
        refuse: Mutex<bool>,
        got: Mutex<Vec<UsageReport>>,
        attempts: Mutex<usize>,
    }

    #[async_trait::async_trait]
    impl ReportDelivery for Receiver {
        async fn deliver(&self, report: &UsageReport) -> Result<(), String> {
            *self.attempts.lock().unwrap() += 1;
            if *self.refuse.lock().unwrap() {
                return Err("the receiver answered 503".into());
            }
            self.got.lock().unwrap().push(report.clone());
            Ok(())
        }
    }

    fn tenant(id: &str, plan: &str) -> Arc<Tenant> {
        let spec: TenantSpec =
            serde_json::from_value(serde_json::json!({"id": id, "plan": plan})).unwrap();
        Arc::new(Tenant::try_from(spec).unwrap())
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    struct Setup {
        clock: Arc<ManualClock>,
        state: SharedState,
        receiver: Arc<Receiver>,
        billing: Billing,
    }

    fn setup(start: &str) -> Setup {
        let clock = Arc::new(ManualClock::new(at(start)));
        let state = SharedState::memory(clock.clone());
        let receiver = Arc::new(Receiver::default());
        let billing = Billing::new(
            state.clone(),
            receiver.clone(),
            Duration::from_secs(600),
            Duration::from_secs(5),
        );
        Setup {
            clock,
            state,
            receiver,
            billing,
        }
    }

    #[tokio::test]
    async fn usage_is_kept_per_tenant_and_utc_day() {
        let s = setup("2026-12-01T23:59:00Z");
        let acme = tenant("acme", "enterprise");
        let globex = tenant("globex", "standard");
        let m = s.billing.metering();
        m.record(&acme.id, UsageMetric::WorkflowRuns, 1)
            .await
            .unwrap();
        m.record(&acme.id, UsageMetric::WorkflowRunMillis, 250)
            .await
            .unwrap();
        m.record(&globex.id, UsageMetric::RealtimeConnectionSeconds, 60)
            .await
            .unwrap();
        // API calls are the quota's own count.
        let quotas = Quotas::new(s.state.clone());
        quotas.charge_api_call(&acme).await.unwrap();
        s.clock.advance(Duration::from_secs(120)); // 2026-12-02T00:01
        m.record(&acme.id, UsageMetric::WorkflowRuns, 1)
            .await
            .unwrap();
        let first = m
            .day(&acme.id, "2026-12-01".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(
            (first.api_calls, first.workflow_runs, first.workflow_run_ms),
            (1, 1, 250)
        );
        assert_eq!(first.realtime_connection_seconds, 0);
        let second = m.today(&acme.id).await.unwrap();
        assert_eq!((second.api_calls, second.workflow_runs), (0, 1));
        let other = m
            .day(&globex.id, "2026-12-01".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(
            (other.realtime_connection_seconds, other.workflow_runs),
            (60, 0)
        );
        // Kept 35 days after the day, then gone.
        s.clock.advance(Duration::from_secs(34 * 86_400));
        let kept = m
            .day(&acme.id, "2026-12-01".parse().unwrap())
            .await
            .unwrap();
        assert_eq!((kept.api_calls, kept.workflow_runs), (1, 1));
        s.clock.advance(Duration::from_secs(2 * 86_400));
        let gone = m
            .day(&acme.id, "2026-12-01".parse().unwrap())
            .await
            .unwrap();
        assert_eq!((gone.api_calls, gone.workflow_runs), (0, 0));
    }

    #[tokio::test]
    async fn a_day_is_reported_once_settled_in_order_and_retried_with_backoff() {
        let s = setup("2026-12-01T12:00:00Z");
        let acme = tenant("acme", "enterprise");
        let tenants = [acme.clone()];
        s.billing
            .metering()
            .record(&acme.id, UsageMetric::WorkflowRuns, 3)
            .await
            .unwrap();
        // The first round reports yesterday (nothing used then).
        let round = s.billing.deliver_due(&tenants).await;
        assert_eq!(
            round,
            Round {
                delivered: 1,
                failed: 0
            }
        );
        assert_eq!(s.receiver.got.lock().unwrap()[0].id, "acme:2026-11-30");
        // Today is not over: nothing more.
        assert_eq!(s.billing.deliver_due(&tenants).await, Round::default());
        // Just after midnight, not yet settled (10 min).
        s.clock.set(at("2026-12-02T00:05:00Z"));
        assert_eq!(s.billing.deliver_due(&tenants).await, Round::default());
        // The receiver is down: a failure, retried after 30 s, then 60 s.
        *s.receiver.refuse.lock().unwrap() = true;
        s.clock.set(at("2026-12-02T00:10:00Z"));
        assert_eq!(s.billing.deliver_due(&tenants).await.failed, 1);
        let record = s.billing.delivery(&acme.id).await.unwrap();
        assert_eq!(record.attempts, 1);
        assert_eq!(
            record.last_error.as_deref(),
            Some("the receiver answered 503")
        );
        assert_eq!(record.next_attempt_at, Some(at("2026-12-02T00:10:30Z")));
        assert_eq!(record.claimed_until, None);
        s.clock.advance(Duration::from_secs(29));
        assert_eq!(s.billing.deliver_due(&tenants).await, Round::default());
        s.clock.advance(Duration::from_secs(1));
        assert_eq!(s.billing.deliver_due(&tenants).await.failed, 1);
        let record = s.billing.delivery(&acme.id).await.unwrap();
        assert_eq!(record.next_attempt_at, Some(at("2026-12-02T00:11:30Z")));
        // Up again: the day goes out with its figures and the plan.
        *s.receiver.refuse.lock().unwrap() = false;
        s.clock.set(at("2026-12-02T00:11:30Z"));
        assert_eq!(s.billing.deliver_due(&tenants).await.delivered, 1);
        let report = s.receiver.got.lock().unwrap()[1].clone();
        assert_eq!(report.id, "acme:2026-12-01");
        assert_eq!(report.kind, "billing.usage");
        assert_eq!(report.billing_plan, "enterprise");
        assert_eq!(report.period_start, at("2026-12-01T00:00:00Z"));
        assert_eq!(report.period_end, at("2026-12-02T00:00:00Z"));
        assert_eq!(report.usage.workflow_runs, 3);
        let record = s.billing.delivery(&acme.id).await.unwrap();
        assert_eq!(
            record.delivered_through,
            Some("2026-12-01".parse().unwrap())
        );
        assert_eq!((record.attempts, record.last_error), (0, None));
        // Three days later, a backlog drains in order in one round.
        s.clock.set(at("2026-12-05T01:00:00Z"));
        assert_eq!(s.billing.deliver_due(&tenants).await.delivered, 3);
        let ids: Vec<_> = s.receiver.got.lock().unwrap()[2..]
            .iter()
            .map(|r| r.id.clone())
            .collect();
        assert_eq!(
            ids,
            ["acme:2026-12-02", "acme:2026-12-03", "acme:2026-12-04"]
        );
        assert_eq!(*s.receiver.attempts.lock().unwrap(), 7);
    }

    #[tokio::test]
    async fn instances_sharing_the_state_send_each_day_once() {
        let s = setup("2026-12-01T12:00:00Z");
        let others: Vec<Billing> = (0..3)
            .map(|_| {
                Billing::new(
                    s.state.clone(),
                    s.receiver.clone(),
                    Duration::from_secs(600),
                    Duration::from_secs(5),
                )
            })
            .collect();
        let tenants: Vec<_> = (0..20)
            .map(|i| tenant(&format!("t{i}"), "standard"))
            .collect();
        for day in ["2026-12-02T01:00:00Z", "2026-12-03T01:00:00Z"] {
            s.clock.set(at(day));
            let rounds = futures_join(&others, &tenants).await;
            // The first round starts with yesterday; then one day each.
            assert_eq!(rounds, 20);
        }
        let mut ids: Vec<_> = s
            .receiver
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.id.clone())
            .collect();
        let all = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!((all, ids.len()), (40, 40), "every day of every tenant once");
    }

    async fn futures_join(instances: &[Billing], tenants: &[Arc<Tenant>]) -> usize {
        let mut set = tokio::task::JoinSet::new();
        for billing in instances {
            let (billing, tenants) = (billing.clone(), tenants.to_vec());
            set.spawn(async move { billing.deliver_due(&tenants).await.delivered });
        }
        let mut delivered = 0;
        while let Some(n) = set.join_next().await {
            delivered += n.unwrap();
        }
        delivered
    }

    #[tokio::test]
    async fn days_older_than_the_counters_are_skipped_and_counted() {
        let s = setup("2026-12-01T12:00:00Z");
        let acme = tenant("acme", "standard");
        let tenants = [acme.clone()];
        assert_eq!(s.billing.deliver_due(&tenants).await.delivered, 1);
        // The receiver was unreachable for 40 days.
        s.clock.set(at("2027-01-10T12:00:00Z"));
        let round = s.billing.deliver_due(&tenants).await;
        let record = s.billing.delivery(&acme.id).await.unwrap();
        // 2026-12-01 … 2026-12-06 were gone; 2026-12-07 … 2027-01-09 go out.
        assert_eq!(record.expired_days, 6);
        assert_eq!(round.delivered, 31, "one round drains at most 31 days");
        assert_eq!(s.billing.deliver_due(&tenants).await.delivered, 3);
        let record = s.billing.delivery(&acme.id).await.unwrap();
        assert_eq!(
            record.delivered_through,
            Some("2027-01-09".parse().unwrap())
        );
    }

    #[tokio::test]
    async fn a_corrupt_record_is_an_error_not_a_fresh_start() {
        let s = setup("2026-12-01T12:00:00Z");
        let acme = tenant("acme", "standard");
        s.state
            .kv
            .set(
                &Billing::record_key(&acme.id),
                Bytes::from_static(b"{not json"),
                None,
            )
            .await
            .unwrap();
        assert!(matches!(
            s.billing.delivery(&acme.id).await,
            Err(StateError::Corrupt(_))
        ));
        assert_eq!(s.billing.deliver_due(&[acme]).await, Round::default());
        assert_eq!(*s.receiver.attempts.lock().unwrap(), 0);
    }
}
