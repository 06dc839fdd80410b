//! Shared helpers for the kailash-rs benches.
//!
//! - [`LatencyHistogram`]: a fixed-size log-linear histogram of durations
//!   (bounded memory, under 1 % relative error), used by the `loadbench`
//!   binary to record one latency per request.
//! - [`cpu`]: CPU time consumed by named threads of this process, read from
//!   `/proc` (Linux only), so a bench can report what a request costs a
//!   server thread and not only how fast the client saw it.
//! - [`runtime_workflows`]: the workflow-runtime benches' two workflows
//!   (a 10-node `transform` chain, a 10-wide fan-out with a join) and the
//!   nodes' own work, shared by the `runtime` Criterion bench and the
//!   `runtime_bench` binary.

use std::time::Duration;

pub mod runtime_workflows;

/// Sub-buckets per power of two: 2^7 = 128, so a bucket is at most 1/128
/// (0.78 %) of its value wide.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Largest recordable value in nanoseconds (about 18 minutes); larger values
/// are clamped to it.
const MAX_NANOS: u64 = (1 << 40) - 1;
/// Buckets needed to cover `0..=MAX_NANOS`.
const BUCKETS: usize = (40 - SUB_BITS as usize + 1) * SUB as usize;

/// A log-linear histogram of durations with nanosecond input.
///
/// Values below 128 ns are counted exactly; above that, every power of two
/// is split into 128 equal buckets, so quantiles are reported to within
/// 0.78 % of the true value. Memory is fixed (about 35 KB) whatever the
/// number of samples; histograms of several threads or tasks are combined
/// with [`merge`](Self::merge).
///
/// ```
/// use std::time::Duration;
/// use kailash_benches::LatencyHistogram;
///
/// let mut h = LatencyHistogram::new();
/// for us in 1..=100 {
///     h.record(Duration::from_micros(us));
/// }
/// let p50 = h.quantile(0.50).unwrap_or_default();
/// assert!(p50 >= Duration::from_micros(50) && p50 <= Duration::from_nanos(50_400));
/// assert_eq!(h.count(), 100);
/// ```
#[derive(Clone)]
pub struct LatencyHistogram {
    counts: Box<[u64]>,
    total: u64,
    sum_nanos: u128,
    min_nanos: u64,
    max_nanos: u64,
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.total)
            .field("min", &self.min())
            .field("max", &self.max())
            .finish_non_exhaustive()
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket_index(nanos: u64) -> usize {
    let v = nanos.min(MAX_NANOS);
    if v < SUB {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    let sub = (v >> shift) & (SUB - 1);
    (((shift + 1) as usize) << SUB_BITS) + sub as usize
}

/// Inclusive bounds of bucket `i`, in nanoseconds.
fn bucket_bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        return (i, i);
    }
    let shift = (i >> SUB_BITS) - 1;
    let sub = i & (SUB - 1);
    let lo = (SUB + sub) << shift;
    (lo, lo + (1 << shift) - 1)
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            sum_nanos: 0,
            min_nanos: u64::MAX,
            max_nanos: 0,
        }
    }

    /// Records one duration.
    #[inline]
    pub fn record(&mut self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos())
            .unwrap_or(u64::MAX)
            .min(MAX_NANOS);
        self.counts[bucket_index(nanos)] += 1;
        self.total += 1;
        self.sum_nanos += u128::from(nanos);
        self.min_nanos = self.min_nanos.min(nanos);
        self.max_nanos = self.max_nanos.max(nanos);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.sum_nanos += other.sum_nanos;
        self.min_nanos = self.min_nanos.min(other.min_nanos);
        self.max_nanos = self.max_nanos.max(other.max_nanos);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The smallest sample, exact.
    pub fn min(&self) -> Option<Duration> {
        (self.total > 0).then(|| Duration::from_nanos(self.min_nanos))
    }

    /// The largest sample, exact.
    pub fn max(&self) -> Option<Duration> {
        (self.total > 0).then(|| Duration::from_nanos(self.max_nanos))
    }

    /// The mean, exact.
    pub fn mean(&self) -> Option<Duration> {
        (self.total > 0).then(|| {
            let mean = self.sum_nanos / u128::from(self.total);
            Duration::from_nanos(u64::try_from(mean).unwrap_or(u64::MAX))
        })
    }

    /// The `q` quantile (`0.0..=1.0`): the upper bound of the bucket holding
    /// the sample of rank `ceil(q * count)`, never above the largest sample.
    /// `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = bucket_bounds(i);
                let v = hi.min(self.max_nanos).max(lo.max(self.min_nanos));
                return Some(Duration::from_nanos(v));
            }
        }
        Some(Duration::from_nanos(self.max_nanos))
    }
}

