//! The hub's once-a-second sweep: token expiry, idle connections,
//! heartbeats, and session liveness — one task for every socket, no timer
//! per socket.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use kailash_auth::layer::SessionCheckError;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::{Conn, ConnKind, HubInner, Outbound, SWEEP_INTERVAL};
use crate::close::CloseReason;

/// Session checks in flight at once during one sweep.
const CONCURRENT_CHECKS: usize = 32;

pub(super) async fn run(hub: Weak<HubInner>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        once(&hub).await;
    }
}

/// One sweep over every connection open now.
pub(super) async fn once(hub: &Arc<HubInner>) {
    let conns = hub.snapshot();
    let now = hub.clock.now().as_second();
    let now_ms = hub.now_ms();
    let idle_ms = u64::try_from(hub.config.idle_timeout.0.as_millis()).unwrap_or(u64::MAX);
    // Due within half a sweep counts as due: pings keep their interval to
    // the sweep's accuracy instead of slipping a whole sweep now and then.
    let half_sweep = u64::try_from(SWEEP_INTERVAL.as_millis() / 2).unwrap_or(0);
    let ping_ms = u64::try_from(hub.config.heartbeat.0.as_millis())
        .unwrap_or(u64::MAX)
        .saturating_sub(half_sweep);
    // One check per session, however many sockets it has.
    let mut sessions: HashMap<Box<str>, Vec<Arc<Conn>>> = HashMap::new();
    for conn in conns {
        if conn.close_reason().is_some() {
            continue;
        }
        if conn.expires_at() <= now {
            conn.close(CloseReason::TokenExpired, &hub.stats);
            continue;
        }
        if conn.kind == ConnKind::WebSocket && now_ms.saturating_sub(conn.last_seen()) > idle_ms {
            conn.close(CloseReason::IdleTimeout, &hub.stats);
            continue;
        }
        if conn.ping_due(now_ms, ping_ms) {
            conn.offer(Outbound::Ping, &hub.stats);
        }
        let key: Box<str> = conn.principal().session_id().unwrap_or("").into();
        sessions.entry(key).or_default().push(conn);
    }
    let mut checks = JoinSet::new();
    for (_, conns) in sessions {
        if checks.len() >= CONCURRENT_CHECKS {
            checks.join_next().await;
        }
        let hub = hub.clone();
        checks.spawn(async move {
            let principal = conns[0].principal();
            match hub.auth.check_session_live(&principal).await {
                Ok(()) => {}
                Err(SessionCheckError::Unavailable) => {
                    // Fail open for sockets already admitted: a store outage
                    // would otherwise drop every socket at once, and each
                    // reconnect would be refused anyway until it returns.
                }
                Err(_) => {
                    for conn in &conns {
                        conn.close(CloseReason::InvalidSession, &hub.stats);
                    }
                }
            }
        });
    }
    while checks.join_next().await.is_some() {}
}
