//! `loadbench`: the end-to-end HTTP/1.1 load bench of the kailash gateway.
//!
//! One run measures, one after the other and under the same load, the same
//! `GET /` → `"ok"` handler served by:
//!
//! | target              | server                                                              |
//! |---------------------|---------------------------------------------------------------------|
//! | `bare`              | hyper 1.x `server::conn::http1` + a `service_fn` (the baseline)     |
//! | `axum`              | an axum `Router` with the route, served by `axum::serve` (no layers) |
//! | `gateway-minimal`   | the gateway with `.compression(false).tracing(false).metrics(false)` |
//! | `gateway`           | `Gateway::builder().routes(router).build()`: every default layer     |
//! | `gateway-ratelimit` | the default gateway plus a per-IP rate limit that never refuses       |
//! | `gateway-router`    | diagnostic, only with `--only`: `Gateway::router()` served by `axum::serve` |
//!
//! The gateway targets are served by `Gateway::serve` on `127.0.0.1:0`, as in
//! production. The load generator is in this binary: `--connections`
//! keep-alive HTTP/1.1 connections (hyper's client `conn::http1`), each
//! sending requests back to back, for `--warmup` seconds unrecorded and then
//! `--duration` seconds recorded (or until `--max-requests` recorded
//! requests). Every request's latency goes into a fixed-size log-linear
//! histogram; any non-200 status, unexpected body or transport error is
//! counted and printed (a correct run has none, and the exit status is 1
//! when there are any).
//!
//! Servers and client run on separate tokio runtimes (`--server-threads`,
//! `--client-threads`, one worker each by default), so they never share a
//! scheduler; on a 2-core machine that gives each side one core. Besides
//! requests/s and latency, the bench reads the CPU time of the server's and
//! the client's threads from `/proc` and reports the server CPU time per
//! request: it stays meaningful when the client, not the server, is the
//! bottleneck (which is likely for the bare target, whose server does about
//! as much work per request as the client).
//!
//! Nothing is logged per request: the gateway's tracing layer is on, but no
//! subscriber is installed, so its spans and events are disabled and nothing
//! is printed.
//!
//! ```text
//! cargo run --release -p kailash-benches --bin loadbench -- --help
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use kailash::access::layer::RequirePermissionLayer;
use kailash::access::permission::Permission;
use kailash::access::spec::{AccessSpec, Effect, PolicySpec};
use kailash::access::{AccessControl, AccessPolicy};
use kailash::audit::MemoryAuditSink;
use kailash::state::RateQuota;
use kailash::{AttributeValue, Gateway, Principal, RateLimits};
use kailash_benches::{LatencyHistogram, cpu};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

/// Name prefix of the server runtime's threads (as seen in `/proc`).
const SERVER_THREAD: &str = "lb-server";
/// Name prefix of the client runtime's threads.
const CLIENT_THREAD: &str = "lb-client";
/// The gateway's default `max_connections`: more would be refused with 503.
const MAX_CONNECTIONS: usize = 10_000;
/// The design target: the full gateway stack at this fraction of bare hyper.
const TARGET_RATIO: f64 = 0.70;

const USAGE: &str = "\
usage: loadbench [--connections N] [--duration SECS] [--warmup SECS]
                 [--max-requests N] [--only TARGET[,TARGET...]]
                 [--server-threads N] [--client-threads N] [--help]";

const HELP: &str = "\
loadbench: end-to-end HTTP/1.1 load bench of the kailash gateway against bare hyper.

Serves the same `GET /` -> \"ok\" handler on 127.0.0.1 behind each target in turn
and loads it from a client in this process (keep-alive connections, one
request in flight per connection, requests back to back).

Targets (all by default, in this order):
  bare               hyper 1.x server::conn::http1 + service_fn (the baseline)
  axum               axum Router served by axum::serve, no middleware
  gateway-minimal    kailash gateway with compression, tracing and metrics off
  gateway            kailash gateway with its default layers
  gateway-ratelimit  default gateway + a per-IP rate limit that never refuses
  gateway-access     default gateway + a fixed principal + RequirePermissionLayer on
                     the route (the demo's hybrid policy: a role grant and a
                     geography condition), every decision audited to a
                     bounded in-memory sink

