//! The run's byte budget: what the data a run holds measures, in bytes of
//! serialized JSON.

use std::io;

use serde::Serialize;

/// Counts bytes written, keeping none.
struct Counter(u64);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len() as u64);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The size of `value` serialized as compact JSON, in bytes, without
/// building the text. (`u64::MAX` if it cannot be serialized, which
/// `serde_json::Value` always can.)
pub fn json_size<T: Serialize + ?Sized>(value: &T) -> u64 {
    let mut c = Counter(0);
    match serde_json::to_writer(&mut c, value) {
        Ok(()) => c.0,
        Err(_) => u64::MAX,
    }
}

/// Bytes charged against a limit.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    held: u64,
    peak: u64,
}

impl Budget {
    pub(crate) fn new(limit: Option<u64>) -> Self {
        Self {
            limit: limit.unwrap_or(u64::MAX),
            held: 0,
            peak: 0,
        }
    }

    /// Charges `n` bytes, or says nothing was charged because the limit
    /// would be passed.
    pub(crate) fn charge(&mut self, n: u64) -> Result<(), ()> {
        match self.held.checked_add(n) {
            Some(total) if total <= self.limit => {
                self.held = total;
                self.peak = self.peak.max(total);
                Ok(())
            }
            _ => Err(()),
        }
    }

    pub(crate) fn release(&mut self, n: u64) {
        self.held = self.held.saturating_sub(n);
    }

    pub(crate) fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.held)
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    pub(crate) fn peak(&self) -> u64 {
        self.peak
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_size_is_the_compact_serialization() {
        let v = serde_json::json!({"a": [1, "xé", null], "b": {"c": true}});
        assert_eq!(json_size(&v), serde_json::to_vec(&v).unwrap().len() as u64);
    }

    #[test]
    fn budget_refuses_past_the_limit_and_keeps_the_peak() {
        let mut b = Budget::new(Some(10));
        b.charge(6).unwrap();
        assert!(b.charge(5).is_err());
        assert_eq!(b.remaining(), 4);
        b.release(6);
        b.charge(10).unwrap();
        assert_eq!((b.peak(), b.limit()), (10, 10));
        assert!(Budget::new(None).charge(u64::MAX).is_ok());
    }
}
