//! `wsload`: the load client of `benches/realtime.sh`.
//!
//! Opens N WebSockets to one server (handshakes ramped with bounded
//! concurrency), waits for every `{"type":"welcome",…}` frame, samples the
//! server's RSS (`VmRSS` of `/proc/PID/status`) before and after, then
//! publishes E events by HTTP `POST` at a fixed rate, each carrying its send
//! time (`data.t`, ns since the epoch on this machine's clock) and index
//! (`data.seq`). Every socket records when it received each event: delivery
//! latency p50/p99/max over all (socket, event) pairs, deliveries/s, and the
//! missing and duplicate deliveries (a correct run has 0 of both). The
//! client's own CPU time and the server's over the broadcast phase
//! (`/proc/self/stat`, `/proc/PID/stat`) are printed per delivered message,
//! to show which side is the bottleneck.
//!
//! ```text
//! wsload --url ws://127.0.0.1:PORT/ws --connections N
//!        [--token T | --login URL USER PASS] [--subprotocol]
//!        [--publish-url URL] [--publish-token T | --publish-login URL USER PASS]
//!        [--events E] [--rate R/s] [--pid SERVER_PID] [--concurrency C]
//!        [--settle SECS] [--drain SECS] [--cap SECS] [--threads T] [--label NAME]
//! ```
//!
//! Only loopback addresses are accepted. Output: a human table, then one
//! line of JSON (the only line starting with `{`). Exit status: 0 when every
//! socket connected and every event was published and delivered exactly
//! once, 1 otherwise, 2 when the time cap (`--cap`) ended the run.

#![forbid(unsafe_code)]

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const USAGE: &str = "usage: wsload --url ws://127.0.0.1:PORT/ws --connections N \
[--token T | --login URL USER PASS] [--subprotocol] [--publish-url URL] \
[--publish-token T | --publish-login URL USER PASS] [--events E] [--rate R/s] \
[--pid SERVER_PID] [--concurrency C] [--settle SECS] [--drain SECS] [--cap SECS] \
[--threads T] [--label NAME]";

/// The largest frame or HTTP answer the client accepts.
const MAX_MESSAGE: usize = 1 << 20;
/// No latency recorded yet for this (socket, event).
const MISSING: u32 = u32::MAX;

#[derive(Clone)]
struct Args {
    url: String,
    connections: usize,
    token: Option<String>,
    login: Option<(String, String, String)>,
    subprotocol: bool,
    publish_url: Option<String>,
    publish_token: Option<String>,
    publish_login: Option<(String, String, String)>,
    events: usize,
    rate: f64,
    pid: Option<u32>,
    concurrency: usize,
    settle: f64,
    drain: f64,
    cap: f64,
    threads: usize,
    label: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        connections: 0,
        token: None,
        login: None,
        subprotocol: false,
        publish_url: None,
        publish_token: None,
        publish_login: None,
        events: 200,
        rate: 20.0,
        pid: None,
        concurrency: 128,
        settle: 2.0,
        drain: 10.0,
        cap: 600.0,
        threads: 2,
        label: "target".to_owned(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut v = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        fn num<T: std::str::FromStr>(name: &str, s: String) -> Result<T, String>
        where
            T::Err: std::fmt::Display,
        {
            s.parse().map_err(|e| format!("{name} {s:?}: {e}"))
        }
        match flag.as_str() {
            "--url" => a.url = v("--url")?,
            "--connections" => a.connections = num("--connections", v("--connections")?)?,
            "--token" => a.token = Some(v("--token")?),
            "--login" => a.login = Some((v("--login")?, v("--login")?, v("--login")?)),
            "--subprotocol" => a.subprotocol = true,
            "--publish-url" => a.publish_url = Some(v("--publish-url")?),
            "--publish-token" => a.publish_token = Some(v("--publish-token")?),
            "--publish-login" => {
                a.publish_login = Some((
                    v("--publish-login")?,
                    v("--publish-login")?,
                    v("--publish-login")?,
                ));
            }
            "--events" => a.events = num("--events", v("--events")?)?,
            "--rate" => {
                let s = v("--rate")?;
                a.rate = num("--rate", s.trim_end_matches("/s").to_owned())?;
            }
            "--pid" => a.pid = Some(num("--pid", v("--pid")?)?),
            "--concurrency" => a.concurrency = num("--concurrency", v("--concurrency")?)?,
            "--settle" => a.settle = num("--settle", v("--settle")?)?,
            "--drain" => a.drain = num("--drain", v("--drain")?)?,
            "--cap" => a.cap = num("--cap", v("--cap")?)?,
            "--threads" => a.threads = num("--threads", v("--threads")?)?,
            "--label" => a.label = v("--label")?,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            s => return Err(format!("unknown argument {s:?}\n{USAGE}")),
        }
    }
    if a.url.is_empty() || a.connections == 0 {
        return Err(format!(
            "--url and --connections (> 0) are required\n{USAGE}"
        ));
    }
    if a.connections > 100_000
        || a.events > 100_000
        || a.connections.saturating_mul(a.events) > 50_000_000
    {
        return Err(
            "at most 100000 connections, 100000 events and 50M (socket, event) pairs".to_owned(),
        );
    }
    if !(a.rate > 0.0 && a.rate <= 100_000.0) {
        return Err("--rate must be in (0, 100000] events/s".to_owned());
    }
    if a.token.is_some() && a.login.is_some() {
        return Err("--token and --login exclude each other".to_owned());
    }
    if a.events > 0 && a.publish_url.is_none() {
        return Err("--events > 0 needs --publish-url".to_owned());
    }
    for (name, s) in [
        ("--settle", a.settle),
        ("--drain", a.drain),
        ("--cap", a.cap),
    ] {
        if !(s.is_finite() && (0.0..=3600.0).contains(&s)) {
            return Err(format!("{name} must be within 0..=3600 seconds"));
        }
    }
    a.concurrency = a.concurrency.clamp(1, 4096);
    a.threads = a.threads.clamp(1, 64);
    Ok(a)
}

