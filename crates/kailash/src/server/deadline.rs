//! Connection-level deadlines: one timer per connection, none per request.
//!
//! hyper-util's protocol detection reads the first bytes of a connection
//! with no timeout, and hyper's own HTTP/1 header timeout re-arms a timer for
//! every request and also cuts idle keep-alive at the same length. Instead,
//! each connection carries an [`Activity`] record that its I/O and its
//! requests update with a few atomic operations, and one [`Watchdog`] per
//! connection closes it when a deadline passes:
//!
//! - **first head**: from accept (TLS handshake included) the client has
//!   `header_read_timeout` to deliver a complete first request head (HTTP/1)
//!   or its first request (HTTP/2) — silent sockets are closed;
//! - **later heads** (HTTP/1): from the first byte of a request head,
//!   `header_read_timeout` to complete it (slowloris);
//! - **idle**: with no request in flight (a request counts from its head
//!   until its response body is sent), the connection closes after
//!   `idle_timeout`;
//! - **stalled response**: while a response body waits for the transport
//!   to take its next frame (the client does not read, or an HTTP/2 peer
//!   keeps its flow-control window shut) and the connection's transport
//!   takes no frame of any response for `idle_timeout`, it closes. A body
//!   that is waiting on itself (a stream between events) is not stalled.
//!
//! The watchdog checks the deadlines whenever the connection's task wakes
//! (every I/O event) and when its timer fires. Its timer moves earlier only
//! when a deadline comes before the armed one and is otherwise re-armed
//! when it fires, so a busy keep-alive connection rarely touches it (hyper's
//! header timer was reset on every request). HTTP/2 responses are sent by
//! their own tasks: the end of the last one is noticed at the latest
//! `min(header_read_timeout, idle_timeout)` later.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What every HTTP/2 connection starts with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// `head_since` when no head is being read.
const NO_HEAD: u64 = u64::MAX;

/// The deadlines of a connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    pub(super) header: Duration,
    pub(super) idle: Duration,
}

/// What a connection is doing, shared by its I/O, its requests and its
/// watchdog. Times are milliseconds since `start`.
#[derive(Debug)]
pub(super) struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// When the last request in flight ended (or the connection started).
    idle_since: AtomicU64,
    /// When the head being read began; the connection starts in its first head.
    head_since: AtomicU64,
    /// Response bodies holding a frame for the transport to take (or not
    /// yet asked for their first).
    waiting: AtomicUsize,
    /// When the transport last asked any response body for a frame, or a
    /// body began to wait.
    progress_at: AtomicU64,
}

impl Activity {
    /// A connection accepted at `start`.
    pub(super) fn new(start: Instant) -> Arc<Self> {
        Arc::new(Self {
            start,
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            progress_at: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// A request head is complete: its request is in flight until the
    /// returned guard drops (with the response body).
    pub(super) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        self.head_since.store(NO_HEAD, Relaxed);
        InFlight(self.clone())
    }

    /// HTTP/1 bytes arrived: between requests they start the next head.
    fn on_http1_bytes(&self) {
        if self.in_flight.load(Relaxed) == 0 && self.head_since.load(Relaxed) == NO_HEAD {
            self.head_since.store(self.now_ms(), Relaxed);
        }
    }

    /// A response body starts waiting for the transport.
    fn body_waits(&self) {
        self.progress_at.store(self.now_ms(), Relaxed);
        self.waiting.fetch_add(1, Release);
    }

    /// The transport asked a waiting body for its next frame (or dropped it).
    fn body_taken(&self) {
        self.progress_at.store(self.now_ms(), Relaxed);
        self.waiting.fetch_sub(1, Release);
    }

    /// The current deadline; `None` while requests are in flight and no
    /// response waits on the transport.
    fn deadline(&self, timeouts: &Timeouts) -> Option<Instant> {
        if self.in_flight.load(Acquire) > 0 {
            if self.waiting.load(Acquire) > 0 {
                return Some(self.at(self.progress_at.load(Relaxed)) + timeouts.idle);
            }
            return None;
        }
        match self.head_since.load(Relaxed) {
            NO_HEAD => Some(self.at(self.idle_since.load(Relaxed)) + timeouts.idle),
            head => Some(self.at(head) + timeouts.header),
        }
    }
}

/// A request in flight; dropped with its response body.
#[derive(Debug)]
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // Stamped before the count drops (HTTP/2 bodies end on other
        // threads), so a watchdog that sees no request in flight also sees
        // when the last one ended.
        self.0.idle_since.store(self.0.now_ms(), Relaxed);
        self.0.in_flight.fetch_sub(1, Release);
    }
}