Diagnostic target (only with --only):
  gateway-no-compression / gateway-no-tracing / gateway-no-metrics
                     the default gateway with one optional layer off, to
                     attribute the cost of each
  gateway-router     the default gateway's composed router (Gateway::router)
                     served by axum::serve instead of Gateway::serve; axum::serve
                     (both now convert handlers into routes once, at build), so
                     the gap between the two is the server's own cost

Options:
  --connections N      keep-alive connections (default 50, at most 10000)
  --duration SECS      measured time per target (default 10; decimals allowed)
  --warmup SECS        unrecorded time per target before measuring (default 1)
  --max-requests N     hard cap on recorded requests per target (default 5000000)
  --only LIST          comma-separated targets to run, e.g. --only bare,gateway
  --server-threads N   worker threads of the server runtime (default 1)
  --client-threads N   worker threads of the client runtime (default 1)
  --help               this text

Output: one row per target (requests/s, p50/p99/max latency, errors, server
CPU time per request, CPU use of server and client threads) and the ratios of
each target to `bare`. Exit status 1 when any request failed, 2 on bad flags.
";

/// A server configuration under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Bare,
    Axum,
    GatewayMinimal,
    Gateway,
    GatewayRateLimit,
    GatewayAccess,
    GatewayRouter,
    GatewayNoCompression,
    GatewayNoTracing,
    GatewayNoMetrics,
}

impl Target {
    const ALL: [Self; 6] = [
        Self::Bare,
        Self::Axum,
        Self::GatewayMinimal,
        Self::Gateway,
        Self::GatewayRateLimit,
        Self::GatewayAccess,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::Axum => "axum",
            Self::GatewayMinimal => "gateway-minimal",
            Self::Gateway => "gateway",
            Self::GatewayRateLimit => "gateway-ratelimit",
            Self::GatewayAccess => "gateway-access",
            Self::GatewayRouter => "gateway-router",
            Self::GatewayNoCompression => "gateway-no-compression",
            Self::GatewayNoTracing => "gateway-no-tracing",
            Self::GatewayNoMetrics => "gateway-no-metrics",
        }
    }

    /// Diagnostic targets, run only when named in `--only`.
    const EXTRA: [Self; 4] = [
        Self::GatewayRouter,
        Self::GatewayNoCompression,
        Self::GatewayNoTracing,
        Self::GatewayNoMetrics,
    ];

    fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain(Self::EXTRA)
            .find(|t| t.name() == s)
    }
}

/// What to run.
#[derive(Debug, Clone)]
struct Config {
    connections: usize,
    duration: Duration,
    warmup: Duration,
    max_requests: u64,
    targets: Vec<Target>,
    server_threads: usize,
    client_threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            connections: 50,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            max_requests: 5_000_000,
            targets: Target::ALL.to_vec(),
            server_threads: 1,
            client_threads: 1,
        }
    }
}

enum Parsed {
    Run(Config),
    Help,
}

fn parse_count(flag: &str, value: &str, min: u64, max: u64) -> Result<u64, String> {
    let n: u64 = value
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{flag}: {value:?} is not a whole number"))?;
    if n < min || n > max {
        return Err(format!("{flag}: {n} is outside {min}..={max}"));
    }
    Ok(n)
}

