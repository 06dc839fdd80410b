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
use kailash_core::usage::UsageMetric;

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

/// Records the open-socket time of `conns` (and of sockets closed since)
/// when the usage interval has passed since the last time, or at once
/// with `force` (shutdown): whole seconds per tenant, the remainder kept
/// for the next time.
pub(super) async fn meter(hub: &HubInner, conns: &[Arc<Conn>], now_ms: u64, force: bool) {
    use std::sync::atomic::Ordering;
    let Some(usage) = &hub.usage else { return };
    let last = usage.flushed_ms.load(Ordering::Relaxed);
    if !force
        && (now_ms.saturating_sub(last) < usage.every_ms
            || usage
                .flushed_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err())
    {
        return;
    }
    for conn in conns {
        usage.add(&conn.tenant, conn.meter(now_ms));
    }
    let due: Vec<(kailash_core::TenantId, u64)> = {
        let mut pending = usage
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pending
            .iter_mut()
            .filter(|(_, ms)| **ms >= 1000)
            .map(|(tenant, ms)| {
                let secs = *ms / 1000;
                *ms %= 1000;
                (tenant.clone(), secs)
            })
            .collect()
    };
    for (tenant, secs) in due {
        if let Err(error) = usage
            .sink
            .record(&tenant, UsageMetric::RealtimeConnectionSeconds, secs)
            .await
        {
            // Kept for the next time rather than lost.
            usage.add(&tenant, secs.saturating_mul(1000));
            tracing::warn!(%error, tenant = %tenant, "realtime usage not metered yet; kept for the next minute");
        }
    }
}

/// One sweep over every connection open now.
pub(super) async fn once(hub: &Arc<HubInner>) {
    let conns = hub.snapshot();
    meter(hub, &conns, hub.now_ms(), false).await;
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
