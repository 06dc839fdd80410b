//! The per-key baseline: an exponentially weighted moving average of the
//! count per window, and of its variance.

use kailash_core::state::StateError;

/// An EWMA of counts per closed window and their variance (West's
/// incremental form): after a window with count `x`,
/// `mean' = mean + α·(x − mean)` and `var' = (1 − α)·(var + α·(x − mean)²)`.
///
/// A key's history starts at zero: windows before its first activity
/// count as empty, so a first burst is measured against `min_count`
/// rather than becoming the norm.
///
/// ```
/// use kailash_monitoring::anomaly::Ewma;
///
/// let mut e = Ewma::default();
/// for _ in 0..50 {
///     e.fold(4.0, 0.3);
/// }
/// assert!((e.mean() - 4.0).abs() < 1e-6);
/// assert!(e.stddev() < 1e-3);
/// // 3 sigma above a steady 4 per window is still 4; `min_count` decides.
/// assert_eq!(e.threshold(3.0, 10.0), 10.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Ewma {
    mean: f64,
    var: f64,
    /// The last window folded in, or the window now counting.
    active: Option<i64>,
}

impl Ewma {
    /// The mean count per window.
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// The standard deviation of the count per window.
    pub fn stddev(&self) -> f64 {
        self.var.max(0.0).sqrt()
    }

    /// Folds one closed window's count in.
    pub fn fold(&mut self, count: f64, alpha: f64) {
        let diff = count - self.mean;
        let incr = alpha * diff;
        self.mean += incr;
        self.var = (1.0 - alpha) * (self.var + diff * incr);
    }

    /// Folds `n` empty windows in (at most `horizon` steps; after more the
    /// baseline is back at zero).
    pub fn fold_empty(&mut self, n: u64, alpha: f64, horizon: u64) {
        if n > horizon {
            self.mean = 0.0;
            self.var = 0.0;
            return;
        }
        for _ in 0..n {
            self.fold(0.0, alpha);
        }
    }

    /// The count above which a window is a burst: `max(min_count, mean +
    /// k·stddev)`.
    pub fn threshold(&self, k: f64, min_count: f64) -> f64 {
        (self.mean + k * self.stddev()).max(min_count)
    }

    /// The window this baseline counts now (all before it are folded in).
    pub(super) fn active(&self) -> Option<i64> {
        self.active
    }

    pub(super) fn set_active(&mut self, window: i64) {
        self.active = Some(window);
    }

    /// The stored form: `v1 <active> <mean> <var>` (readable in Redis).
    pub(super) fn encode(&self) -> String {
        format!(
            "v1 {} {} {}",
            self.active.unwrap_or(i64::MIN),
            self.mean,
            self.var
        )
    }

    pub(super) fn decode(raw: &[u8]) -> Result<Self, StateError> {
        let corrupt = || StateError::Corrupt("anomaly baseline".into());
        let text = std::str::from_utf8(raw).map_err(|_| corrupt())?;
        let mut parts = text.split(' ');
        if parts.next() != Some("v1") {
            return Err(corrupt());
        }
        let mut next = || parts.next().ok_or_else(corrupt);
        let active: i64 = next()?.parse().map_err(|_| corrupt())?;
        let mean: f64 = next()?.parse().map_err(|_| corrupt())?;
        let var: f64 = next()?.parse().map_err(|_| corrupt())?;
        if !mean.is_finite() || !var.is_finite() || mean < 0.0 || var < 0.0 {
            return Err(corrupt());
        }
        Ok(Self {
            mean,
            var,
            active: (active != i64::MIN).then_some(active),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ewma_follows_the_level_and_its_spread() {
        let mut e = Ewma::default();
        e.fold(10.0, 0.5);
        assert_eq!(e.mean(), 5.0);
        // var = 0.5 * (0 + 10 * 5) = 25
        assert_eq!(e.stddev(), 5.0);
        e.fold(10.0, 0.5);
        assert_eq!(e.mean(), 7.5);
        // var = 0.5 * (25 + 5 * 2.5) = 18.75
        assert!((e.var - 18.75).abs() < 1e-12);
        assert!((e.threshold(2.0, 1.0) - (7.5 + 2.0 * 18.75f64.sqrt())).abs() < 1e-12);
        assert_eq!(e.threshold(2.0, 100.0), 100.0);
    }

    #[test]
    fn alternating_counts_give_a_spread() {
        let mut e = Ewma::default();
        for i in 0..200 {
            e.fold(if i % 2 == 0 { 0.0 } else { 10.0 }, 0.1);
        }
        assert!((e.mean() - 5.0).abs() < 0.6, "{e:?}");
        assert!((e.stddev() - 5.0).abs() < 0.6, "{e:?}");
    }

    #[test]
    fn empty_windows_decay_and_a_long_gap_resets() {
        let mut e = Ewma::default();
        e.fold(100.0, 0.5);
        e.fold_empty(1, 0.5, 10);
        assert_eq!(e.mean(), 25.0);
        e.fold_empty(11, 0.5, 10);
        assert_eq!((e.mean(), e.stddev()), (0.0, 0.0));
    }

    #[test]
    fn stored_form_round_trips_and_garbage_is_corrupt() {
        let mut e = Ewma::default();
        e.fold(3.0, 0.3);
        e.set_active(123);
        assert_eq!(Ewma::decode(e.encode().as_bytes()).unwrap(), e);
        assert_eq!(
            Ewma::decode(Ewma::default().encode().as_bytes()).unwrap(),
            Ewma::default()
        );
        for bad in [
            &b"v2 1 1 1"[..],
            b"v1 1 x 1",
            b"v1 1 1",
            b"v1 1 NaN 1",
            b"\xff",
        ] {
            assert!(Ewma::decode(bad).is_err());
        }
    }
}