fn parse_secs(flag: &str, value: &str, allow_zero: bool) -> Result<Duration, String> {
    let secs: f64 = value
        .parse()
        .map_err(|_| format!("{flag}: {value:?} is not a number of seconds"))?;
    if !secs.is_finite() || !(0.0..=3600.0).contains(&secs) || (!allow_zero && secs == 0.0) {
        return Err(format!("{flag}: {value} seconds is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses the flags (without the program name). Accepts `--flag value` and
/// `--flag=value`.
fn parse_args(args: &[String]) -> Result<Parsed, String> {
    let mut config = Config::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        i += 1;
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg, None),
        };
        if flag == "--help" || flag == "-h" {
            return Ok(Parsed::Help);
        }
        const FLAGS: [&str; 7] = [
            "--connections",
            "--duration",
            "--warmup",
            "--max-requests",
            "--server-threads",
            "--client-threads",
            "--only",
        ];
        if !FLAGS.contains(&flag) {
            return Err(format!("unknown flag {flag:?}"));
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let v = args.get(i).ok_or_else(|| format!("{flag} needs a value"))?;
                i += 1;
                v.clone()
            }
        };
        match flag {
            "--connections" => {
                config.connections = parse_count(flag, &value, 1, MAX_CONNECTIONS as u64)? as usize;
            }
            "--duration" => config.duration = parse_secs(flag, &value, false)?,
            "--warmup" => config.warmup = parse_secs(flag, &value, true)?,
            "--max-requests" => config.max_requests = parse_count(flag, &value, 1, u64::MAX)?,
            "--server-threads" => {
                config.server_threads = parse_count(flag, &value, 1, 256)? as usize
            }
            "--client-threads" => {
                config.client_threads = parse_count(flag, &value, 1, 256)? as usize
            }
            "--only" => {
                let mut targets = Vec::new();
                for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let t = Target::parse(name).ok_or_else(|| {
                        let names: Vec<_> = Target::ALL
                            .iter()
                            .chain(&Target::EXTRA)
                            .map(|t| t.name())
                            .collect();
                        format!(
                            "--only: unknown target {name:?} (one of {})",
                            names.join(", ")
                        )
                    })?;
                    if !targets.contains(&t) {
                        targets.push(t);
                    }
                }
                if targets.is_empty() {
                    return Err("--only needs at least one target".into());
                }
                config.targets = targets;
            }
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    Ok(Parsed::Run(config))
}

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

/// The application route every axum-based target serves.
fn ok_router() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

/// The bare server's answer: the same status, body and content type as the
/// axum handler's.
fn bare_response() -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(b"ok")));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// Bare hyper: an accept loop and `server::conn::http1` with its defaults.
async fn serve_bare(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted.map_err(|e| format!("accept: {e}"))?,
            () = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                Ok::<_, Infallible>(bare_response())
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The demo policy plus a geography condition on `report:view`, so the
/// route's check is hybrid (role grant and condition) without a resource.
fn access_control() -> Result<AccessControl, String> {
    let mut spec: AccessSpec =
        serde_json::from_str(include_str!("../../fixtures/access-demo.json"))
            .map_err(|e| format!("access spec: {e}"))?;
    spec.policies.push(PolicySpec {
        name: "geo_reports".into(),
        description: None,
        condition: "user.location.country IN ['US', 'CA', 'GB']".into(),
        applies_to: vec![Permission::parse("report:view").map_err(|e| e.to_string())?],
        effect: Effect::Require,
    });
    // Loaded on a thread of its own: this may run inside the server runtime's context.
    let policy = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(AccessPolicy::load(&spec))
            .map_err(|e| e.to_string())
    })
    .join()
    .map_err(|_| "policy loader panicked".to_owned())??;
    let audit = Arc::new(MemoryAuditSink::with_capacity(4096));
    Ok(AccessControl::new(policy).audit(audit))
}

/// The principal every request of `gateway-access` carries (bob, CA).
fn bob() -> Principal {
    let location = AttributeValue::Map([("country".to_owned(), "CA".into())].into_iter().collect());
    Principal::builder("bob")
        .role("business_user")
        .attribute("location", location)
        .build()
}

/// The gateway of a gateway target.
fn build_gateway(target: Target) -> Result<Gateway, String> {
    let routes = if target == Target::GatewayAccess {
        Router::new().route(
            "/",
            get(|| async { "ok" }).layer(RequirePermissionLayer::new("report:view")),
        )
    } else {
        ok_router()
    };
    let mut builder = Gateway::builder().routes(routes);
    match target {
        Target::GatewayMinimal => {
            builder = builder.compression(false).tracing(false).metrics(false)
        }
        Target::GatewayRateLimit => {
            // 1 µs per request (a million per second) with a burst of ten
            // million: far above what one machine can send, so it never
            // refuses, but every request still pays a full GCRA check.
            // (RateQuota::new(10_000_000, 1 s, ..) is rejected: its 0.1 µs
            // emission interval rounds to zero.)
            let quota = RateQuota::new(1_000_000, Duration::from_secs(1), 10_000_000)
                .map_err(|e| format!("rate quota: {e}"))?;
            builder = builder.rate_limits(RateLimits {
                per_ip: Some(quota),
                ..RateLimits::default()
            });
        }
        Target::GatewayAccess => {
            builder = builder
                .principal_layer(axum::Extension(bob()))
                .access_control(access_control()?);
        }
        Target::GatewayNoCompression => builder = builder.compression(false),
        Target::GatewayNoTracing => builder = builder.tracing(false),
        Target::GatewayNoMetrics => builder = builder.metrics(false),
        Target::Gateway | Target::GatewayRouter => {}
        Target::Bare | Target::Axum => {
            return Err(format!("{} is not a gateway target", target.name()));
        }
    }
    builder.build().map_err(|e| format!("gateway build: {e}"))
}