/// CPU time of this process's threads, from `/proc/self/task` (Linux).
///
/// Threads are picked by name prefix (a tokio runtime names its threads with
/// `Builder::thread_name`), so a bench running a server runtime and a client
/// runtime in one process can charge each its own CPU time. The kernel's
/// per-thread `schedstat` (nanoseconds) is used when present, else `stat`
/// (clock ticks, assumed 100 Hz). Time of threads that already exited is not
/// counted, so take both snapshots while the threads are alive.
pub mod cpu {
    use std::time::Duration;

    /// CPU time used so far by this process's live threads whose name
    /// (`/proc/self/task/<tid>/comm`, at most 15 bytes) starts with
    /// `prefix`. `None` when `/proc` cannot be read.
    pub fn threads_cpu_time(prefix: &str) -> Option<Duration> {
        let mut total = Duration::ZERO;
        for entry in std::fs::read_dir("/proc/self/task").ok()? {
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
                continue;
            };
            if !comm.trim_end().starts_with(prefix) {
                continue;
            }
            if let Some(t) = schedstat(&path.join("schedstat")).or_else(|| stat(&path.join("stat")))
            {
                total += t;
            }
        }
        Some(total)
    }

    /// CPU time used so far by the whole process (user + system, every
    /// thread including exited ones), in clock ticks of 10 ms.
    pub fn process_cpu_time() -> Option<Duration> {
        stat(std::path::Path::new("/proc/self/stat"))
    }

    fn schedstat(path: &std::path::Path) -> Option<Duration> {
        let text = std::fs::read_to_string(path).ok()?;
        let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
        Some(Duration::from_nanos(nanos))
    }

    fn stat(path: &std::path::Path) -> Option<Duration> {
        let text = std::fs::read_to_string(path).ok()?;
        // The command name may contain spaces and parentheses: fields are
        // counted after the last ')'. utime and stime are fields 14 and 15.
        let rest = &text[text.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace().skip(11);
        let utime: u64 = fields.next()?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        Some(Duration::from_millis((utime + stime) * 10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_narrow() {
        let mut expected_lo = 0;
        for i in 0..BUCKETS {
            let (lo, hi) = bucket_bounds(i);
            assert_eq!(lo, expected_lo, "bucket {i}");
            assert!(hi >= lo);
            if i >= SUB as usize {
                assert!(
                    (hi - lo + 1) * SUB <= lo,
                    "bucket {i} is wider than 1/128 of its value"
                );
            } else {
                assert_eq!(lo, hi);
            }
            assert_eq!(bucket_index(lo), i);
            assert_eq!(bucket_index(hi), i);
            expected_lo = hi + 1;
        }
        assert_eq!(expected_lo, MAX_NANOS + 1);
        assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_one_percent() {
        let mut h = LatencyHistogram::new();
        for n in 1..=10_000u64 {
            h.record(Duration::from_nanos(n * 1_000));
        }
        for (q, exact) in [(0.5, 5_000_000u64), (0.99, 9_900_000), (1.0, 10_000_000)] {
            let got = h.quantile(q).map_or(0, |d| d.as_nanos() as u64);
            assert!(
                got >= exact && got <= exact + exact / 100,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(h.min(), Some(Duration::from_micros(1)));
        assert_eq!(h.max(), Some(Duration::from_millis(10)));
        assert_eq!(h.mean(), Some(Duration::from_nanos(5_000_500)));
    }

    #[test]
    fn merge_adds_samples() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        a.record(Duration::from_micros(10));
        b.record(Duration::from_micros(30));
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.min(), Some(Duration::from_micros(10)));
        assert_eq!(a.max(), Some(Duration::from_micros(30)));
        assert_eq!(LatencyHistogram::new().quantile(0.5), None);
    }

    #[test]
    fn a_busy_thread_has_cpu_time() {
        let measured = std::thread::Builder::new()
            .name("lbtest-cpu".into())
            .spawn(|| {
                let start = std::time::Instant::now();
                let mut x = 0u64;
                while start.elapsed() < Duration::from_millis(30) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
                cpu::threads_cpu_time("lbtest-cpu")
            })
            .ok()
            .and_then(|h| h.join().ok())
            .flatten();
        if cfg!(target_os = "linux") {
            assert!(measured.is_some_and(|t| t > Duration::ZERO), "{measured:?}");
        }
    }
}
