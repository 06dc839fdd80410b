//! [`Admit`] on Redis: a request's whole admission — session liveness,
//! quota, rate limits — in one `ADMIT` script, so an allowed request costs
//! one round trip after authentication instead of one per check.
//!
//! Keys keep the layout of the single primitives (the same check on its
//! own and in a plan touch the same key), so a plan's keys do not share a
//! hash slot. On one server a script may touch any key: one call. On
//! Redis Cluster the plan runs as one call per run of consecutive checks
//! in one slot, in order (see `admit_cluster`): a request costs one round
//! trip per slot its checks touch, never a script that spans slots.

use async_trait::async_trait;
use bytes::Bytes;
use kailash_core::state::{
    Admission, Admit, BoundedAdd, BoundedSetStore, Check, CounterValue, KeyValueStore, Outcome,
    StateError, validate,
};
use redis::Value;

use crate::backend::RedisState;
use crate::error;
use crate::expiry::{GC_GRACE_MS, remaining};
use crate::keys::{self, Space};
use crate::reply::{as_array, as_bool, as_i64, as_opt_i64, unexpected};
use crate::scripts;

/// The largest GCRA window the script computes exactly (as in `rate`).
const MAX_TAU_US: i64 = 1 << 52;

#[async_trait]
impl Admit for RedisState {
    async fn admit(&self, plan: &mut Admission) {
        if self.is_cluster() {
            self.admit_cluster(plan).await;
        } else if let Err(error) = self.admit_once(plan).await {
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
            self.push_check(&mut invocation, check, now_ms)?;
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

    /// The plan on a Redis Cluster, where one script may only touch keys of
    /// one hash slot: consecutive checks whose keys share a slot run as one
    /// `ADMIT` call, a session check whose record and index lie in two
    /// slots as two reads, one group after the other. The semantics stay
    /// those of the module docs: the first check that does not pass stops
    /// the plan, and counter additions of earlier groups are taken back
    /// (those of its own group the script takes back itself). Between
    /// groups the plan is not atomic: another request can see a counter
    /// charge that is about to be taken back, so it may be refused where a
    /// single server would have admitted it, never the reverse.
    async fn admit_cluster(&self, plan: &mut Admission) {
        // The first check of the group that stopped the plan: the script
        // took back its own group's charges, the earlier groups' are ours.
        let mut stopped_group = None;
        let mut i = 0;
        while i < plan.len() {
            let Some(check) = plan.check(i) else { break };
            let ran = match check_slot(self, check) {
                None => match self.live_across_slots(check).await {
                    Ok(outcome) => vec![outcome],
                    Err(e) => vec![Outcome::Failed(e)],
                },
                Some(slot) => {
                    let len = plan
                        .checks()
                        .skip(i)
                        .take_while(|c| check_slot(self, c) == Some(slot))
                        .count();
                    match self.admit_group(plan, i, len).await {
                        Ok(outcomes) => outcomes,
                        Err(e) => vec![Outcome::Failed(e)],
                    }
                }
            };
            let ran_len = ran.len();
            let mut passed = true;
            for (offset, outcome) in ran.into_iter().enumerate() {
                passed = outcome.passed();
                plan.set_outcome(i + offset, outcome);
                if !passed {
                    break;
                }
            }
            if !passed {
                stopped_group = Some(i);
                break;
            }
            i += ran_len.max(1);
        }
        if let Some(group) = stopped_group {
            plan.take_back(self, group).await;
        }
    }

    /// Checks `from..from + len` (keys of one slot) as one `ADMIT` call: the
    /// outcomes of the checks that ran.
    async fn admit_group(
        &self,
        plan: &Admission,
        from: usize,
        len: usize,
    ) -> Result<Vec<Outcome>, StateError> {
        let now_ms = self.now_ms();
        let now_us = self.clock().now().as_microsecond();
        let mut invocation = scripts::ADMIT.prepare_invoke();
        invocation.arg(now_ms).arg(now_us).arg(GC_GRACE_MS);
        for check in plan.checks().skip(from).take(len) {
            self.push_check(&mut invocation, check, now_ms)?;
        }
        let replies = as_array(self.invoke(&invocation).await?)?;
        if replies.len() > len {
            return Err(unexpected());
        }
        replies
            .into_iter()
            .enumerate()
            .map(|(offset, reply)| {
                let check = plan.check(from + offset).ok_or_else(unexpected)?;
                outcome(check, as_array(reply)?, now_ms, now_us)
            })
            .collect()
    }

    /// A session check whose record and index lie in two slots: two reads.
    async fn live_across_slots(&self, check: &Check) -> Result<Outcome, StateError> {
        let Check::Live {
            record,
            index,
            member,
        } = check
        else {
            return Err(unexpected());
        };
        let Some(value) = KeyValueStore::get(self, record).await? else {
            return Ok(Outcome::Dead);
        };
        Ok(if BoundedSetStore::contains(self, index, member).await? {
            Outcome::Live(value)
        } else {
            Outcome::Dead
        })
    }

    /// Appends `check`'s keys and arguments to an `ADMIT` invocation.
    fn push_check(
        &self,
        invocation: &mut redis::ScriptInvocation<'_>,
        check: &Check,
        now_ms: i64,
    ) -> Result<(), StateError> {
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
        Ok(())
    }
}

/// The one hash slot every key of `check` lies in (on a cluster), or
/// `None` for a session check whose record and index lie in two.
fn check_slot(state: &RedisState, check: &Check) -> Option<u16> {
    let slot = |space, key| keys::slot(&state.key(space, key));
    match check {
        Check::Live { record, index, .. } => {
            let s = slot(Space::Kv, record);
            (s == slot(Space::Set, index)).then_some(s)
        }
        Check::Rate { key, .. } => Some(slot(Space::Rate, key)),
        Check::Flag { key, .. } => Some(slot(Space::Kv, key)),
        Check::Counter { key, .. } => Some(slot(Space::Counter, key)),
        // Unknown checks fail in `push_check`, alone in their group.
        _ => Some(u16::MAX),
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
