//! Named signals: the current values alert rules are evaluated over.
//!
//! A [`SignalSource`] fills a [`Signals`] snapshot with what it knows — the
//! health checks their `<check>_health` flags and measured values, the
//! workflow runtime its failure rate, an application its own figures. Rules
//! such as `memory_usage > 0.8` or `database_health == false` name them.
//!
//! ```
//! use kailash_monitoring::signal::{SignalSource, SignalValue, Signals};
//!
//! struct Queue;
//! impl SignalSource for Queue {
//!     fn collect(&self, out: &mut Signals) {
//!         out.number("queue_depth", 12.0);
//!         out.flag("queue_health", true);
//!     }
//! }
//!
//! let mut signals = Signals::default();
//! Queue.collect(&mut signals);
//! assert_eq!(signals.get("queue_depth"), Some(SignalValue::Number(12.0)));
//! assert_eq!(signals.get("queue_health"), Some(SignalValue::Flag(true)));
//! assert_eq!(signals.get("missing"), None);
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

/// One signal's current value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SignalValue {
    /// A measurement (a rate, a ratio, a count).
    Number(f64),
    /// A condition (`database_health`).
    Flag(bool),
}

/// A snapshot of named signals, ordered by name.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    values: BTreeMap<Arc<str>, SignalValue>,
}

impl Signals {
    /// Sets a numeric signal (a later value for the same name wins).
    /// Non-finite numbers are dropped: a rule never compares against NaN.
    pub fn number(&mut self, name: impl Into<Arc<str>>, value: f64) {
        if value.is_finite() {
            self.values.insert(name.into(), SignalValue::Number(value));
        }
    }

    /// Sets a boolean signal.
    pub fn flag(&mut self, name: impl Into<Arc<str>>, value: bool) {
        self.values.insert(name.into(), SignalValue::Flag(value));
    }

    /// The signal's value, if any source reported it.
    pub fn get(&self, name: &str) -> Option<SignalValue> {
        self.values.get(name).copied()
    }

    /// Every signal, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, SignalValue)> {
        self.values.iter().map(|(k, v)| (&**k, *v))
    }

    /// How many signals the snapshot holds.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the snapshot is empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Something that reports signals; asked at every evaluation. Keep it
/// cheap and non-blocking: read state that is already measured (a health
/// check's last result, a counter), never do I/O here.
pub trait SignalSource: Send + Sync + 'static {
    /// Adds this source's signals to `out`.
    fn collect(&self, out: &mut Signals);
}

impl<F> SignalSource for F
where
    F: Fn(&mut Signals) + Send + Sync + 'static,
{
    fn collect(&self, out: &mut Signals) {
        self(out)
    }
}
