//! The accept loop: a real cap on connections, header limits, a header read
//! timeout, optional TLS, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use kailash_core::context::PeerAddr;
use kailash_core::problem::Problem;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

mod settings;

pub(crate) use settings::{Handler, ServerSettings};

fn http_builder(settings: &ServerSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes)
        .max_headers(settings.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .max_pending_accept_reset_streams(64);
    builder
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
    let builder = http_builder(settings);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    // Answering refused connections is itself bounded: past this many at
    // once, a refused connection is simply closed.
    let refusals = Refusals {
        writers: Arc::new(Semaphore::new(MAX_CONCURRENT_REFUSALS)),
        log: RefusalLog::default(),
    };
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let handshake_timeout = settings.header_read_timeout;
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
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuse(stream, acceptor.is_some(), &refusals);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = connection_service(handler.clone(), peer);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        match acceptor.clone() {
            None => {
                tokio::spawn(async move {
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned();
                    if let Err(error) = watcher.watch(conn).await {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    let tls_stream = match tokio::time::timeout(
                        handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder
                        .serve_connection(TokioIo::new(tls_stream), service)
                        .into_owned();
                    if let Err(error) = watcher.watch(conn).await {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
        }
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

fn connection_service(
    handler: Handler,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(PeerAddr(peer));
        let response = handler(req.map(axum::body::Body::new));
        async move { Ok(response.await) }
    })
}

/// Refused connections answered with a 503 at the same time.
const MAX_CONCURRENT_REFUSALS: usize = 64;

struct Refusals {
    writers: Arc<Semaphore>,
    log: RefusalLog,
}

/// Logs refusals at most once a second, with how many there were, so a
/// connection flood cannot also flood the log.
#[derive(Default)]
struct RefusalLog {
    window_start: std::sync::atomic::AtomicU64,
    count: std::sync::atomic::AtomicU64,
}

impl RefusalLog {
    fn note(&self) {
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
            tracing::warn!(
                refused = count,
                "connection limit reached; refusing connections"
            );
        }
    }
}

/// Answers a connection over the cap and closes it, without reading the
/// request: 503 problem+json for plain HTTP, a bare close for TLS (no
/// handshake is spent on it) or when too many refusals are already being
/// written.
fn refuse(mut stream: TcpStream, tls: bool, refusals: &Refusals) {
    refusals.log.note();
    let permit = match refusals.writers.clone().try_acquire_owned() {
        Ok(permit) if !tls => permit,
        _ => {
            drop(stream);
            return;
        }
    };
    tokio::spawn(async move {
        let _permit = permit;
        let body = Problem::service_unavailable("the server is at its connection limit")
            .with_retry_after(Duration::from_secs(1))
            .to_json();
        let head = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
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
