use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::Duration;

use http::Method;
use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use super::catalog;

/// Upper bounds of the request-duration histogram's buckets, in seconds
/// (and of every histogram that [`catalog`] gives no buckets of its own).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The route label of requests no route matched.
pub(crate) const UNMATCHED: &str = "unmatched";

/// How often histograms are folded into their buckets between scrapes, so
/// an instance nobody scrapes does not keep every sample.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static METADATA: Metadata<'static> =
    Metadata::new("kailash_monitoring", metrics::Level::INFO, None);

/// Every (method, status class) series of one route: handles registered on
/// first use, then shared.
pub(crate) struct RouteSeries {
    route: Arc<str>,
    series: [[OnceLock<(Counter, Histogram)>; CLASSES.len()]; METHODS.len()],
}

/// A [`Recorder`] shared between the `metrics` global and the registry
/// that renders it.
struct Shared(Arc<PrometheusRecorder>);

impl Recorder for Shared {
    fn describe_counter(
        &self,
        key: metrics::KeyName,
        unit: Option<metrics::Unit>,
        description: metrics::SharedString,
    ) {
        self.0.describe_counter(key, unit, description)
    }
    fn describe_gauge(
        &self,
        key: metrics::KeyName,
        unit: Option<metrics::Unit>,
        description: metrics::SharedString,
    ) {
        self.0.describe_gauge(key, unit, description)
    }
    fn describe_histogram(
        &self,
        key: metrics::KeyName,
        unit: Option<metrics::Unit>,
        description: metrics::SharedString,
    ) {
        self.0.describe_histogram(key, unit, description)
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.0.register_counter(key, metadata)
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.0.register_gauge(key, metadata)
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.0.register_histogram(key, metadata)
    }
}

/// The metric store behind `/metrics`; cheap to clone.
///
/// [`MetricsRegistry::global`] is the process's registry: its recorder is
/// the [`metrics`] crate's global recorder, so everything recorded with
/// `metrics::counter!` and friends — by kailash's crates and by your own
/// code — is in its [`render`](Self::render). [`MetricsRegistry::new`] is
/// a private one (for tests, or a second exposition): the
/// [`MetricsLayer`](super::MetricsLayer) records into it directly, and
/// nothing else does.
#[derive(Clone)]
pub struct MetricsRegistry {
    inner: Arc<Inner>,
}

/// Route templates are short and come from the route table, not from
/// clients, so a keyed hash (SipHash) buys nothing on this hot path.
type RouteMap = kailash_core::hash::FnvHashMap<Arc<str>, Arc<RouteSeries>>;

/// One Prometheus recorder and its handle; the upkeep thread holds it
/// weakly and ends with it.
struct Store {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl Store {
    fn new() -> Arc<Self> {
        let recorder = Arc::new(build_recorder());
        let store = Arc::new(Store {
            handle: recorder.handle(),
            recorder,
        });
        spawn_upkeep(Arc::downgrade(&store));
        store
    }
}

struct Inner {
    store: Arc<Store>,
    global: bool,
    routes: RwLock<RouteMap>,
    in_flight: Gauge,
    collectors: RwLock<Vec<Arc<dyn Collector>>>,
}

/// A source of metrics the registry does not record itself (a realtime
/// hub's connection counts, a backend's reconnects): asked for its series
/// at every scrape, after the recorded metrics.
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
        f.debug_struct("MetricsRegistry")
            .field("global", &self.inner.global)
            .finish_non_exhaustive()
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

fn build_recorder() -> PrometheusRecorder {
    // The bucket lists are non-empty constants, so these never fail; were
    // one to, histograms would render as summaries — still correct data.
    let Ok(mut builder) = PrometheusBuilder::new().set_buckets(&DURATION_BUCKETS) else {
        return PrometheusBuilder::new().build_recorder();
    };
    for (name, buckets) in catalog::BUCKETS {
        builder = match builder.set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets) {
            Ok(b) => b,
            Err(_) => return PrometheusBuilder::new().build_recorder(),
        };
    }
    builder.build_recorder()
}

impl Default for MetricsRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsRegistry {
    /// A private registry, not the `metrics` global: only what is recorded
    /// through it (the [`MetricsLayer`](super::MetricsLayer)s given it, its
    /// collectors) is in its exposition.
    pub fn new() -> Self {
        Self::with(Store::new(), false)
    }

