use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::tenant::TenantId;

use super::{AuditError, AuditEvent, AuditSink, AuditTicket};

/// Keeps events in memory, for tests and for an embedded deployment that
/// answers audit queries without a database.
///
/// Unbounded by default. With [`MemoryAuditSink::with_capacity`] it keeps the
/// newest `n` events and counts what it let go in
/// [`evicted`](MemoryAuditSink::evicted) — pair it with a durable sink when
/// the trail must be complete.
#[derive(Debug, Default)]
pub struct MemoryAuditSink {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    events: VecDeque<AuditEvent>,
    capacity: Option<usize>,
    evicted: u64,
}

impl MemoryAuditSink {
    /// An unbounded sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink holding at most `capacity` (at least 1) newest events.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                capacity: Some(capacity.max(1)),
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, event: AuditEvent) {
        let mut inner = self.lock();
        if inner.capacity.is_some_and(|cap| inner.events.len() >= cap) {
            inner.events.pop_front();
            inner.evicted += 1;
        }
        inner.events.push_back(event);
    }

    /// Adds written events (a durable sink's writer, once per batch).
    pub(crate) fn extend(&self, events: impl Iterator<Item = AuditEvent>) {
        let mut inner = self.lock();
        for event in events {
            if inner.capacity.is_some_and(|cap| inner.events.len() >= cap) {
                inner.events.pop_front();
                inner.evicted += 1;
            }
            inner.events.push_back(event);
        }
    }

    /// All held events, oldest first.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.lock().events.iter().cloned().collect()
    }

    /// Up to `limit` events of `tenant`, newest first.
    pub fn query(&self, tenant: &TenantId, limit: usize) -> Vec<AuditEvent> {
        self.lock()
            .events
            .iter()
            .rev()
            .filter(|e| e.tenant.as_ref() == Some(tenant))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Up to `limit` events of `tenant` (and `actor`) older than arrival number `before`,
    /// newest first, and the cursor of the next page.
    pub(crate) fn page(
        &self,
        tenant: &TenantId,
        actor: Option<&str>,
        limit: usize,
        before: Option<u64>,
    ) -> super::AuditPage {
        let inner = self.lock();
        // Arrival numbers: the oldest held event is `evicted + 1`.
        let first = inner.evicted + 1;
        let end = before.map_or(inner.events.len(), |b| {
            usize::try_from(b.saturating_sub(first))
                .map_or(inner.events.len(), |i| i.min(inner.events.len()))
        });
        let mut events = Vec::new();
        let mut next_before = None;
        for i in (0..end).rev() {
            let event = &inner.events[i];
            if event.tenant.as_ref() != Some(tenant)
                || actor.is_some_and(|a| event.actor.as_deref() != Some(a))
            {
                continue;
            }
            if events.len() == limit {
                next_before = Some(first + i as u64 + 1);
                break;
            }
            events.push(event.clone());
        }
        super::AuditPage::new(events, next_before)
    }

    /// How many events were let go because of the capacity.
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }
}

#[async_trait]
impl AuditSink for MemoryAuditSink {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.push(event);
        Ok(())
    }

    fn try_record(&self, event: AuditEvent) -> Result<AuditTicket, AuditEvent> {
        self.push(event);
        Ok(AuditTicket::ready(Ok(())))
    }

    async fn flush(&self) -> Result<(), AuditError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditDecision;

    #[tokio::test]
    async fn pages_walk_one_tenant_back_to_its_oldest_held_event() {
        use crate::audit::AuditQuery;
        let sink = MemoryAuditSink::with_capacity(10);
        let acme = TenantId::new("acme").unwrap();
        let globex = TenantId::new("globex").unwrap();
        for i in 0..14 {
            let t = if i % 3 == 0 { &globex } else { &acme };
            sink.record(
                AuditEvent::new("x", AuditDecision::Allow)
                    .tenant(t.clone())
                    .resource(format!("r{i}")),
            )
            .await
            .unwrap();
        }
        // Held: r4..r13; acme's are those not divisible by 3.
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = sink.newest(&acme, 3, before).await.unwrap();
            assert!(page.events.len() <= 3);
            seen.extend(page.events.iter().map(|e| e.resource.clone().unwrap()));
            match page.next_before {
                Some(b) => before = Some(b),
                None => break,
            }
        }
        assert_eq!(seen, ["r13", "r11", "r10", "r8", "r7", "r5", "r4"]);
        // A cursor from before the evictions reads what is still held.
        let stale = sink.newest(&acme, 100, Some(2)).await.unwrap();
        assert!(stale.events.is_empty());
    }

    #[tokio::test]
    async fn query_is_tenant_scoped_and_newest_first() {
        let sink = MemoryAuditSink::new();
        let acme = TenantId::new("acme").unwrap();
        let globex = TenantId::new("globex").unwrap();
        for (i, t) in [&acme, &globex, &acme].into_iter().enumerate() {
            sink.record(
                AuditEvent::new("x", AuditDecision::Allow)
                    .tenant(t.clone())
                    .resource(i.to_string()),
            )
            .await
            .unwrap();
        }
        let got: Vec<_> = sink
            .query(&acme, 10)
            .into_iter()
            .map(|e| e.resource.unwrap())
            .collect();
        assert_eq!(got, ["2", "0"]);
    }

    #[tokio::test]
    async fn capacity_keeps_the_newest_and_counts_evictions() {
        let sink = MemoryAuditSink::with_capacity(2);
        for i in 0..3 {
            sink.record(AuditEvent::new("x", AuditDecision::Allow).resource(i.to_string()))
                .await
                .unwrap();
        }
        let kept: Vec<_> = sink
            .events()
            .into_iter()
            .map(|e| e.resource.unwrap())
            .collect();
        assert_eq!(kept, ["1", "2"]);
        assert_eq!(sink.evicted(), 1);
    }
}
