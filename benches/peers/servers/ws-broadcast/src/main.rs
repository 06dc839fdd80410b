//! Baseline peer of `benches/realtime.sh`: the plainest WebSocket broadcast
//! an axum user writes, as the limit the realtime crate is compared with.
//!
//! - axum 0.8 `WebSocketUpgrade` on `GET /ws` (tokio-tungstenite underneath),
//!   the multi-threaded tokio runtime, `TCP_NODELAY` on every connection;
//! - any `Authorization: Bearer` (or none) is accepted: no verification, no
//!   session, no filter; if the client offers the subprotocol `kailash.v1`
//!   it is selected, like the gateway does;
//! - on upgrade the socket subscribes to one `tokio::sync::broadcast`
//!   channel, sends `{"type":"welcome","connection_id","user_id","tenant_id"}`
//!   and then forwards every broadcast frame; one task per socket;
//! - `POST /api/events` `{"channel","event","data","metadata":{"classification"}}` (the gateway's body)
//!   serialises the event frame `{"type":"event","id","channel","event",
//!   "tenant_id","data","metadata":{"classification","required_permission"}}`
//!   **once** and broadcasts the shared bytes (`Utf8Bytes`, reference
//!   counted) to every socket; answers `202 {"id":…,"receivers":…}`.
//!
//! A socket that falls more than `--capacity` frames behind is closed with
//! 4008 (slow consumer): the bench's client counts the frames it missed.
//!
//! ```text
//! peer-ws-broadcast [ADDR] [--capacity N] [--read-buffer BYTES] [--write-buffer BYTES]
//! ```
//!
//! `ADDR` defaults to `127.0.0.1:18190`. Without the buffer flags the
//! WebSocket buffers are tungstenite's defaults (128 KiB read, 128 KiB write
//! buffer size); `--capacity` (broadcast slots) defaults to 1024.
//! Runs until killed.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::broadcast;

struct Hub {
    tx: broadcast::Sender<Utf8Bytes>,
    next_conn: AtomicU64,
    next_event: AtomicU64,
    read_buffer: Option<usize>,
    write_buffer: Option<usize>,
}

#[derive(Deserialize)]
struct Publish {
    channel: String,
    event: String,
    #[serde(default)]
    data: serde_json::Value,
    #[serde(default)]
    metadata: PublishMetadata,
}

/// The gateway's `metadata` member, of which the baseline reads the classification.
#[derive(Deserialize, Default)]
struct PublishMetadata {
    #[serde(default)]
    classification: Option<String>,
}

async fn ws(State(hub): State<Arc<Hub>>, upgrade: WebSocketUpgrade) -> Response {
    let mut upgrade = upgrade.protocols(["kailash.v1"]);
    if let Some(n) = hub.read_buffer {
        upgrade = upgrade.read_buffer_size(n);
    }
    if let Some(n) = hub.write_buffer {
        upgrade = upgrade
            .write_buffer_size(n)
            .max_write_buffer_size(usize::MAX);
    }
    upgrade.on_upgrade(move |socket| serve_socket(hub, socket))
}

async fn serve_socket(hub: Arc<Hub>, mut socket: WebSocket) {
    // Subscribe before the welcome: every event published after the client
    // saw its welcome reaches it.
    let mut rx = hub.tx.subscribe();
    let id = hub.next_conn.fetch_add(1, Ordering::Relaxed);
    let welcome = format!(
        r#"{{"type":"welcome","connection_id":"c{id}","user_id":"baseline","tenant_id":"baseline"}}"#
    );
    if socket.send(Message::Text(welcome.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Ok(text) => {
                    if socket.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame { code: 4008, reason: "slow consumer".into() })))
                        .await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            msg = socket.recv() => match msg {
                // Pings are answered by tungstenite; client frames are ignored.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn publish(State(hub): State<Arc<Hub>>, Json(p): Json<Publish>) -> impl IntoResponse {
    let id = hub.next_event.fetch_add(1, Ordering::Relaxed);
    let frame = serde_json::json!({
        "type": "event",
        "id": id.to_string(),
        "channel": p.channel,
        "event": p.event,
        "tenant_id": "baseline",
        "data": p.data,
        "metadata": {
            "classification": p.metadata.classification.unwrap_or_else(|| "public".to_owned()),
            "required_permission": null,
        },
    });
    // Serialised once; every socket gets a clone of the same bytes.
    let text: Utf8Bytes = frame.to_string().into();
    let receivers = hub.tx.send(text).unwrap_or(0);
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "id": id.to_string(), "receivers": receivers })),
    )
}

struct Args {
    listen: SocketAddr,
    capacity: usize,
    read_buffer: Option<usize>,
    write_buffer: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = "127.0.0.1:18190".to_owned();
    let mut capacity = 1024;
    let (mut read_buffer, mut write_buffer) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<usize, String> {
            let v = args.next().ok_or(format!("{name} needs a value"))?;
            v.parse().map_err(|e| format!("{name} {v:?}: {e}"))
        };
        match a.as_str() {
            "--capacity" => capacity = num("--capacity")?.max(1),
            "--read-buffer" => read_buffer = Some(num("--read-buffer")?),
            "--write-buffer" => write_buffer = Some(num("--write-buffer")?),
            s if !s.starts_with('-') => listen = s.to_owned(),
            s => return Err(format!("unknown flag {s}")),
        }
    }
    Ok(Args {
        listen: listen
            .parse()
            .map_err(|e| format!("listen address {listen:?}: {e}"))?,
        capacity,
        read_buffer,
        write_buffer,
    })
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = parse_args()?;
    let (tx, _) = broadcast::channel(args.capacity);
    let hub = Arc::new(Hub {
        tx,
        next_conn: AtomicU64::new(0),
        next_event: AtomicU64::new(0),
        read_buffer: args.read_buffer,
        write_buffer: args.write_buffer,
    });
    let app = Router::new()
        .route("/ws", get(ws))
        .route("/api/events", post(publish))
        .with_state(hub);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("bind {}: {e}", args.listen))?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .await
        .map_err(|e| format!("serve: {e}"))
}