// ---- URLs and a minimal HTTP/1.1 client (login and publish only) ------------

/// `scheme://host:port/path` → (loopback socket address, `host:port`, path).
fn split_url(url: &str, scheme: &str) -> Result<(SocketAddr, String, String), String> {
    let rest = url
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
        .ok_or(format!("{url:?}: expected {scheme}://host:port/path"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{url:?}: {e}"))?
        .next()
        .ok_or(format!("{url:?}: no address"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{url:?}: only loopback addresses are loaded"));
    }
    Ok((addr, authority.to_owned(), path.to_owned()))
}

/// One `POST` with a JSON body on a fresh connection (`Connection: close`):
/// the status and the (de-chunked) body.
async fn http_post(url: &str, bearer: Option<&str>, body: &str) -> Result<(u16, Vec<u8>), String> {
    let (addr, host, path) = split_url(url, "http")?;
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let io = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let _ = s.set_nodelay(true);
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let mut buf = Vec::new();
        (&mut s)
            .take(MAX_MESSAGE as u64)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        Ok::<_, String>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .map_err(|_| format!("{url}: no answer within 10 s"))??;
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(format!("{url}: malformed HTTP answer"))?;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(format!("{url}: no status line"))?;
    let mut body = buf[end + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body).ok_or(format!("{url}: malformed chunked body"))?;
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// `POST URL {"username","password"}` → `access_token`.
async fn login(url: &str, user: &str, pass: &str) -> Result<String, String> {
    let body = serde_json::json!({ "username": user, "password": pass }).to_string();
    let (status, body) = http_post(url, None, &body).await?;
    if !(200..300).contains(&status) {
        return Err(format!("login at {url} as {user}: HTTP {status}"));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("login at {url}: {e}"))?;
    v["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or(format!("login at {url}: no access_token in the answer"))
}

// ---- /proc -------------------------------------------------------------------

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// utime + stime of a process, in clock ticks (`/proc/<pid>/stat`).
fn cpu_ticks(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat; `after` starts at field 3.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// `VmRSS` of a process in KiB.
fn rss_kib(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Clock ticks per second; Linux has used 100 on every mainstream
/// architecture for decades (`getconf CLK_TCK`).
fn ticks_per_sec() -> f64 {
    std::env::var("CLK_TCK")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100.0)
}

// ---- one socket ----------------------------------------------------------------

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    t: Option<u64>,
    seq: Option<usize>,
    run: Option<u64>,
}

struct Shared {
    events: usize,
    run: u64,
    welcomed: AtomicUsize,
    failed: AtomicUsize,
    delivered: AtomicU64,
    last_delivery_ns: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Shared {
    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut e = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if e.len() < 5 {
            e.push(why);
        }
    }
}

#[derive(Default)]
struct SocketResult {
    connected: bool,
    /// Latency in µs per event index; `MISSING` when not (yet) received.
    latency_us: Vec<u32>,
    duplicates: u64,
    unexpected: u64,
    /// How the socket ended before the run did: a close code or an error.
    closed_early: Option<String>,
}

async fn socket(
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
    addr: SocketAddr,
    sem: Arc<Semaphore>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> SocketResult {
    let mut r = SocketResult::default();
    let cfg = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    // The handshake and the welcome, under the ramp's concurrency bound.
    let permit = match sem.acquire().await {
        Ok(p) => p,
        Err(_) => return r,
    };
    let opened = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(req, tcp, Some(cfg))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let f: Frame<'_> =
                        serde_json::from_str(&t).map_err(|e| format!("first frame: {e}"))?;
                    if f.kind == "welcome" {
                        return Ok(ws);
                    }
                    return Err(format!("first frame is {:?}, not a welcome", f.kind));
                }
                Some(Ok(Message::Close(c))) => {
                    return Err(format!("closed before the welcome: {c:?}"));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("before the welcome: {e}")),
                None => return Err("EOF before the welcome".to_owned()),
            }
        }
    };
    let mut ws = match tokio::time::timeout(Duration::from_secs(30), opened).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            shared.fail(e);
            return r;
        }
        Err(_) => {
            shared.fail("no welcome within 30 s".to_owned());
            return r;
        }
    };
    drop(permit);
    r.connected = true;
    r.latency_us = vec![MISSING; shared.events];
    shared.welcomed.fetch_add(1, Ordering::Relaxed);
    loop {
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let at = now_ns();
                    let Ok(f) = serde_json::from_str::<Frame<'_>>(&t) else {
                        r.unexpected += 1;
                        continue;
                    };
                    let Some(Data { t: Some(sent), seq: Some(seq), run: Some(run) }) = f.data else {
                        r.unexpected += 1;
                        continue;
                    };
                    if f.kind != "event" || run != shared.run || seq >= shared.events {
                        r.unexpected += 1;
                        continue;
                    }
                    if r.latency_us[seq] != MISSING {
                        r.duplicates += 1;
                        continue;
                    }
                    r.latency_us[seq] = (at.saturating_sub(sent) / 1000).min(u64::from(MISSING - 1)) as u32;
                    shared.delivered.fetch_add(1, Ordering::Relaxed);
                    shared.last_delivery_ns.fetch_max(at, Ordering::Relaxed);
                }
                Some(Ok(Message::Close(c))) => {
                    r.closed_early = Some(c.map_or("close without code".to_owned(), |c| format!("close {}", u16::from(c.code))));
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    r.closed_early = Some(format!("error: {e}"));
                    break;
                }
                None => {
                    r.closed_early = Some("EOF".to_owned());
                    break;
                }
            },
            _ = stop.changed() => break,
        }
    }
    r
}