    /// A registry over the process's recorder. The first call installs that
    /// recorder as the [`metrics`] crate's global recorder, so every
    /// `metrics::counter!` in the process lands in it. Each call returns a
    /// registry with collectors of its own (two gateways in one process
    /// each render their own hub's figures) over the same recorded series.
    ///
    /// If the application installed a recorder of its own first, that one
    /// keeps the facade's metrics and this registry still renders the HTTP
    /// metrics, its collectors and the process figures;
    /// [`is_global`](Self::is_global) tells which happened.
    pub fn global() -> Self {
        static GLOBAL: OnceLock<(Arc<Store>, bool)> = OnceLock::new();
        let (store, global) = GLOBAL.get_or_init(|| {
            let store = Store::new();
            let global = metrics::set_global_recorder(Shared(store.recorder.clone())).is_ok();
            if global {
                catalog::describe();
            } else {
                tracing::warn!(
                    "another metrics recorder is installed: /metrics shows only the HTTP \
                     and process metrics"
                );
            }
            (store, global)
        });
        Self::with(store.clone(), *global)
    }

    fn with(store: Arc<Store>, global: bool) -> Self {
        let in_flight = store
            .recorder
            .register_gauge(&Key::from_static_name("http_requests_in_flight"), &METADATA);
        Self {
            inner: Arc::new(Inner {
                store,
                global,
                routes: RwLock::default(),
                in_flight,
                collectors: RwLock::default(),
            }),
        }
    }

    /// Whether this registry's recorder is the [`metrics`] global.
    pub fn is_global(&self) -> bool {
        self.inner.global
    }

    pub(crate) fn lookup(&self, template: &str) -> Arc<RouteSeries> {
        {
            let routes = self.inner.routes.read().unwrap_or_else(|p| p.into_inner());
            if let Some(series) = routes.get(template) {
                return series.clone();
            }
        }
        let mut routes = self.inner.routes.write().unwrap_or_else(|p| p.into_inner());
        let route: Arc<str> = Arc::from(template);
        routes
            .entry(route.clone())
            .or_insert_with(|| {
                Arc::new(RouteSeries {
                    route,
                    series: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
                })
            })
            .clone()
    }

    pub(crate) fn in_flight(&self) -> &Gauge {
        &self.inner.in_flight
    }

    pub(crate) fn record_into(
        &self,
        route: &RouteSeries,
        method: usize,
        status: u16,
        elapsed: Duration,
    ) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        let (count, duration) = route.series[method][class].get_or_init(|| {
            let labels = vec![
                Label::from_static_parts("method", METHODS[method]),
                Label::new("route", route.route.to_string()),
                Label::from_static_parts("status", CLASSES[class]),
            ];
            let recorder = &self.inner.store.recorder;
            (
                recorder.register_counter(
                    &Key::from_parts("http_requests_total", labels.clone()),
                    &METADATA,
                ),
                recorder.register_histogram(
                    &Key::from_parts("http_request_duration_seconds", labels),
                    &METADATA,
                ),
            )
        });
        count.increment(1);
        duration.record(elapsed.as_secs_f64());
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
        self.record_into(&self.lookup(route), method_index(method), status, elapsed);
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric: what
    /// was recorded, the collectors' series, and the process's CPU, memory
    /// and file descriptors.
    pub fn render(&self) -> String {
        let mut out = self.inner.store.handle.render();
        super::process::collect(&mut out);
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

fn spawn_upkeep(store: Weak<Store>) {
    // A plain thread: it needs no runtime, and a registry may be built
    // before one exists. It ends with the registry.
    let spawned = std::thread::Builder::new()
        .name("kailash-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                match store.upgrade() {
                    Some(store) => store.handle.run_upkeep(),
                    None => return,
                }
            }
        });
    if let Err(error) = spawned {
        // Scrapes still fold histograms; only an unscraped registry grows.
        tracing::warn!(%error, "could not start the metrics upkeep thread");
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
        assert!(
            text.contains("# TYPE http_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(text.contains("http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/data/{id}\",status=\"2xx\",le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/data/{id}\",status=\"2xx\",le=\"0.05\"} 2"));
        assert!(text.contains("http_request_duration_seconds_bucket{method=\"OTHER\",route=\"unmatched\",status=\"4xx\",le=\"10\"} 0"));
        assert!(text.contains("http_request_duration_seconds_bucket{method=\"OTHER\",route=\"unmatched\",status=\"4xx\",le=\"+Inf\"} 1"));
        assert!(text.contains("http_requests_in_flight 0"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let r = MetricsRegistry::new();
        r.record(&Method::GET, "/a\"b\\c\nd", 200, Duration::from_millis(1));
        let text = r.render();
        assert!(text.contains("route=\"/a\\\"b\\\\c\\nd\""), "{text}");
    }
}
