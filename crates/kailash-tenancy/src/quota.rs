//! Per-tenant usage quotas, exact across gateway instances.
//!
//! * API calls per UTC calendar day: a counter per tenant and day, charged
//!   with [`CounterStore::add_within`](kailash_core::state::CounterStore::add_within)
//!   so the limit holds exactly however many instances charge at once.
//! * Workflows and storage: running totals with a cap, changed with
//!   compare-and-set so they are exact in both directions (never above the
//!   cap, never below zero).
//!
//! Every key is tenant-scoped, so two tenants never share a counter.

use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use kailash_core::TenantId;
use kailash_core::state::{BoundedAdd, Check, Namespace, SharedState, StateError, StateKey};
use serde::Serialize;

use crate::model::Tenant;

/// API calls per day (`t:<tenant>:quota.day:api:<YYYY-MM-DD>`).
const DAY: Namespace = Namespace::new("quota.day");

/// The counter of `tenant`'s API calls on UTC day `date`.
pub(crate) fn api_calls_key(tenant: &TenantId, date: jiff::civil::Date) -> StateKey {
    StateKey::tenant(tenant, DAY, &format!("api:{date}"))
}
/// Running totals (`t:<tenant>:quota.total:workflows`, `…:storage`).
const TOTAL: Namespace = Namespace::new("quota.total");

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// How long a day's API call counter is kept after the day: the dated key
/// already separates days, and the count is also the day's metered API
/// calls, which billing reports after the day (with retries for as long as
/// this lasts; see [`crate::metering`]).
pub(crate) const DAY_KEPT: Duration = Duration::from_secs(35 * 86_400);
/// A refund that finds its counter expired recreates it briefly, never for long.
const REFUND_WINDOW: Duration = Duration::from_secs(3600);
/// Compare-and-set attempts before giving up under pathological contention.
const MAX_CAS_ATTEMPTS: usize = 10_000;

/// The receipt of one charged API call: which day's counter to give it back
/// to (see [`Quotas::refund_api_call`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCallCharge {
    key: StateKey,
}

/// The `retry_after` of a refused [`Quotas::api_call_check`]: the time
/// from the check's creation until the next UTC midnight.
pub fn api_call_retry_after(check: &Check) -> Option<Duration> {
    match check {
        Check::Counter {
            window: Some(window),
            ..
        } => Some(window.saturating_sub(DAY_KEPT)),
        _ => None,
    }
}

/// The answer to a quota charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaDecision {
    /// Charged; usage is now `used` of `limit` (`None`: unlimited).
    Allowed {
        /// Usage after the charge.
        used: u64,
        /// The limit, if any.
        limit: Option<u64>,
    },
    /// Not charged: the charge would exceed `limit`.
    Refused {
        /// Which quota: `"api_calls_per_day"`, `"workflows"` or `"storage"`.
        quota: &'static str,
        /// Current usage.
        used: u64,
        /// The limit.
        limit: u64,
        /// When the quota resets by itself, if it does.
        retry_after: Option<Duration>,
    },
}

impl QuotaDecision {
    /// Whether the charge was applied.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }
}

/// A tenant's current usage against its quotas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "axum", schema(as = TenantUsage))]
pub struct Usage {
    /// The tenant.
    #[cfg_attr(feature = "axum", schema(value_type = String))]
    pub tenant: TenantId,
    /// API calls charged today (UTC).
    pub api_calls_today: u64,
    /// The daily API call limit.
    pub max_api_calls_per_day: Option<u64>,
    /// When today's API call count resets (the next UTC midnight).
    #[cfg_attr(feature = "axum", schema(value_type = String, format = DateTime))]
    pub api_calls_reset_at: Timestamp,
    /// Workflows reserved.
    pub workflows: u64,
    /// The workflow limit.
    pub max_workflows: Option<u64>,
    /// Bytes stored.
    pub storage_bytes: u64,
    /// The storage limit in bytes.
    pub max_storage_bytes: Option<u64>,
}

/// Charges and reports tenant quotas in the shared state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Quotas {
    state: SharedState,
}