/// A response body that keeps its request in flight until it is sent, and
/// tells the connection's [`Activity`] when it waits for the transport.
pub(super) struct TrackedBody {
    body: axum::body::Body,
    in_flight: InFlight,
    /// Holding a frame the transport has not asked for (or the first).
    waiting: bool,
}

impl TrackedBody {
    pub(super) fn new(body: axum::body::Body, in_flight: InFlight) -> Self {
        in_flight.0.body_waits();
        Self {
            body,
            in_flight,
            waiting: true,
        }
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if self.waiting {
            self.in_flight.0.body_taken();
        }
    }
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if this.waiting {
            this.waiting = false;
            this.in_flight.0.body_taken();
        }
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = polled {
            // The frame goes to the transport; until it asks for the next,
            // a transport that takes nothing stalls this response.
            this.waiting = true;
            this.in_flight.0.body_waits();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Which protocol the connection speaks, learnt from its first bytes the
/// way hyper-util decides it (the HTTP/2 preface, or anything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// This many bytes of the HTTP/2 preface matched so far.
    Unknown(usize),
    Http1,
    Http2,
}

/// The connection's I/O, reporting received bytes to its [`Activity`].
pub(super) struct TrackedIo<T> {
    inner: T,
    activity: Arc<Activity>,
    protocol: Protocol,
}

impl<T> TrackedIo<T> {
    pub(super) fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            protocol: Protocol::Unknown(0),
        }
    }

    fn on_bytes(&mut self, bytes: &[u8]) {
        if let Protocol::Unknown(matched) = self.protocol {
            let n = bytes.len().min(H2_PREFACE.len() - matched);
            self.protocol = if bytes[..n] != H2_PREFACE[matched..matched + n] {
                Protocol::Http1
            } else if matched + n == H2_PREFACE.len() {
                Protocol::Http2
            } else {
                Protocol::Unknown(matched + n)
            };
        }
        // HTTP/2 frames between requests (PING, SETTINGS) start nothing.
        if self.protocol == Protocol::Http1 {
            self.activity.on_http1_bytes();
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && buf.filled().len() > before
        {
            this.on_bytes(&buf.filled()[before..]);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Completes when the connection's deadline has passed.
///
/// Polled after the connection on every wake of the connection's task, it
/// sees each state change; its timer is moved earlier only when the
/// deadline comes before the armed one (a later deadline is picked up when
/// the timer fires), so a busy keep-alive connection rarely touches it.
pub(super) struct Watchdog {
    activity: Arc<Activity>,
    timeouts: Timeouts,
    /// How soon a connection with requests in flight is looked at again.
    recheck: Duration,
    armed: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl Watchdog {
    pub(super) fn new(activity: Arc<Activity>, timeouts: Timeouts) -> Self {
        let first = activity.start + timeouts.header;
        Self {
            activity,
            timeouts,
            recheck: timeouts.header.min(timeouts.idle),
            armed: first,
            sleep: Box::pin(tokio::time::sleep_until(first)),
        }
    }

    fn arm(&mut self, at: Instant) {
        self.armed = at;
        self.sleep.as_mut().reset(at);
    }
}

impl Future for Watchdog {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            // Nothing but an atomic load while a request is in flight.
            let deadline = this.activity.deadline(&this.timeouts);
            if let Some(d) = deadline {
                if d <= Instant::now() {
                    return Poll::Ready(());
                }
                if d < this.armed {
                    this.arm(d);
                }
            }
            if this.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The timer fired for a deadline that has moved on, or while a
            // request was in flight: arm it once for the next look.
            let next = deadline.unwrap_or_else(|| Instant::now() + this.recheck);
            this.arm(next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(30),
        }
    }

    #[tokio::test]
    async fn first_head_deadline_runs_from_accept() {
        let start = Instant::now();
        let activity = Activity::new(start);
        assert_eq!(
            activity.deadline(&timeouts()),
            Some(start + Duration::from_secs(10))
        );
        // HTTP/1 bytes do not move the first head's deadline.
        activity.on_http1_bytes();
        assert_eq!(
            activity.deadline(&timeouts()),
            Some(start + Duration::from_secs(10))
        );
    }

    #[tokio::test]
    async fn requests_in_flight_have_no_deadline_then_idle_then_head() {
        let activity = Activity::new(Instant::now());
        let first = activity.begin();
        let second = activity.begin();
        assert_eq!(activity.deadline(&timeouts()), None);
        drop(first);
        assert_eq!(activity.deadline(&timeouts()), None);
        drop(second);
        let idle = activity.deadline(&timeouts()).unwrap();
        assert!(idle >= activity.start + Duration::from_secs(30));
        assert!(idle <= Instant::now() + Duration::from_secs(30));
        // The next head's first byte starts its own, shorter deadline.
        activity.on_http1_bytes();
        let head = activity.deadline(&timeouts()).unwrap();
        assert!(head >= activity.start + Duration::from_secs(10));
        assert!(head <= Instant::now() + Duration::from_secs(10));
        // A complete head ends it.
        let _third = activity.begin();
        assert_eq!(activity.deadline(&timeouts()), None);
    }

    #[tokio::test]
    async fn a_response_the_transport_does_not_take_has_the_idle_deadline() {
        let activity = Activity::new(Instant::now());
        let body = TrackedBody::new(axum::body::Body::from("x"), activity.begin());
        // Waiting for the transport to ask for its first frame.
        let stalled = activity.deadline(&timeouts()).unwrap();
        assert!(stalled <= Instant::now() + Duration::from_secs(30));
        let mut body = std::pin::pin!(body);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        // Asked and answered: waiting for the next ask.
        assert!(matches!(
            http_body::Body::poll_frame(body.as_mut(), &mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(activity.deadline(&timeouts()).is_some());
        // Asked again, the body is done: nothing waits on the transport.
        assert!(matches!(
            http_body::Body::poll_frame(body.as_mut(), &mut cx),
            Poll::Ready(None)
        ));
        assert_eq!(activity.deadline(&timeouts()), None);
    }

    #[tokio::test]
    async fn a_body_waiting_on_itself_is_not_stalled() {
        let activity = Activity::new(Instant::now());
        /// A stream between events: never ready.
        struct Quiet;
        impl http_body::Body for Quiet {
            type Data = bytes::Bytes;
            type Error = std::convert::Infallible;
            fn poll_frame(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
                Poll::Pending
            }
        }
        let body = TrackedBody::new(axum::body::Body::new(Quiet), activity.begin());
        let mut body = std::pin::pin!(body);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(http_body::Body::poll_frame(body.as_mut(), &mut cx).is_pending());
        assert_eq!(activity.deadline(&timeouts()), None);
    }

    #[test]
    fn protocol_follows_the_preface() {
        let mut io = TrackedIo::new((), Activity::new(Instant::now()));
        io.on_bytes(b"PRI * HT");
        assert_eq!(io.protocol, Protocol::Unknown(8));
        io.on_bytes(b"TP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04");
        assert_eq!(io.protocol, Protocol::Http2);
        let mut io = TrackedIo::new((), Activity::new(Instant::now()));
        io.on_bytes(b"POST / HTTP/1.1\r\n");
        assert_eq!(io.protocol, Protocol::Http1);
    }
}