/// A server running on the server runtime.
struct RunningServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

fn start_server(rt: &Runtime, target: Target) -> Result<RunningServer, String> {
    let listener = rt
        .block_on(TcpListener::bind(("127.0.0.1", 0)))
        .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = match target {
        Target::Bare => rt.spawn(serve_bare(listener, shutdown)),
        Target::Axum | Target::GatewayRouter => {
            let router = if target == Target::Axum {
                ok_router()
            } else {
                let _runtime = rt.enter();
                build_gateway(target)?.router()
            };
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            rt.spawn(async move {
                // `axum::serve` turns every handler into a route once
                // (`Router::with_state(())`) before serving.
                axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .await
                    .map_err(|e| format!("axum::serve: {e}"))
            })
        }
        Target::GatewayMinimal
        | Target::Gateway
        | Target::GatewayRateLimit
        | Target::GatewayAccess
        | Target::GatewayNoCompression
        | Target::GatewayNoTracing
        | Target::GatewayNoMetrics => {
            let gateway = {
                let _runtime = rt.enter();
                build_gateway(target)?
            };
            rt.spawn(async move {
                gateway
                    .serve(listener, shutdown)
                    .await
                    .map_err(|e| format!("Gateway::serve: {e}"))
            })
        }
    };
    Ok(RunningServer { addr, stop, task })
}

// ---------------------------------------------------------------------------
// Load generator
// ---------------------------------------------------------------------------

/// What every connection task shares.
struct Shared {
    addr: SocketAddr,
    host: HeaderValue,
    /// Requests started before this are warm-up and not recorded.
    warm_end: Instant,
    /// No request starts after this.
    end: Instant,
    max_requests: u64,
    /// Recorded requests started so far, across connections.
    issued: AtomicU64,
}

/// Failed requests and connections.
#[derive(Debug, Default, Clone, Copy)]
struct Errors {
    /// Answers other than `200 OK` with body `ok`.
    status: u64,
    /// Requests lost to a broken connection (send or body read failed).
    transport: u64,
    /// Failed connects or handshakes.
    connect: u64,
}

impl Errors {
    fn total(self) -> u64 {
        self.status + self.transport + self.connect
    }

    fn add(&mut self, other: Self) {
        self.status += other.status;
        self.transport += other.transport;
        self.connect += other.connect;
    }
}

/// What one connection task measured.
#[derive(Debug, Default)]
struct ConnStats {
    hist: LatencyHistogram,
    errors: Errors,
    last_done: Option<Instant>,
}

enum Outcome {
    /// The deadline or the request cap was reached.
    Done,
    /// A request failed (already counted); reconnect.
    Broken,
    /// The connection closed under the request loop; reconnect.
    Closed,
}

/// Sends requests back to back on one connection until the deadline or the
/// cap, recording the latency of each from just before it is written to
/// just after its whole body is read.
async fn send_loop(
    shared: &Shared,
    sender: &mut SendRequest<Empty<Bytes>>,
    stats: &mut ConnStats,
) -> Outcome {
    let mut now = Instant::now();
    loop {
        if now >= shared.end {
            return Outcome::Done;
        }
        let measuring = now >= shared.warm_end;
        if measuring && shared.issued.fetch_add(1, Ordering::Relaxed) >= shared.max_requests {
            return Outcome::Done;
        }
        if sender.ready().await.is_err() {
            stats.errors.transport += 1;
            return Outcome::Broken;
        }
        // `GET /` (the defaults of `Request::new`) with a Host header.
        let mut req = Request::new(Empty::new());
        req.headers_mut().insert(header::HOST, shared.host.clone());
        let ok = match sender.send_request(req).await {
            Ok(res) => {
                let status = res.status();
                match res.into_body().collect().await {
                    Ok(body) => status == StatusCode::OK && body.to_bytes().as_ref() == b"ok",
                    Err(_) => {
                        stats.errors.transport += 1;
                        return Outcome::Broken;
                    }
                }
            }
            Err(_) => {
                stats.errors.transport += 1;
                return Outcome::Broken;
            }
        };
        let done = Instant::now();
        if measuring {
            stats.hist.record(done - now);
            stats.last_done = Some(done);
        }
        if !ok {
            stats.errors.status += 1;
        }
        now = done;
    }
}

