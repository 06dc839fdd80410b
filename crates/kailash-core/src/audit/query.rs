//! Reading the trail back: a tenant's newest events, a page at a time.

use async_trait::async_trait;

use super::{AuditError, AuditEvent, MemoryAuditSink};
use crate::tenant::TenantId;

/// The most events one page holds.
pub const MAX_PAGE: usize = 1000;

/// One page of a tenant's trail, newest first.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AuditPage {
    /// The events, newest first.
    pub events: Vec<AuditEvent>,
    /// Pass it as `before` for the next (older) page; `None` on the last.
    pub next_before: Option<u64>,
}

impl AuditPage {
    /// A page of `events` continuing before `next_before`.
    pub fn new(events: Vec<AuditEvent>, next_before: Option<u64>) -> Self {
        Self {
            events,
            next_before,
        }
    }
}

/// A trail that answers queries: the embedded in-memory view
/// ([`MemoryAuditSink`]) or a database shared by every instance.
///
/// ```
/// use kailash_core::audit::{AuditDecision, AuditEvent, AuditQuery, AuditSink, MemoryAuditSink};
/// use kailash_core::tenant::TenantId;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let acme = TenantId::new("acme").unwrap();
/// let sink = MemoryAuditSink::new();
/// for user in ["ann", "bob", "cid"] {
///     sink.record(AuditEvent::new("auth.login", AuditDecision::Success).actor(user).tenant(acme.clone())).await?;
/// }
/// let page = sink.newest(&acme, 2, None).await?;
/// assert_eq!(page.events[0].actor.as_deref(), Some("cid"));
/// let rest = sink.newest(&acme, 2, page.next_before).await?;
/// assert_eq!(rest.events.len(), 1);
/// assert_eq!(rest.next_before, None);
/// let bobs = sink.of_actor(&acme, "bob", 10, None).await?;
/// assert_eq!(bobs.events.len(), 1);
/// # Ok::<(), kailash_core::audit::AuditError>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait AuditQuery: Send + Sync + 'static {
    /// Up to `limit` (at most [`MAX_PAGE`]) of `tenant`'s events, newest
    /// first, older than the cursor `before` when given.
    async fn newest(
        &self,
        tenant: &TenantId,
        limit: usize,
        before: Option<u64>,
    ) -> Result<AuditPage, AuditError>;

    /// The same for the events whose actor is `actor` only: a person's
    /// entries in the tenant's trail (an export for a subject access
    /// request, GDPR article 15).
    async fn of_actor(
        &self,
        tenant: &TenantId,
        actor: &str,
        limit: usize,
        before: Option<u64>,
    ) -> Result<AuditPage, AuditError>;
}

#[async_trait]
impl AuditQuery for MemoryAuditSink {
    /// The cursor is the event's arrival number in this sink (stable while
    /// older events are let go).
    async fn newest(
        &self,
        tenant: &TenantId,
        limit: usize,
        before: Option<u64>,
    ) -> Result<AuditPage, AuditError> {
        Ok(self.page(tenant, None, limit.clamp(1, MAX_PAGE), before))
    }

    async fn of_actor(
        &self,
        tenant: &TenantId,
        actor: &str,
        limit: usize,
        before: Option<u64>,
    ) -> Result<AuditPage, AuditError> {
        Ok(self.page(tenant, Some(actor), limit.clamp(1, MAX_PAGE), before))
    }
}

#[async_trait]
impl<T: AuditQuery + ?Sized> AuditQuery for std::sync::Arc<T> {
    async fn newest(
        &self,
        tenant: &TenantId,
        limit: usize,
        before: Option<u64>,
    ) -> Result<AuditPage, AuditError> {
        (**self).newest(tenant, limit, before).await
    }

    async fn of_actor(
        &self,
        tenant: &TenantId,
        actor: &str,
        limit: usize,
        before: Option<u64>,
    ) -> Result<AuditPage, AuditError> {
        (**self).of_actor(tenant, actor, limit, before).await
    }
}

/// A trail that can erase one person's personal fields (GDPR article 17)
/// without breaking its hash chain: the PostgreSQL trail with sealed
/// personal data (`kailash_postgres::audit::PgAuditSink`). Trails that
/// store personal fields in the chained bytes do not implement it.
#[async_trait]
pub trait AuditErasure: Send + Sync + 'static {
    /// Erases `actor`'s personal fields in `tenant`'s entries, those
    /// accepted before the call included; `Ok(false)` when the trail held
    /// nothing of `actor`.
    ///
    /// # Errors
    /// [`AuditError::Io`] when the trail cannot be reached; nothing is
    /// erased then.
    async fn erase_subject(&self, tenant: &TenantId, actor: &str) -> Result<bool, AuditError>;
}