/// The current UTC day: its key id and the time left until it ends.
struct Day {
    date: jiff::civil::Date,
    remaining: Duration,
    ends_at: Timestamp,
}

fn clamp_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Quotas {
    /// Quotas kept in `state` (and timed by its clock).
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }

    fn today(&self) -> Day {
        let now = self.state.clock.now();
        let micros = now.as_microsecond();
        let start = micros.div_euclid(MICROS_PER_DAY) * MICROS_PER_DAY;
        let end = start.saturating_add(MICROS_PER_DAY);
        let remaining = Duration::from_micros(clamp_u64(end - micros));
        let ends_at = Timestamp::from_microsecond(end).unwrap_or(Timestamp::MAX);
        let date = TimeZone::UTC.to_datetime(now).date();
        Day {
            date,
            remaining,
            ends_at,
        }
    }

    /// Charges one API call against `max_api_calls_per_day`.
    ///
    /// The day is the UTC calendar day; the limit holds exactly across
    /// instances. A refusal's `retry_after` is the time until the next UTC
    /// midnight.
    pub async fn charge_api_call(&self, tenant: &Tenant) -> Result<QuotaDecision, StateError> {
        self.charge_api_call_refundable(tenant)
            .await
            .map(|(decision, _)| decision)
    }

    /// [`charge_api_call`](Self::charge_api_call), plus the receipt that
    /// [`refund_api_call`](Self::refund_api_call) gives the call back with
    /// (`None` when nothing was charged).
    pub async fn charge_api_call_refundable(
        &self,
        tenant: &Tenant,
    ) -> Result<(QuotaDecision, Option<ApiCallCharge>), StateError> {
        let day = self.today();
        let key = api_calls_key(&tenant.id, day.date);
        let window = Some(day.remaining + DAY_KEPT);
        let counters = &self.state.counters;
        let Some(limit) = tenant.quotas.max_api_calls_per_day else {
            let v = counters.add(&key, 1, window).await?;
            let decision = QuotaDecision::Allowed {
                used: clamp_u64(v.value),
                limit: None,
            };
            return Ok((decision, Some(ApiCallCharge { key })));
        };
        match counters
            .add_within(&key, 1, clamp_i64(limit), window)
            .await?
        {
            BoundedAdd::Applied(v) => {
                let decision = QuotaDecision::Allowed {
                    used: clamp_u64(v.value),
                    limit: Some(limit),
                };
                Ok((decision, Some(ApiCallCharge { key })))
            }
            BoundedAdd::Refused(v) => {
                refused("api_calls_per_day");
                let decision = QuotaDecision::Refused {
                    quota: "api_calls_per_day",
                    used: clamp_u64(v.value),
                    limit,
                    retry_after: Some(day.remaining),
                };
                Ok((decision, None))
            }
        }
    }

    /// The charge of one API call to `tenant` as a state
    /// [`Check`] for a request's admission (see
    /// [`TenancyLayer::deferred`](crate::layer::TenancyLayer::deferred)),
    /// with the receipt to refund it with once the admission applied it.
    /// Exactly the addition [`charge_api_call`](Self::charge_api_call)
    /// makes; a refusal's `retry_after` is [`api_call_retry_after`] of the
    /// check.
    pub fn api_call_check(&self, tenant: &Tenant) -> (Check, ApiCallCharge) {
        let day = self.today();
        let key = api_calls_key(&tenant.id, day.date);
        let check = Check::Counter {
            key: key.clone(),
            delta: 1,
            limit: tenant.quotas.max_api_calls_per_day.map(clamp_i64),
            window: Some(day.remaining + DAY_KEPT),
        };
        (check, ApiCallCharge { key })
    }

    /// Gives back one API call charged with `charge` — for a request a
    /// later guard refused (access control, a per-user limit), which must
    /// not count against the tenant. The call goes back to the day it was
    /// charged to, even after midnight.
    pub async fn refund_api_call(&self, charge: &ApiCallCharge) -> Result<(), StateError> {
        // A counter that already expired is recreated briefly, never forever.
        self.state
            .counters
            .add(&charge.key, -1, Some(REFUND_WINDOW))
            .await
            .map(drop)
    }

    /// Reserves one workflow against `max_workflows` (a count, no window).
    /// A refusal has no `retry_after`: it lasts until a workflow is released.
    pub async fn reserve_workflow(&self, tenant: &Tenant) -> Result<QuotaDecision, StateError> {
        self.change_total(tenant, "workflows", 1, tenant.quotas.max_workflows)
            .await
    }

    /// Releases one workflow reservation; the count never goes below zero.
    pub async fn release_workflow(&self, tenant: &Tenant) -> Result<(), StateError> {
        self.change_total(tenant, "workflows", -1, None)
            .await
            .map(drop)
    }

    /// Accounts stored bytes: a positive `bytes` adds within
    /// `max_storage_bytes`, a negative one frees (never below zero).
    pub async fn add_storage(
        &self,
        tenant: &Tenant,
        bytes: i64,
    ) -> Result<QuotaDecision, StateError> {
        self.change_total(tenant, "storage", bytes, tenant.quotas.max_storage_bytes)
            .await
    }

    /// The tenant's current usage.
    pub async fn usage(&self, tenant: &Tenant) -> Result<Usage, StateError> {
        let day = self.today();
        let calls_key = api_calls_key(&tenant.id, day.date);
        // Three independent reads, asked together: on Redis they share one
        // round trip's wait instead of taking three in a row.
        let (calls, workflows, storage) = tokio::join!(
            self.state.counters.get(&calls_key),
            self.read_total(&tenant.id, "workflows"),
            self.read_total(&tenant.id, "storage"),
        );
        Ok(Usage {
            tenant: tenant.id.clone(),
            api_calls_today: clamp_u64(calls?.value),
            max_api_calls_per_day: tenant.quotas.max_api_calls_per_day,
            api_calls_reset_at: day.ends_at,
            workflows: workflows?.0,
            max_workflows: tenant.quotas.max_workflows,
            storage_bytes: storage?.0,
            max_storage_bytes: tenant.quotas.max_storage_bytes,
        })
    }

    /// The running total `name` and its stored bytes (for compare-and-set).
    async fn read_total(
        &self,
        tenant: &TenantId,
        name: &'static str,
    ) -> Result<(u64, Option<Bytes>), StateError> {
        let raw = self
            .state
            .kv
            .get(&StateKey::tenant(tenant, TOTAL, name))
            .await?;
        let value = match &raw {
            None => 0,
            Some(b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| {
                    StateError::Corrupt(format!("quota total `{name}` of tenant `{tenant}`"))
                })?,
        };
        Ok((value, raw))
    }

    /// Adds `delta` to total `name`: an increase only while it stays within
    /// `limit`, a decrease saturating at zero. One compare-and-set per attempt.
    async fn change_total(
        &self,
        tenant: &Tenant,
        name: &'static str,
        delta: i64,
        limit: Option<u64>,
    ) -> Result<QuotaDecision, StateError> {
        let key = StateKey::tenant(&tenant.id, TOTAL, name);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (current, raw) = self.read_total(&tenant.id, name).await?;
            let next = if delta >= 0 {
                current.saturating_add(delta.unsigned_abs())
            } else {
                current.saturating_sub(delta.unsigned_abs())
            };
            if delta > 0
                && let Some(limit) = limit
                && next > limit
            {
                refused(name);
                return Ok(QuotaDecision::Refused {
                    quota: name,
                    used: current,
                    limit,
                    retry_after: None,
                });
            }
            if next == current {
                return Ok(QuotaDecision::Allowed {
                    used: current,
                    limit,
                });
            }
            let new = Bytes::from(next.to_string());
            if self
                .state
                .kv
                .compare_and_swap(&key, raw.as_deref(), Some(new), None)
                .await?
            {
                return Ok(QuotaDecision::Allowed { used: next, limit });
            }
        }
        Err(StateError::Backend(format!(
            "quota total `{name}` of tenant `{}` is too contended",
            tenant.id
        )))
    }
}

/// Counts a quota refusal (`scope`: the quota's name, a fixed set).
fn refused(quota: &'static str) {
    metrics::counter!("kailash_tenancy_refusals_total", "kind" => "quota", "scope" => quota)
        .increment(1);
}
