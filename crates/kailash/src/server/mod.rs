//! The accept loop: a real cap on connections (global and per peer
//! address), header limits, connection-level deadlines (first bytes, request
//! heads, idle keep-alive, HTTP/2 keep-alive pings), optional TLS, and
//! graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use kailash_core::context::{PeerAddr, TlsConnection};
use kailash_core::problem::Problem;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

mod deadline;
mod peers;
mod settings;

use deadline::{Activity, Timeouts, TrackedBody, TrackedIo, Watchdog};
use peers::{Admission, PeerConnections};
pub(crate) use settings::{Handler, ServerSettings};

fn http_builder(settings: &ServerSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Head and idle deadlines are the connection's watchdog's (see
    // `deadline`): hyper's own header timer would re-arm per request and
    // cut idle keep-alive at the header timeout.
    builder
        .http1()
        .header_read_timeout(None)
        .max_buf_size(settings.max_header_bytes)
        .max_headers(settings.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(settings.http2_keepalive_interval)
        .keep_alive_timeout(settings.http2_keepalive_timeout)
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .max_pending_accept_reset_streams(64);
    builder
}

/// What every connection task needs, shared by all of them.
struct Connections {
    builder: auto::Builder<TokioExecutor>,
    handler: Handler,
    timeouts: Timeouts,
}

/// Serves until `shutdown` resolves, then drains connections for at most
/// the grace period.
pub(crate) async fn serve(
    listener: TcpListener,
    handler: Handler,
    settings: &ServerSettings,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let connections = Arc::new(Connections {
        builder: http_builder(settings),
        handler,
        timeouts: Timeouts {
            header: settings.header_read_timeout,
            idle: settings.idle_timeout,
        },
    });
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let peers = PeerConnections::new(
        settings.max_connections_per_ip,
        settings.max_connections,
        settings.trusted_proxies.clone(),
    );
    // Answering refused connections is itself bounded: past this many at
    // once, a refused connection is simply closed.
    let refusals = Refusals {
        writers: Arc::new(Semaphore::new(MAX_CONCURRENT_REFUSALS)),
        full: RefusalLog::default(),
        per_peer: RefusalLog::default(),
    };
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let accepted_at = Instant::now();
        let slot = match peers.as_ref().map(|p| p.admit(peer.ip())) {
            Some(Admission::Refused) => {
                refuse(stream, acceptor.is_some(), &refusals, Refusal::PerPeer);
                continue;
            }
            Some(Admission::Admitted(slot)) => slot,
            None => None,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuse(stream, acceptor.is_some(), &refusals, Refusal::Full);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connections = connections.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let activity = Activity::new(accepted_at);
            match acceptor {
                None => {
                    connections
                        .serve(stream, peer, false, activity, watcher)
                        .await
                }
                Some(acceptor) => {
                    // The handshake is part of the first head's time.
                    let handshake_deadline = accepted_at + connections.timeouts.header;
                    match tokio::time::timeout_at(handshake_deadline, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls_stream)) => {
                            connections
                                .serve(tls_stream, peer, true, activity, watcher)
                                .await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
            drop(slot);
        });
    }

    drop(listener);
    tracing::info!(
        grace_ms = settings.shutdown_grace.as_millis() as u64,
        "draining connections"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(settings.shutdown_grace) => {
            tracing::warn!("grace period over; closing remaining connections");
        }
    }
}

impl Connections {
    /// Serves one connection until it ends or its watchdog's deadline passes.
    async fn serve<I>(
        &self,
        io: I,
        peer: SocketAddr,
        tls: bool,
        activity: Arc<Activity>,
        watcher: Watcher,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let watchdog = Watchdog::new(activity.clone(), self.timeouts);
        let service = connection_service(self.handler.clone(), peer, tls, activity.clone());
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(TrackedIo::new(io, activity)), service)
            .into_owned();
        // Biased: the watchdog looks after the connection has made its
        // progress, so it sees every state change of this wake.
        tokio::select! {
            biased;
            result = watcher.watch(conn) => if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            },
            () = watchdog => tracing::debug!(%peer, "connection closed: header or idle deadline passed"),
        }
    }
}

fn connection_service(
    handler: Handler,
    peer: SocketAddr,
    tls: bool,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = http::Response<TrackedBody>,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<http::Response<TrackedBody>, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        let in_flight = activity.begin();
        req.extensions_mut().insert(PeerAddr(peer));
        if tls {
            req.extensions_mut().insert(TlsConnection);
        }
        let response = handler(req.map(axum::body::Body::new));
        async move { Ok(response.await.map(|body| TrackedBody::new(body, in_flight))) }
    })
}

/// Refused connections answered at the same time.
const MAX_CONCURRENT_REFUSALS: usize = 64;

struct Refusals {
    writers: Arc<Semaphore>,
    full: RefusalLog,
    per_peer: RefusalLog,
}

/// Why a connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// `max_connections` are open.
    Full,
    /// The peer holds `max_connections_per_ip`.
    PerPeer,
}

/// Logs refusals at most once a second, with how many there were, so a
/// connection flood cannot also flood the log.
#[derive(Default)]
struct RefusalLog {
    window_start: std::sync::atomic::AtomicU64,
    count: std::sync::atomic::AtomicU64,
}

impl RefusalLog {
    fn note(&self, why: Refusal) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let count = self.count.fetch_add(1, Relaxed) + 1;
        let start = self.window_start.load(Relaxed);
        if now > start
            && self
                .window_start
                .compare_exchange(start, now, Relaxed, Relaxed)
                .is_ok()
        {
            self.count.store(0, Relaxed);
            match why {
                Refusal::Full => tracing::warn!(
                    refused = count,
                    "connection limit reached; refusing connections"
                ),
                Refusal::PerPeer => tracing::warn!(
                    refused = count,
                    "per-address connection limit reached; refusing that address's connections"
                ),
            }
        }
    }
}

/// Answers a connection over a cap and closes it, without reading the
/// request: problem+json for plain HTTP (503 when the server is full, 429
/// when the peer holds its share), a bare close for TLS (no handshake is
/// spent on it) or when too many refusals are already being written.
fn refuse(mut stream: TcpStream, tls: bool, refusals: &Refusals, why: Refusal) {
    match why {
        Refusal::Full => refusals.full.note(why),
        Refusal::PerPeer => refusals.per_peer.note(why),
    }
    let permit = match refusals.writers.clone().try_acquire_owned() {
        Ok(permit) if !tls => permit,
        _ => {
            drop(stream);
            return;
        }
    };
    tokio::spawn(async move {
        let _permit = permit;
        let retry_after = Duration::from_secs(1);
        let (status, problem) = match why {
            Refusal::Full => (
                "503 Service Unavailable",
                Problem::service_unavailable("the server is at its connection limit")
                    .with_retry_after(retry_after),
            ),
            Refusal::PerPeer => (
                "429 Too Many Requests",
                Problem::too_many_requests(retry_after)
                    .with_detail("too many connections from this address")
                    .with_extension("limit", "connections"),
            ),
        };
        let body = problem.to_json();
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let write = async {
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
            stream.shutdown().await
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
    });
}
