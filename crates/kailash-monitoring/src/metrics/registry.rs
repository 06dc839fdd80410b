use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::Method;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
const BUCKET_MICROS: [u64; 12] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    10_000_000,
];
const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The route label of requests no route matched.
pub(crate) const UNMATCHED: &str = "unmatched";

#[derive(Default)]
struct Series {
    count: AtomicU64,
    sum_micros: AtomicU64,
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
}

/// Every (method, status class) series of one route.
pub(crate) struct RouteSeries {
    series: [[Series; CLASSES.len()]; METHODS.len()],
}

impl RouteSeries {
    fn new() -> Self {
        Self {
            series: std::array::from_fn(|_| std::array::from_fn(|_| Series::default())),
        }
    }
}

/// The metric store shared by every [`MetricsLayer`](super::MetricsLayer)
/// clone; cheap to clone. Render it with [`MetricsRegistry::render`].
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    inner: Arc<Inner>,
}

/// Route templates are short and come from the route table, not from
/// clients, so a keyed hash (SipHash) buys nothing on this hot path.
type RouteMap = kailash_core::hash::FnvHashMap<Arc<str>, Arc<RouteSeries>>;

#[derive(Default)]
struct Inner {
    routes: RwLock<RouteMap>,
    in_flight: AtomicI64,
    collectors: RwLock<Vec<Arc<dyn Collector>>>,
}

/// A source of metrics the registry does not record itself (a realtime
/// hub's connection counts, a backend's reconnects): asked for its series
/// at every scrape, after the HTTP metrics.
///
/// ```
/// use std::fmt::Write as _;
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use kailash_monitoring::metrics::{Collector, MetricsRegistry};
///
/// struct Jobs(AtomicU64);
/// impl Collector for Jobs {
///     fn collect(&self, out: &mut String) {
///         out.push_str("# HELP jobs_done_total Jobs finished.\n# TYPE jobs_done_total counter\n");
///         let _ = writeln!(out, "jobs_done_total {}", self.0.load(Ordering::Relaxed));
///     }
/// }
///
/// let registry = MetricsRegistry::new();
/// let jobs = Arc::new(Jobs(AtomicU64::new(3)));
/// registry.register(jobs.clone());
/// assert!(registry.render().contains("jobs_done_total 3\n"));
/// ```
pub trait Collector: Send + Sync + 'static {
    /// Appends complete metric families (`# HELP`, `# TYPE`, samples) in
    /// the Prometheus text format. Names must not clash with others'; label
    /// sets must be bounded.
    fn collect(&self, out: &mut String);
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsRegistry").finish_non_exhaustive()
    }
}

pub(crate) fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::PATCH => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn lookup(&self, template: &str) -> Arc<RouteSeries> {
        {
            let routes = self.inner.routes.read().unwrap_or_else(|p| p.into_inner());
            if let Some(series) = routes.get(template) {
                return series.clone();
            }
        }
        let mut routes = self.inner.routes.write().unwrap_or_else(|p| p.into_inner());
        routes
            .entry(Arc::from(template))
            .or_insert_with(|| Arc::new(RouteSeries::new()))
            .clone()
    }

    pub(crate) fn in_flight_add(&self, delta: i64) {
        self.inner.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// Adds `collector`'s series to every [`render`](Self::render).
    pub fn register(&self, collector: Arc<dyn Collector>) {
        self.inner
            .collectors
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(collector);
    }

    /// Records one finished request.
    pub fn record(&self, method: &Method, route: &str, status: u16, elapsed: Duration) {
        record_into(&self.lookup(route), method_index(method), status, elapsed);
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn render(&self) -> String {
        let routes: Vec<(Arc<str>, Arc<RouteSeries>)> = {
            let routes = self.inner.routes.read().unwrap_or_else(|p| p.into_inner());
            let mut v: Vec<_> = routes.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP http_requests_total Requests answered, by method, route template and status class.\n");
        out.push_str("# TYPE http_requests_total counter\n");
        for_each_series(&routes, |labels, s| {
            let _ = writeln!(
                out,
                "http_requests_total{{{labels}}} {}",
                s.count.load(Ordering::Relaxed)
            );
        });
        out.push_str("# HELP http_request_duration_seconds Time to the response head.\n");
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        for_each_series(&routes, |labels, s| {
            let mut cumulative = 0;
            for (i, le) in BUCKETS.iter().enumerate() {
                cumulative += s.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            cumulative += s.buckets[BUCKETS.len()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}"
            );
            let sum = s.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "http_request_duration_seconds_sum{{{labels}}} {sum}");
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{{labels}}} {}",
                s.count.load(Ordering::Relaxed)
            );
        });
        out.push_str("# HELP http_requests_in_flight Requests being handled now.\n");
        out.push_str("# TYPE http_requests_in_flight gauge\n");
        let _ = writeln!(
            out,
            "http_requests_in_flight {}",
            self.inner.in_flight.load(Ordering::Relaxed)
        );
        let collectors = self
            .inner
            .collectors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for collector in collectors {
            collector.collect(&mut out);
        }
        out
    }
}

