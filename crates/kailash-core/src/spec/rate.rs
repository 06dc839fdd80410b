//! [`RateConfig`]: a request rate as an operator writes it.

use serde::{Deserialize, Serialize};

use super::ConfigDuration;
use crate::state::{RateQuota, StateError};

/// One rate: `rate` requests per `per`, bursts up to `burst` (default `rate`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Requests per period.
    pub rate: u32,
    /// The period.
    pub per: ConfigDuration,
    /// Burst size; defaults to `rate`.
    #[serde(default)]
    pub burst: Option<u32>,
}

impl RateConfig {
    /// The state-level quota.
    pub fn quota(&self) -> Result<RateQuota, StateError> {
        RateQuota::new(self.rate, self.per.0, self.burst.unwrap_or(self.rate))
    }
}
