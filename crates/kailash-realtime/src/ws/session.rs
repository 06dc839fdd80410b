//! One connection's task: welcome, then writing queued events and
//! answering client frames until something closes it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use kailash_core::Principal;

use crate::close::CloseReason;
use crate::event::EventId;
use crate::hub::{Conn, ConnKind, Hub, Outbound};
use crate::protocol::{self, ClientFrame, ErrorCode, parse_client_frame};
use crate::stats::RealtimeStats;

/// How long the tenant's bus subscription may take before the connection
/// gives up (1011).
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a close frame may take to write to a stalled client.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// A random connection id (128 bits, hex).
pub(crate) fn new_id() -> Option<Arc<str>> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    let mut id = String::with_capacity(32);
    for b in bytes {
        id.push(char::from_digit(u32::from(b >> 4), 16)?);
        id.push(char::from_digit(u32::from(b & 15), 16)?);
    }
    Some(Arc::from(id))
}

/// Sends the close frame and waits (bounded) for the client's answer, so
/// frames the client was still sending (pongs) do not meet a reset socket.
async fn close(socket: &mut WebSocket, reason: CloseReason) {
    let frame = Message::Close(Some(CloseFrame {
        code: reason.code(),
        reason: Utf8Bytes::from_static(reason.text()),
    }));
    let handshake = async {
        if socket.send(frame).await.is_err() {
            return;
        }
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, handshake).await;
}

/// Unregisters the connection however the task ends.
struct Registered<'a> {
    hub: &'a Hub,
    conn: &'a Conn,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.hub.unregister(self.conn);
    }
}

pub(super) async fn run(hub: Hub, mut socket: WebSocket, outcome: Result<Principal, CloseReason>) {
    let stats = hub.inner.stats.clone();
    let registered = outcome.and_then(|principal| {
        let id = new_id().ok_or(CloseReason::Unavailable)?;
        hub.register(id, ConnKind::WebSocket, principal)
    });
    let (conn, mut rx, mut ready) = match registered {
        Ok(r) => r,
        Err(reason) => {
            stats.closed(reason);
            close(&mut socket, reason).await;
            return;
        }
    };
    let _registered = Registered {
        hub: &hub,
        conn: &conn,
    };
    let live = tokio::time::timeout(READY_TIMEOUT, ready.wait_for(|r| *r))
        .await
        .is_ok_and(|r| r.is_ok());
    if !live {
        conn.close(CloseReason::Unavailable, &stats);
    } else {
        let welcome = protocol::welcome(&conn.id, &conn.user, conn.tenant.as_str());
        if socket.send(Message::Text(welcome)).await.is_err() {
            return;
        }
        serve(&hub, &conn, &mut socket, &mut rx).await;
    }
    if let Some(reason) = conn.close_reason() {
        close(&mut socket, reason).await;
    }
}

/// Sends `message` unless the hub closes the connection first; `false`
/// when the connection is done.
async fn send(socket: &mut WebSocket, conn: &Conn, message: Message) -> bool {
    tokio::select! {
        biased;
        () = conn.closing.notified() => false,
        sent = socket.send(message) => sent.is_ok(),
    }
}

fn too_big(error: axum::Error) -> bool {
    matches!(
        error
            .into_inner()
            .downcast::<tokio_tungstenite::tungstenite::Error>()
            .map(|e| *e),
        Ok(tokio_tungstenite::tungstenite::Error::Capacity(_))
    )
}

async fn serve(
    hub: &Hub,
    conn: &Arc<Conn>,
    socket: &mut WebSocket,
    rx: &mut tokio::sync::mpsc::Receiver<Outbound>,
) {
    // Live events already replayed by a `resume` are not sent twice.
    let mut replayed_up_to: Option<EventId> = None;
    loop {
        // A close may have consumed the wake-up inside `send`.
        if conn.close_reason().is_some() {
            return;
        }
        tokio::select! {
            biased;
            () = conn.closing.notified() => return,
            out = rx.recv() => {
                let message = match out {
                    Some(Outbound::Event(id, _)) if replayed_up_to.is_some_and(|r| id <= r) => continue,
                    Some(Outbound::Event(_, frame)) => Message::Text(frame),
                    Some(Outbound::Ping) => Message::Ping(Bytes::new()),
                    None => return,
                };
                if !send(socket, conn, message).await {
                    return;
                }
            }
            incoming = socket.recv() => {
                let message = match incoming {
                    None => return,
                    Some(Err(e)) => {
                        if too_big(e) {
                            conn.close(CloseReason::MessageTooBig, &hub.inner.stats);
                        }
                        return;
                    }
                    Some(Ok(m)) => m,
                };
                conn.seen(hub.now_ms());
                let reply = match message {
                    Message::Text(text) => {
                        on_frame(hub, conn, socket, text.as_bytes(), &mut replayed_up_to).await
                    }
                    Message::Binary(_) => Some(protocol::error(ErrorCode::BinaryNotSupported)),
                    Message::Ping(_) | Message::Pong(_) => None,
                    Message::Close(_) => return,
                };
                if let Some(reply) = reply
                    && !send(socket, conn, Message::Text(reply)).await
                {
                    return;
                }
            }
        }
    }
}

/// Answers one client frame; `None` when everything was sent already.
async fn on_frame(
    hub: &Hub,
    conn: &Arc<Conn>,
    socket: &mut WebSocket,
    bytes: &[u8],
    replayed_up_to: &mut Option<EventId>,
) -> Option<Utf8Bytes> {
    let frame = match parse_client_frame(bytes) {
        Ok(f) => f,
        Err(code) => return Some(protocol::error(code)),
    };
    let inner = &hub.inner;
    match frame {
        ClientFrame::Subscribe { channel } => {
            let allowed = match inner.channels.required(&channel) {
                None => false,
                Some(None) => true,
                Some(Some(permission)) => inner.access.as_ref().is_some_and(|access| {
                    let principal = conn.principal();
                    access
                        .decide(&access.request(&principal, permission, None))
                        .allowed
                }),
            };
            Some(if !allowed {
                protocol::error(ErrorCode::Forbidden)
            } else if conn.subscribe(&channel, inner.config.max_subscriptions) {
                protocol::subscribed(&channel)
            } else {
                protocol::error(ErrorCode::TooManySubscriptions)
            })
        }
        ClientFrame::Unsubscribe { channel } => {
            conn.unsubscribe(&channel);
            Some(protocol::unsubscribed(&channel))
        }
        ClientFrame::Refresh { token } => Some(match inner.auth.authenticate(&token).await {
            Ok(p) if p.subject() == &*conn.user && p.tenant() == Some(&conn.tenant) => {
                let expires = p.expires_at().map(|t| t.as_second());
                conn.refresh(p);
                protocol::refreshed(expires)
            }
            Ok(_) => protocol::error(ErrorCode::WrongUser),
            Err(_) => protocol::error(ErrorCode::InvalidToken),
        }),
        ClientFrame::Resume { since } => {
            let replay = match inner
                .bus
                .replay(&conn.tenant, since, inner.config.history_size)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "realtime: history unavailable for a resume");
                    RealtimeStats::add(&inner.stats.bus_errors, 1);
                    return Some(protocol::error(ErrorCode::Unavailable));
                }
            };
            for delivery in &replay.deliveries {
                *replayed_up_to = Some(delivery.id);
                if !inner.admits(conn, delivery) {
                    continue;
                }
                if !send(socket, conn, Message::Text(delivery.frame.clone())).await {
                    return None;
                }
                RealtimeStats::add(&inner.stats.sent, 1);
            }
            Some(protocol::resumed(replay.recovered))
        }
    }
}