pub(crate) fn record_into(route: &RouteSeries, method: usize, status: u16, elapsed: Duration) {
    let class = usize::from((status / 100).clamp(1, 5)) - 1;
    let s = &route.series[method][class];
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    s.count.fetch_add(1, Ordering::Relaxed);
    s.sum_micros.fetch_add(micros, Ordering::Relaxed);
    let bucket = BUCKET_MICROS
        .iter()
        .position(|&b| micros <= b)
        .unwrap_or(BUCKETS.len());
    s.buckets[bucket].fetch_add(1, Ordering::Relaxed);
}

fn for_each_series(routes: &[(Arc<str>, Arc<RouteSeries>)], mut f: impl FnMut(&str, &Series)) {
    let mut labels = String::new();
    for (route, series) in routes {
        for (m, by_class) in series.series.iter().enumerate() {
            for (c, s) in by_class.iter().enumerate() {
                if s.count.load(Ordering::Relaxed) == 0 {
                    continue;
                }
                labels.clear();
                let _ = write!(labels, "method=\"{}\",route=\"", METHODS[m]);
                escape_label(&mut labels, route);
                let _ = write!(labels, "\",status=\"{}\"", CLASSES[c]);
                f(&labels, s);
            }
        }
    }
}

/// Escapes a label value as the exposition format requires.
fn escape_label(out: &mut String, value: &str) {
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let r = MetricsRegistry::new();
        r.record(
            &Method::GET,
            "/api/data/{id}",
            200,
            Duration::from_millis(3),
        );
        r.record(
            &Method::GET,
            "/api/data/{id}",
            204,
            Duration::from_millis(30),
        );
        r.record(
            &Method::from_bytes(b"BREW").unwrap(),
            "unmatched",
            404,
            Duration::from_secs(20),
        );
        let text = r.render();
        assert!(
            text.contains(
                "http_requests_total{method=\"GET\",route=\"/api/data/{id}\",status=\"2xx\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains(
            "http_requests_total{method=\"OTHER\",route=\"unmatched\",status=\"4xx\"} 1"
        ));
        assert!(text.contains("http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/data/{id}\",status=\"2xx\",le=\"0.005\"} 1"));
        assert!(text.contains("http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/data/{id}\",status=\"2xx\",le=\"0.05\"} 2"));
        assert!(text.contains("http_request_duration_seconds_bucket{method=\"OTHER\",route=\"unmatched\",status=\"4xx\",le=\"10\"} 0"));
        assert!(text.contains("http_request_duration_seconds_bucket{method=\"OTHER\",route=\"unmatched\",status=\"4xx\",le=\"+Inf\"} 1"));
        assert!(text.contains("http_requests_in_flight 0"));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = String::new();
        escape_label(&mut s, "a\"b\\c\nd");
        assert_eq!(s, "a\\\"b\\\\c\\nd");
    }
}
