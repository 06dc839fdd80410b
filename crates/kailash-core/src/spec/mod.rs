//! Value types that configuration specs are written in: a human duration
//! (`30s`, `15m`, `8h`) and a request rate.
//!
//! Each domain crate owns the serde form of its own settings (for example
//! kailash-auth's `AuthSpec`, kailash-access's `AccessSpec`); they share
//! these value types so a duration or a rate reads the same in every section
//! of a config file.
//!
//! ```
//! use std::time::Duration;
//! use kailash_core::spec::{ConfigDuration, RateConfig};
//!
//! let rate: RateConfig = serde_json::from_str(r#"{ "rate": 20, "per": "1m" }"#)?;
//! assert_eq!(rate.per, ConfigDuration(Duration::from_secs(60)));
//! assert_eq!(rate.quota()?.burst(), 20);
//! assert!(serde_json::from_str::<ConfigDuration>(r#""10 seconds""#).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod duration;
mod rate;

pub use duration::{ConfigDuration, parse_duration};
pub use rate::RateConfig;