/// One keep-alive connection, reconnecting if it breaks. The connection's
/// I/O future and the request loop run in the same task (no extra wake-up
/// per request).
async fn run_connection(shared: Arc<Shared>) -> ConnStats {
    let mut stats = ConnStats::default();
    loop {
        if Instant::now() >= shared.end
            || shared.issued.load(Ordering::Relaxed) >= shared.max_requests
        {
            return stats;
        }
        let stream = match TcpStream::connect(shared.addr).await {
            Ok(s) => s,
            Err(_) => {
                stats.errors.connect += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(pair) => pair,
                Err(_) => {
                    stats.errors.connect += 1;
                    continue;
                }
            };
        let requests = send_loop(&shared, &mut sender, &mut stats);
        tokio::pin!(conn);
        let outcome = tokio::select! {
            outcome = requests => outcome,
            _closed = &mut conn => Outcome::Closed,
        };
        match outcome {
            Outcome::Done => return stats,
            Outcome::Broken => {}
            // The request in flight is lost.
            Outcome::Closed => stats.errors.transport += 1,
        }
    }
}

/// CPU time of the server and client threads at one instant.
#[derive(Debug, Clone, Copy)]
struct CpuSnapshot {
    server: Option<Duration>,
    client: Option<Duration>,
}

impl CpuSnapshot {
    fn take() -> Self {
        Self {
            server: cpu::threads_cpu_time(SERVER_THREAD),
            client: cpu::threads_cpu_time(CLIENT_THREAD),
        }
    }
}

fn cpu_delta(before: Option<Duration>, after: Option<Duration>) -> Option<Duration> {
    Some(after?.saturating_sub(before?))
}

/// The measurement of one target.
#[derive(Debug)]
struct TargetResult {
    target: Target,
    hist: LatencyHistogram,
    errors: Errors,
    /// From the end of the warm-up to the last recorded response.
    window: Duration,
    server_cpu: Option<Duration>,
    client_cpu: Option<Duration>,
    /// Whether the server stopped cleanly within 5 s of the signal.
    clean_shutdown: bool,
}

impl TargetResult {
    fn rps(&self) -> f64 {
        if self.window.is_zero() {
            return 0.0;
        }
        self.hist.count() as f64 / self.window.as_secs_f64()
    }

    fn server_cpu_per_request(&self) -> Option<Duration> {
        let n = u32::try_from(self.hist.count()).ok().filter(|&n| n > 0)?;
        Some(self.server_cpu? / n)
    }
}

fn runtime(threads: usize, name: &str) -> Result<Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| format!("{name} runtime: {e}"))
}

