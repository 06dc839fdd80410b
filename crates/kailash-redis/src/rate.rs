//! [`RateLimiter`] on Redis: GCRA, the theoretical arrival time stored as a
//! string in microseconds and advanced by the `RATE_CHECK` script.

use async_trait::async_trait;
use kailash_core::state::{RateDecision, RateLimiter, RateQuota, StateError, StateKey};

use crate::backend::RedisState;
use crate::error;
use crate::expiry::GC_GRACE_MS;
use crate::keys::Space;
use crate::reply::{as_array, as_bool, as_opt_i64, unexpected};
use crate::scripts;

/// The largest GCRA window (tau) the scripts compute exactly: Lua numbers are
/// doubles, so tau plus a current timestamp must stay below 2^53 µs.
const MAX_TAU_US: i64 = 1 << 52;

#[async_trait]
impl RateLimiter for RedisState {
    async fn check(
        &self,
        key: &StateKey,
        quota: &RateQuota,
        cost: u32,
    ) -> Result<RateDecision, StateError> {
        let now_us = self.clock().now().as_microsecond();
        let t = i64::try_from(quota.emission_interval_micros()).unwrap_or(i64::MAX);
        let tau = t.saturating_mul(i64::from(quota.burst()));
        if tau > MAX_TAU_US {
            return Err(StateError::InvalidArgument(
                "rate quota window (period / rate * burst) exceeds 2^52 microseconds",
            ));
        }
        // Any increment above tau is refused whatever the state; capping it
        // keeps the script's arithmetic exact without changing the outcome.
        let inc = t.saturating_mul(i64::from(cost)).min(tau + 1);
        let (now_s, inc, tau) = (now_us.to_string(), inc.to_string(), tau.to_string());
        let grace = GC_GRACE_MS.to_string();
        let key = self.key(Space::Rate, key);
        let args: [&[u8]; 4] = [
            now_s.as_bytes(),
            inc.as_bytes(),
            tau.as_bytes(),
            grace.as_bytes(),
        ];
        let reply = as_array(self.script(&scripts::RATE_CHECK, &key, &args).await?)?;
        let [allowed, stored] = reply.as_slice() else {
            return Err(unexpected());
        };
        let allowed = as_bool(allowed)?;
        let stored = as_opt_i64(stored).ok_or_else(|| error::corrupt("unreadable rate state"))?;
        // The script applied exactly this step; recompute the full decision
        // with the shared code so both backends agree to the microsecond.
        let (decision, _) = quota.decide(now_us, stored, cost);
        if decision.allowed != allowed {
            return Err(StateError::Backend(
                "redis: rate limiter script disagreed with RateQuota::decide".to_owned(),
            ));
        }
        Ok(decision)
    }
}
