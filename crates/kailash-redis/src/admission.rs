//! [`Admit`] on Redis: a request's whole admission — session liveness,
//! quota, rate limits — in one `ADMIT` script, so an allowed request costs
//! one round trip after authentication instead of one per check.
//!
//! Keys keep the layout of the single primitives (the same check on its
//! own and in a plan touch the same key), so a plan's keys do not share a
//! hash slot: this backend speaks to one Redis (a primary, with replicas
//! if wanted), where a script may touch any key. On Redis Cluster a plan
//! would have to be split by slot and sent concurrently; that client is
//! not implemented.

use async_trait::async_trait;
use bytes::Bytes;
use kailash_core::state::{
    Admission, Admit, BoundedAdd, Check, CounterValue, Outcome, StateError, validate,
};
use redis::Value;

use crate::backend::RedisState;
use crate::error;
use crate::expiry::{GC_GRACE_MS, remaining};
use crate::keys::Space;
use crate::reply::{as_array, as_bool, as_i64, as_opt_i64, unexpected};
use crate::scripts;

/// The largest GCRA window the script computes exactly (as in `rate`).
const MAX_TAU_US: i64 = 1 << 52;

#[async_trait]
impl Admit for RedisState {
    async fn admit(&self, plan: &mut Admission) {
        if let Err(error) = self.admit_once(plan).await {
            // Nothing ran (or the script aborted): the first check reports
            // the failure, and the caller asks every later owner about it.
            for i in 0..plan.len() {
                plan.set_outcome(i, Outcome::NotRun);
            }
            plan.set_outcome(0, Outcome::Failed(error));
        }
        plan.mark_ran();
    }
}

impl RedisState {
    async fn admit_once(&self, plan: &mut Admission) -> Result<(), StateError> {
        if plan.is_empty() {
            return Ok(());
        }
        let now_ms = self.now_ms();
        let now_us = self.clock().now().as_microsecond();
        let mut invocation = scripts::ADMIT.prepare_invoke();
        invocation.arg(now_ms).arg(now_us).arg(GC_GRACE_MS);
        for check in plan.checks() {
            match check {
                Check::Live {
                    record,
                    index,
                    member,
                } => {
                    invocation
                        .key(self.key(Space::Kv, record))
                        .key(self.key(Space::Set, index))
                        .arg("L")
                        .arg(member.as_bytes());
                }
                Check::Rate { key, quota, cost } => {
                    let t = i64::try_from(quota.emission_interval_micros()).unwrap_or(i64::MAX);
                    let tau = t.saturating_mul(i64::from(quota.burst()));
                    if tau > MAX_TAU_US {
                        return Err(StateError::InvalidArgument(
                            "rate quota window (period / rate * burst) exceeds 2^52 microseconds",
                        ));
                    }
                    let inc = t.saturating_mul(i64::from(*cost)).min(tau + 1);
                    invocation
                        .key(self.key(Space::Rate, key))
                        .arg("R")
                        .arg(inc)
                        .arg(tau);
                }
                Check::Flag { key, default } => {
                    invocation
                        .key(self.key(Space::Kv, key))
                        .arg("F")
                        .arg(if *default { "1" } else { "0" });
                }
                Check::Counter {
                    key,
                    delta,
                    limit,
                    window,
                } => {
                    invocation
                        .key(self.key(Space::Counter, key))
                        .arg("C")
                        .arg(*delta);
                    match limit {
                        Some(limit) => invocation.arg(*limit),
                        None => invocation.arg(""),
                    };
                    match window {
                        Some(window) => {
                            let ms = validate::ttl_millis(*window)?;
                            invocation
                                .arg(now_ms.saturating_add(ms))
                                .arg(ms.saturating_add(GC_GRACE_MS));
                        }
                        None => {
                            invocation.arg("").arg("");
                        }
                    }
                }
                _ => {
                    return Err(StateError::InvalidArgument(
                        "an admission check this backend does not know",
                    ));
                }
            }
        }
        let replies = as_array(self.invoke(&invocation).await?)?;
        if replies.len() > plan.len() {
            return Err(unexpected());
        }
        let mut outcomes = [const { Outcome::NotRun }; kailash_core::state::MAX_CHECKS];
        for (i, reply) in replies.into_iter().enumerate() {
            let check = plan.check(i).ok_or_else(unexpected)?;
            outcomes[i] = outcome(check, as_array(reply)?, now_ms, now_us)?;
        }
        for (i, outcome) in outcomes.into_iter().enumerate().take(plan.len()) {
            plan.set_outcome(i, outcome);
        }
        Ok(())
    }
}

/// One check's reply as its outcome.
fn outcome(
    check: &Check,
    reply: Vec<Value>,
    now_ms: i64,
    now_us: i64,
) -> Result<Outcome, StateError> {
    match check {
        Check::Live { .. } => match reply.as_slice() {
            [flag] if !as_bool(flag)? => Ok(Outcome::Dead),
            [flag, Value::BulkString(_)] if as_bool(flag)? => {
                let Some(Value::BulkString(value)) = reply.into_iter().nth(1) else {
                    return Err(unexpected());
                };
                Ok(Outcome::Live(Bytes::from(value)))
            }
            _ => Err(unexpected()),
        },
        Check::Rate { quota, cost, .. } => {
            let [allowed, stored] = reply.as_slice() else {
                return Err(unexpected());
            };
            let allowed = as_bool(allowed)?;
            let stored =
                as_opt_i64(stored).ok_or_else(|| error::corrupt("unreadable rate state"))?;
            // The script applied exactly this step; the shared code derives
            // the full decision so both backends agree to the microsecond.
            let (decision, _) = quota.decide(now_us, stored, *cost);
            if decision.allowed != allowed {
                return Err(StateError::Backend(
                    "redis: admission script disagreed with RateQuota::decide".to_owned(),
                ));
            }
            Ok(Outcome::Rate(decision))
        }
        Check::Flag { .. } => match reply.as_slice() {
            [on] => Ok(Outcome::Flag(as_bool(on)?)),
            _ => Err(unexpected()),
        },
        Check::Counter { .. } => {
            let [applied, value, deadline] = reply.as_slice() else {
                return Err(unexpected());
            };
            let value = CounterValue {
                value: as_i64(value).ok_or_else(|| error::corrupt("unreadable counter"))?,
                expires_in: as_opt_i64(deadline)
                    .ok_or_else(|| error::corrupt("unreadable deadline"))?
                    .map(|at| remaining(at, now_ms)),
            };
            Ok(Outcome::Counter(if as_bool(applied)? {
                BoundedAdd::Applied(value)
            } else {
                BoundedAdd::Refused(value)
            }))
        }
        _ => Err(unexpected()),
    }
}