/// Starts the target's server, loads it, stops it.
fn run_target(config: &Config, target: Target) -> Result<TargetResult, String> {
    let server_rt = runtime(config.server_threads, SERVER_THREAD)?;
    let client_rt = runtime(config.client_threads, CLIENT_THREAD)?;
    let server = start_server(&server_rt, target)?;

    let start = Instant::now();
    let warm_end = start + config.warmup;
    let shared = Arc::new(Shared {
        addr: server.addr,
        host: HeaderValue::from_str(&server.addr.to_string())
            .map_err(|e| format!("host header: {e}"))?,
        warm_end,
        end: warm_end + config.duration,
        max_requests: config.max_requests,
        issued: AtomicU64::new(0),
    });
    let connections = config.connections;
    let (stats, before, after) = client_rt.block_on(async move {
        let tasks: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(run_connection(shared.clone())))
            .collect();
        tokio::time::sleep_until(warm_end.into()).await;
        let before = CpuSnapshot::take();
        let mut stats = Vec::with_capacity(tasks.len());
        for task in tasks {
            stats.push(task.await.map_err(|e| format!("connection task: {e}"))?);
        }
        let after = CpuSnapshot::take();
        Ok::<_, String>((stats, before, after))
    })?;
    client_rt.shutdown_timeout(Duration::from_secs(1));

    let _ = server.stop.send(());
    let stopped = server_rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), server.task).await });
    let clean_shutdown = match stopped {
        Ok(Ok(Ok(()))) => true,
        Ok(Ok(Err(e))) => return Err(e),
        Ok(Err(e)) => return Err(format!("server task: {e}")),
        Err(_) => false,
    };
    server_rt.shutdown_timeout(Duration::from_secs(1));

    let mut hist = LatencyHistogram::new();
    let mut errors = Errors::default();
    let mut last_done = warm_end;
    for s in &stats {
        hist.merge(&s.hist);
        errors.add(s.errors);
        if let Some(t) = s.last_done {
            last_done = last_done.max(t);
        }
    }
    Ok(TargetResult {
        target,
        hist,
        errors,
        window: last_done.saturating_duration_since(warm_end),
        server_cpu: cpu_delta(before.server, after.server),
        client_cpu: cpu_delta(before.client, after.client),
        clean_shutdown,
    })
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

fn micros(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.0}", d.as_secs_f64() * 1e6))
}

fn micros_1(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.2}", d.as_secs_f64() * 1e6))
}

