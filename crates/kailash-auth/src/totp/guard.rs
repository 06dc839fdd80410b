//! One-time acceptance of TOTP codes across gateway instances.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kailash_core::TenantId;
use kailash_core::clock::Clock;
use kailash_core::state::{KeyValueStore, Namespace, SharedState, StateKey};

use super::{TotpConfig, TotpError, TotpSecret};

/// The state namespace holding used TOTP steps (`<subject>:<step>`).
pub const USED_STEP_NAMESPACE: Namespace = Namespace::new("totp.used");

/// The outcome of [`TotpGuard::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpCheck {
    /// The code is valid and had not been used; it is now recorded as used.
    Accepted {
        /// The matched time step.
        step: u64,
    },
    /// The code is malformed or wrong for every step in the window.
    Invalid,
    /// The code is valid but was already used (replay or a parallel attempt).
    Replayed,
}

impl TotpCheck {
    /// Whether the code was accepted.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Self::Accepted { .. })
    }
}

/// Verifies TOTP codes and accepts each at most once.
///
/// After a code matches step `s`, the guard stores `<subject>:<s>` with
/// [`KeyValueStore::set_if_absent`] (under the tenant when one is given,
/// otherwise as a global key) with a time to live covering the whole skew
/// window. Only the caller that stores the key succeeds, so the same code
/// submitted twice, in parallel or on two gateway instances sharing the
/// state, is accepted once. A state error is returned as an error: the
/// caller must fail closed.
#[derive(Clone)]
pub struct TotpGuard {
    config: TotpConfig,
    kv: Arc<dyn KeyValueStore>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for TotpGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpGuard")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TotpGuard {
    /// A guard over an explicit store and clock.
    pub fn new(config: TotpConfig, kv: Arc<dyn KeyValueStore>, clock: Arc<dyn Clock>) -> Self {
        Self { config, kv, clock }
    }

    /// A guard using the shared state's key/value store and clock.
    pub fn from_state(config: TotpConfig, state: &SharedState) -> Self {
        Self::new(config, state.kv.clone(), state.clock.clone())
    }

    /// The TOTP configuration.
    pub fn config(&self) -> &TotpConfig {
        &self.config
    }

    /// How long a used step is remembered: until no time within the skew
    /// window can match it any more, plus one period of margin.
    fn used_ttl(&self) -> Duration {
        let steps = 2 * u64::from(self.config.skew_steps()) + 2;
        Duration::from_secs(steps.saturating_mul(self.config.period_secs()))
    }

    /// Checks `code` for `subject` (a user id) now, and records it as used
    /// when it is valid.
    pub async fn verify(
        &self,
        tenant: Option<&TenantId>,
        subject: &str,
        secret: &TotpSecret,
        code: &str,
    ) -> Result<TotpCheck, TotpError> {
        let Some(step) = self.config.verify(secret, code, self.clock.now()) else {
            return Ok(TotpCheck::Invalid);
        };
        let id = format!("{subject}:{step}");
        let key = match tenant {
            Some(t) => StateKey::tenant(t, USED_STEP_NAMESPACE, &id),
            None => StateKey::global(USED_STEP_NAMESPACE, &id),
        };
        let stored = self
            .kv
            .set_if_absent(&key, Bytes::from_static(b"1"), Some(self.used_ttl()))
            .await?;
        if stored {
            Ok(TotpCheck::Accepted { step })
        } else {
            Ok(TotpCheck::Replayed)
        }
    }
}