// ---- the run ---------------------------------------------------------------------

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

async fn run(a: Args) -> Result<bool, String> {
    let (addr, _, _) = split_url(&a.url, "ws")?;
    let token = match (&a.token, &a.login) {
        (Some(t), _) => Some(t.clone()),
        (None, Some((url, u, p))) => Some(login(url, u, p).await?),
        (None, None) => None,
    };
    let publish_token = match (&a.publish_token, &a.publish_login) {
        (Some(t), _) => Some(t.clone()),
        (None, Some((url, u, p))) => Some(login(url, u, p).await?),
        (None, None) => None,
    };
    let mut req = a
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("{}: {e}", a.url))?;
    if let Some(t) = &token {
        let (name, value) = if a.subprotocol {
            (
                "sec-websocket-protocol",
                format!("kailash.v1, kailash.bearer.{t}"),
            )
        } else {
            ("authorization", format!("Bearer {t}"))
        };
        let value = HeaderValue::from_str(&value)
            .map_err(|_| "the token is not a valid header value".to_owned())?;
        req.headers_mut().insert(name, value);
    }
    let pid = a.pid.map(|p| p.to_string());
    let server_rss = || pid.as_deref().and_then(rss_kib);
    let server_cpu = || pid.as_deref().and_then(cpu_ticks);
    let tick = ticks_per_sec();
    let n = a.connections;

    // Phase 1: N sockets, ramped, every welcome received.
    let shared = Arc::new(Shared {
        events: a.events,
        run: now_ns(),
        welcomed: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        delivered: AtomicU64::new(0),
        last_delivery_ns: AtomicU64::new(0),
        errors: Mutex::new(Vec::new()),
    });
    let rss_before = server_rss();
    let (stop_tx, stop_rx) = watch::channel(false);
    let sem = Arc::new(Semaphore::new(a.concurrency));
    let t0 = Instant::now();
    let cpu_c0 = cpu_ticks("self");
    let cpu_s0 = server_cpu();
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        handles.push(tokio::spawn(socket(
            req.clone(),
            addr,
            sem.clone(),
            shared.clone(),
            stop_rx.clone(),
        )));
    }
    while shared.welcomed.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    let (cpu_c1, cpu_s1) = (cpu_ticks("self"), server_cpu());
    let connected = shared.welcomed.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
    let rss_idle = server_rss();

    // Phase 2: E events at the rate, each timestamped just before its POST.
    let mut published = 0usize;
    let mut publish_errors = Vec::new();
    let period = Duration::from_secs_f64(1.0 / a.rate);
    let cpu_c2 = cpu_ticks("self");
    let cpu_s2 = server_cpu();
    let p0 = Instant::now();
    let first_send_ns = now_ns();
    if let Some(url) = &a.publish_url {
        for seq in 0..a.events {
            tokio::time::sleep_until((p0 + period * seq as u32).into()).await;
            let body = serde_json::json!({
                "channel": "bench",
                "event": "bench.tick",
                "data": { "t": now_ns(), "seq": seq, "run": shared.run },
                "metadata": { "classification": "public" },
            })
            .to_string();
            match http_post(url, publish_token.as_deref(), &body).await {
                Ok((s, _)) if (200..300).contains(&s) => published += 1,
                Ok((s, b)) => publish_errors.push(format!(
                    "event {seq}: HTTP {s} {}",
                    String::from_utf8_lossy(&b[..b.len().min(200)])
                )),
                Err(e) => publish_errors.push(format!("event {seq}: {e}")),
            }
        }
    }
    let publish_secs = p0.elapsed().as_secs_f64();
    // Drain: until every connected socket has every published event, or --drain.
    let expected = (connected * published) as u64;
    let d0 = Instant::now();
    while shared.delivered.load(Ordering::Relaxed) < expected
        && d0.elapsed().as_secs_f64() < a.drain
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cpu_c3 = cpu_ticks("self");
    let cpu_s3 = server_cpu();
    let rss_after = server_rss();
    let last_ns = shared.last_delivery_ns.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);

    // Results.
    let mut lat = Vec::with_capacity(connected * a.events);
    let (mut missing, mut duplicates, mut unexpected) = (0u64, 0u64, 0u64);
    let mut early: std::collections::BTreeMap<String, usize> = Default::default();
    for h in handles {
        let r = h.await.map_err(|e| format!("socket task: {e}"))?;
        if !r.connected {
            continue;
        }
        duplicates += r.duplicates;
        unexpected += r.unexpected;
        if let Some(c) = r.closed_early {
            *early.entry(c).or_default() += 1;
        }
        for &l in &r.latency_us {
            if l == MISSING {
                missing += 1;
            } else {
                lat.push(l);
            }
        }
    }
    // Events never published are not missing deliveries: count against `published`.
    missing = missing.saturating_sub(((a.events - published) * connected) as u64);
    lat.sort_unstable();
    let delivered = lat.len() as u64;
    let span = last_ns.saturating_sub(first_send_ns) as f64 / 1e9;
    let per_s = if span > 0.0 {
        delivered as f64 / span
    } else {
        0.0
    };
    let secs = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some((b.saturating_sub(a)) as f64 / tick),
        _ => None,
    };
    let client_cpu = secs(cpu_c2, cpu_c3);
    let server_cpu_s = secs(cpu_s2, cpu_s3);
    let per_msg = |s: Option<f64>| {
        s.filter(|_| delivered > 0)
            .map(|s| s * 1e6 / delivered as f64)
    };
    let per_socket = match (rss_before, rss_idle) {
        (Some(b), Some(i)) if connected > 0 => {
            Some((i as f64 - b as f64) * 1024.0 / connected as f64)
        }
        _ => None,
    };
    let connect_cpu_c = secs(cpu_c0, cpu_c1);
    let connect_cpu_s = secs(cpu_s0, cpu_s1);
    let failed = shared.failed.load(Ordering::Relaxed);
    let errors = shared
        .errors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();

    let f = |v: Option<f64>, d: usize| v.map_or("—".to_owned(), |v| format!("{v:.d$}"));
    let k = |v: Option<u64>| v.map_or("—".to_owned(), |v| format!("{v} KiB"));
    println!(
        "wsload {}: {} → {}",
        a.label,
        a.url,
        if a.subprotocol {
            "subprotocol token"
        } else if token.is_some() {
            "bearer token"
        } else {
            "no token"
        }
    );
    println!(
        "  sockets      {connected}/{n} connected + welcomed in {connect_secs:.2} s (failed {failed}); client CPU {} s, server CPU {} s",
        f(connect_cpu_c, 2),
        f(connect_cpu_s, 2)
    );
    for e in &errors {
        println!("    e.g. {e}");
    }
    println!(
        "  server RSS   before {}  idle {}  after events {}  → {} bytes per idle socket",
        k(rss_before),
        k(rss_idle),
        k(rss_after),
        f(per_socket, 0)
    );
    println!(
        "  published    {published}/{} events in {publish_secs:.2} s (target {} /s), errors {}",
        a.events,
        a.rate,
        publish_errors.len()
    );
    for e in publish_errors.iter().take(3) {
        println!("    e.g. {e}");
    }
    println!(
        "  delivered    {delivered}/{expected} (missing {missing}, duplicates {duplicates}, unexpected frames {unexpected}), {per_s:.0} deliveries/s over {span:.2} s"
    );
    println!(
        "  latency      p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        lat.last().map_or(f64::NAN, |&m| f64::from(m) / 1000.0)
    );
    println!(
        "  CPU (events) client {} s = {} µs/delivery   server {} s = {} µs/delivery",
        f(client_cpu, 2),
        f(per_msg(client_cpu), 2),
        f(server_cpu_s, 2),
        f(per_msg(server_cpu_s), 2)
    );
    for (why, count) in &early {
        println!("  closed early {count} sockets: {why}");
    }
    let j = serde_json::json!({
        "bench": "wsload",
        "label": a.label,
        "url": a.url,
        "connections": n,
        "connected": connected,
        "failed": failed,
        "connect_secs": connect_secs,
        "server_rss_before_kib": rss_before,
        "server_rss_idle_kib": rss_idle,
        "server_rss_after_kib": rss_after,
        "bytes_per_idle_socket": per_socket,
        "events": a.events,
        "rate": a.rate,
        "published": published,
        "publish_errors": publish_errors.len(),
        "expected": expected,
        "delivered": delivered,
        "missing": missing,
        "duplicates": duplicates,
        "unexpected": unexpected,
        "closed_early": early.values().sum::<usize>(),
        "p50_ms": percentile(&lat, 50.0),
        "p99_ms": percentile(&lat, 99.0),
        "max_ms": lat.last().map(|&m| f64::from(m) / 1000.0),
        "deliveries_per_s": per_s,
        // Events over the publish window: first POST to the last answer, plus
        // one period (n events on schedule take n periods).
        "events_per_s": published as f64 / (publish_secs + 1.0 / a.rate),
        "client_cpu_s": client_cpu,
        "server_cpu_s": server_cpu_s,
        "client_us_per_delivery": per_msg(client_cpu),
        "server_us_per_delivery": per_msg(server_cpu_s),
    });
    println!("{j}");
    Ok(failed == 0
        && publish_errors.is_empty()
        && missing == 0
        && duplicates == 0
        && early.is_empty()
        && connected == n)
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("wsload: {e}");
            std::process::exit(64);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wsload: runtime: {e}");
            std::process::exit(1);
        }
    };
    let cap = Duration::from_secs_f64(a.cap);
    let code = rt.block_on(async move {
        match tokio::time::timeout(cap, run(a)).await {
            Ok(Ok(true)) => 0,
            Ok(Ok(false)) => 1,
            Ok(Err(e)) => {
                eprintln!("wsload: {e}");
                1
            }
            Err(_) => {
                eprintln!(
                    "wsload: time cap of {} s reached; no result",
                    cap.as_secs_f64()
                );
                2
            }
        }
    });
    // Do not wait for thousands of sockets to close gracefully.
    std::process::exit(code);
}