fn percent_of_core(cpu: Option<Duration>, window: Duration) -> String {
    match cpu {
        Some(c) if !window.is_zero() => {
            format!("{:.0}%", 100.0 * c.as_secs_f64() / window.as_secs_f64())
        }
        _ => "-".into(),
    }
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn print_header(config: &Config) {
    let args: Vec<String> = std::env::args().collect();
    println!("loadbench: {}", args.join(" "));
    println!(
        "commit:    {} (git HEAD when run)",
        git_commit().unwrap_or_else(|| "unknown".into())
    );
    println!(
        "machine:   {} cores ({}), loadavg {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        cpu_model().unwrap_or_else(|| "unknown CPU".into()),
        loadavg()
    );
    println!(
        "config:    {} connections, {:.1} s warm-up + {:.1} s measured per target, at most {} recorded requests, \
         server runtime {} worker(s), client runtime {} worker(s)",
        config.connections,
        config.warmup.as_secs_f64(),
        config.duration.as_secs_f64(),
        config.max_requests,
        config.server_threads,
        config.client_threads,
    );
    println!();
}

fn print_table(results: &[TargetResult]) {
    println!(
        "{:<18} {:>9} {:>10} {:>7} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7}",
        "target",
        "requests",
        "req/s",
        "p50 µs",
        "p99 µs",
        "max µs",
        "errors",
        "srv µs/r",
        "srv cpu",
        "cli cpu"
    );
    for r in results {
        println!(
            "{:<18} {:>9} {:>10.0} {:>7} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7}",
            r.target.name(),
            r.hist.count(),
            r.rps(),
            micros(r.hist.quantile(0.50)),
            micros(r.hist.quantile(0.99)),
            micros(r.hist.max()),
            r.errors.total(),
            micros_1(r.server_cpu_per_request()),
            percent_of_core(r.server_cpu, r.window),
            percent_of_core(r.client_cpu, r.window),
        );
    }
    println!();
    println!("srv µs/r: CPU time of the server runtime's threads per recorded request;");
    println!("srv cpu / cli cpu: CPU use of the server / client threads (100% = one core).");
    for r in results {
        if r.errors.total() > 0 {
            println!(
                "ERRORS {}: {} bad status or body, {} transport, {} connect",
                r.target.name(),
                r.errors.status,
                r.errors.transport,
                r.errors.connect
            );
        }
        if !r.clean_shutdown {
            println!(
                "note {}: the server did not stop within 5 s of the shutdown signal",
                r.target.name()
            );
        }
    }
}

fn print_ratios(results: &[TargetResult]) {
    let Some(bare) = results.iter().find(|r| r.target == Target::Bare) else {
        println!("(no `bare` run: ratios need it)");
        return;
    };
    println!();
    println!("throughput ratios (req/s of target / req/s of bare, same run):");
    for r in results.iter().filter(|r| r.target != Target::Bare) {
        let ratio = r.rps() / bare.rps();
        let verdict = if r.target == Target::Gateway {
            let met = if ratio >= TARGET_RATIO {
                "met"
            } else {
                "NOT met"
            };
            format!("   (design target >= {TARGET_RATIO:.2}: {met})")
        } else {
            String::new()
        };
        println!(
            "  {:<26} = {ratio:.2}{verdict}",
            format!("{}/bare", r.target.name())
        );
    }
    if let Some(base) = bare.server_cpu_per_request() {
        println!("server CPU per request (bare = 1.00):");
        for r in results.iter().filter(|r| r.target != Target::Bare) {
            if let Some(c) = r.server_cpu_per_request() {
                let extra = c.as_secs_f64() * 1e6 - base.as_secs_f64() * 1e6;
                println!(
                    "  {:<26} = {:.2}x   ({extra:+.2} µs per request; cost ratio bare/{0} = {:.2})",
                    r.target.name(),
                    c.as_secs_f64() / base.as_secs_f64(),
                    base.as_secs_f64() / c.as_secs_f64(),
                );
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse_args(&args) {
        Ok(Parsed::Run(config)) => config,
        Ok(Parsed::Help) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("loadbench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    print_header(&config);
    let mut results = Vec::with_capacity(config.targets.len());
    for &target in &config.targets {
        eprintln!(
            "loadbench: {} ({:.1} s warm-up + {:.1} s)...",
            target.name(),
            config.warmup.as_secs_f64(),
            config.duration.as_secs_f64()
        );
        match run_target(&config, target) {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("loadbench: {}: {e}", target.name());
                return ExitCode::FAILURE;
            }
        }
    }
    print_table(&results);
    print_ratios(&results);
    println!("\nloadavg at the end: {}", loadavg());
    if results.iter().any(|r| r.errors.total() > 0) {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn defaults_and_flags() {
        let Ok(Parsed::Run(c)) = parse_args(&[]) else {
            panic!("defaults")
        };
        assert_eq!(
            (c.connections, c.targets.len(), c.server_threads),
            (50, 6, 1)
        );
        let Ok(Parsed::Run(c)) = parse_args(&args(
            "--connections 8 --duration=0.5 --warmup 0 --max-requests 1_000 --only gateway,bare --client-threads 2",
        )) else {
            panic!("flags")
        };
        assert_eq!(c.connections, 8);
        assert_eq!(c.duration, Duration::from_millis(500));
        assert_eq!(c.warmup, Duration::ZERO);
        assert_eq!(c.max_requests, 1_000);
        assert_eq!(c.targets, [Target::Gateway, Target::Bare]);
        assert_eq!(c.client_threads, 2);
        assert!(matches!(parse_args(&args("--help")), Ok(Parsed::Help)));
    }

    #[test]
    fn bad_flags_are_refused() {
        for bad in [
            "--connections 0",
            "--connections 20000",
            "--duration 0",
            "--duration -1",
            "--only nginx",
            "--only ,",
            "--bogus 1",
            "--warmup",
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_gateway_target_builds() {
        let rt = runtime(1, "lbtest-gw");
        let Ok(rt) = rt else { panic!("runtime") };
        let _guard = rt.enter();
        for t in [
            Target::GatewayMinimal,
            Target::Gateway,
            Target::GatewayRateLimit,
            Target::GatewayAccess,
        ] {
            assert!(build_gateway(t).is_ok(), "{}", t.name());
        }
        assert!(build_gateway(Target::Bare).is_err());
    }

    #[test]
    fn a_short_run_has_no_errors() {
        let config = Config {
            connections: 4,
            // Long enough for a debug build on two busy cores to answer
            // (200 ms once saw no answer from bare hyper under a parallel build).
            duration: Duration::from_secs(1),
            warmup: Duration::from_millis(100),
            ..Config::default()
        };
        for t in Target::ALL.into_iter().chain(Target::EXTRA) {
            let r = run_target(&config, t).unwrap_or_else(|e| panic!("{}: {e}", t.name()));
            assert_eq!(r.errors.total(), 0, "{}: {:?}", t.name(), r.errors);
            assert!(r.hist.count() > 0, "{}", t.name());
        }
    }
}
