//! Runs in the shared state: records, leases, cancellation requests,
//! per-user indexes and concurrency slots.
//!
//! Keys (`t:<tenant>:…` are the tenant's):
//!
//! | key | holds |
//! |---|---|
//! | `t:<tenant>:runtime.run:<run>` | the [`RunRecord`] as JSON, kept `retention_secs` |
//! | `t:<tenant>:runtime.lease:<run>` | the running instance's id, expiring after `lease_secs` unless renewed |
//! | `t:<tenant>:runtime.cancel:<run>` | a cancellation request (any instance may write it) |
//! | `t:<tenant>:runtime.runs:<subject>` | bounded set: the user's runs, newest kept |
//! | `g:runtime.slots:process:<instance>` | bounded set: the instance's running runs |
//! | `t:<tenant>:runtime.slots:tenant` | bounded set: the tenant's running runs |
//! | `t:<tenant>:runtime.slots:user:<subject>` | bounded set: the user's running runs |
//!
//! A slot is a set member expiring with the run's lease and renewed with
//! it, so a dead instance's slots free themselves.

use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use kailash_core::TenantId;
use kailash_core::state::{Namespace, SharedState, StateError, StateKey, WhenFull};

use crate::executor::{RunRecord, RunStatus};
use crate::runtime::config::ConcurrencyLimits;
use crate::runtime::error::RuntimeError;

const RUN: Namespace = Namespace::new("runtime.run");
const LEASE: Namespace = Namespace::new("runtime.lease");
const CANCEL: Namespace = Namespace::new("runtime.cancel");
const RUNS: Namespace = Namespace::new("runtime.runs");
const SLOTS: Namespace = Namespace::new("runtime.slots");
/// The pub/sub topic cancellation requests go out on (`g:runtime.cancel:all`).
const CANCEL_TOPIC: Namespace = Namespace::new("runtime.cancel");

pub(crate) fn cancel_topic() -> StateKey {
    StateKey::global(CANCEL_TOPIC, "all")
}

/// Runs in one shared state.
#[derive(Debug, Clone)]
pub(crate) struct Runs {
    pub(crate) state: SharedState,
    pub(crate) instance: String,
    pub(crate) lease: Duration,
    pub(crate) retention: Duration,
    pub(crate) max_per_user: usize,
}

fn run_key(tenant: &TenantId, run: &str) -> StateKey {
    StateKey::tenant(tenant, RUN, run)
}

fn lease_key(tenant: &TenantId, run: &str) -> StateKey {
    StateKey::tenant(tenant, LEASE, run)
}

fn cancel_key(tenant: &TenantId, run: &str) -> StateKey {
    StateKey::tenant(tenant, CANCEL, run)
}

fn index_key(tenant: &TenantId, subject: &str) -> StateKey {
    StateKey::tenant(tenant, RUNS, subject)
}

/// The slots a run holds: the scope name, its set and its limit.
pub(crate) struct Slots(Vec<(&'static str, StateKey, usize)>);

fn encode(record: &RunRecord) -> Result<Bytes, RuntimeError> {
    serde_json::to_vec(record)
        .map(Bytes::from)
        .map_err(|e| RuntimeError::State(StateError::Corrupt(e.to_string())))
}

fn decode(raw: &[u8]) -> Result<RunRecord, RuntimeError> {
    serde_json::from_slice(raw).map_err(|e| RuntimeError::State(StateError::Corrupt(e.to_string())))
}

fn after(now: Timestamp, d: Duration) -> Timestamp {
    now.checked_add(d).unwrap_or(Timestamp::MAX)
}

impl Runs {
    fn now(&self) -> Timestamp {
        self.state.clock.now()
    }

    /// The slots a run of `subject` in `tenant` needs under `limits`.
    pub(crate) fn slots(
        &self,
        limits: &ConcurrencyLimits,
        tenant: &TenantId,
        subject: &str,
    ) -> Slots {
        let mut slots = Vec::with_capacity(3);
        if let Some(max) = limits.process {
            let key = StateKey::global(SLOTS, &format!("process:{}", self.instance));
            slots.push(("process", key, max));
        }
        if let Some(max) = limits.tenant {
            slots.push(("tenant", StateKey::tenant(tenant, SLOTS, "tenant"), max));
        }
        if let Some(max) = limits.user {
            let key = StateKey::tenant(tenant, SLOTS, &format!("user:{subject}"));
            slots.push(("user", key, max));
        }
        Slots(slots)
    }

    /// Takes a slot in every scope for `run`, or none: a full scope gives
    /// back the slots taken before it.
    pub(crate) async fn acquire(&self, slots: &Slots, run: &str) -> Result<(), RuntimeError> {
        let expires = after(self.now(), self.lease);
        for (i, (scope, key, max)) in slots.0.iter().enumerate() {
            let taken = self
                .state
                .sets
                .insert(key, run, expires, *max, WhenFull::Reject)
                .await;
            let refusal = match taken {
                Ok(t) if t.inserted => continue,
                Ok(_) => RuntimeError::Concurrency { scope, max: *max },
                Err(e) => RuntimeError::State(e),
            };
            for (_, key, _) in &slots.0[..i] {
                let _ = self.state.sets.remove(key, run).await;
            }
            return Err(refusal);
        }
        Ok(())
    }

    /// Moves the expiry of `run`'s slots and lease forward by one lease.
    /// Returns whether the lease was still held.
    pub(crate) async fn renew(
        &self,
        tenant: &TenantId,
        slots: &Slots,
        run: &str,
    ) -> Result<bool, StateError> {
        let expires = after(self.now(), self.lease);
        for (scope, key, max) in &slots.0 {
            let kept = self
                .state
                .sets
                .insert(key, run, expires, *max, WhenFull::Reject)
                .await?;
            if !kept.inserted {
                // The slot lapsed and the scope filled meanwhile: the run
                // goes on, over the limit until it ends.
                tracing::warn!(run, scope, "a run's concurrency slot lapsed and was taken");
            }
        }
        // The record lives `retention` past its last renewal, so a run
        // whose nodes take longer than that never loses it mid-run.
        self.state
            .kv
            .expire(&run_key(tenant, run), self.retention)
            .await?;
        self.state
            .kv
            .expire(&lease_key(tenant, run), self.lease)
            .await
    }

    /// Takes `run`'s lease for this instance: at its start, or again after it
    /// lapsed while the run went on.
    pub(crate) async fn retake_lease(
        &self,
        tenant: &TenantId,
        run: &str,
    ) -> Result<(), StateError> {
        self.state
            .kv
            .set(
                &lease_key(tenant, run),
                Bytes::from(self.instance.clone()),
                Some(self.lease),
            )
            .await
    }

    /// Gives `run`'s slots back.
    pub(crate) async fn release(&self, slots: &Slots, run: &str) {
        for (scope, key, _) in &slots.0 {
            if let Err(error) = self.state.sets.remove(key, run).await {
                // The slot expires with its lease anyway.
                tracing::warn!(%error, run, scope, "could not release a concurrency slot");
            }
        }
    }

    /// Stores a new run's record, its lease and its index entry.
    pub(crate) async fn insert(
        &self,
        record: &RunRecord,
        tenant: &TenantId,
    ) -> Result<(), RuntimeError> {
        self.retake_lease(tenant, &record.run_id).await?;
        self.save(record, tenant).await?;
        self.state
            .sets
            .insert(
                &index_key(tenant, &record.subject),
                &record.run_id,
                after(self.now(), self.retention),
                self.max_per_user,
                WhenFull::EvictOldest,
            )
            .await?;
        Ok(())
    }

    /// Overwrites a run's record (its status moved on).
    pub(crate) async fn save(
        &self,
        record: &RunRecord,
        tenant: &TenantId,
    ) -> Result<(), RuntimeError> {
        let bytes = encode(record)?;
        self.state
            .kv
            .set(
                &run_key(tenant, &record.run_id),
                bytes,
                Some(self.retention),
            )
            .await?;
        Ok(())
    }

    /// Ends a run's lease and any cancellation request for it.
    pub(crate) async fn end_lease(&self, tenant: &TenantId, run: &str) {
        let _ = self.state.kv.delete(&lease_key(tenant, run)).await;
        let _ = self.state.kv.delete(&cancel_key(tenant, run)).await;
    }

    /// A run's record; a run still `pending`/`running` whose lease lapsed
    /// is marked `abandoned` first (once, by compare-and-swap).
    pub(crate) async fn load(
        &self,
        tenant: &TenantId,
        run: &str,
    ) -> Result<Option<RunRecord>, RuntimeError> {
        let key = run_key(tenant, run);
        let Some(raw) = self.state.kv.get(&key).await? else {
            return Ok(None);
        };
        let mut record = decode(&raw)?;
        if record.status.is_final() || self.state.kv.get(&lease_key(tenant, run)).await?.is_some() {
            return Ok(Some(record));
        }
        record.status = RunStatus::Abandoned;
        record.reason = Some("the instance running it stopped renewing its lease".to_owned());
        record.finished_at = Some(self.now());
        let marked = encode(&record)?;
        if !self
            .state
            .kv
            .compare_and_swap(&key, Some(&raw), Some(marked), Some(self.retention))
            .await?
        {
            // It moved on meanwhile (the run ended, or another reader
            // marked it): read what is there now.
            return match self.state.kv.get(&key).await? {
                Some(raw) => decode(&raw).map(Some),
                None => Ok(None),
            };
        }
        Ok(Some(record))
    }

    /// The ids of `subject`'s runs, newest first.
    pub(crate) async fn index(
        &self,
        tenant: &TenantId,
        subject: &str,
    ) -> Result<Vec<String>, RuntimeError> {
        let mut members = self.state.sets.members(&index_key(tenant, subject)).await?;
        // Soonest-expiring first is oldest first: every entry has the same
        // retention.
        members.reverse();
        Ok(members.into_iter().map(|m| m.member).collect())
    }

    /// Asks for `run` to be cancelled, wherever it runs.
    pub(crate) async fn request_cancel(
        &self,
        tenant: &TenantId,
        run: &str,
    ) -> Result<(), RuntimeError> {
        self.state
            .kv
            .set(
                &cancel_key(tenant, run),
                Bytes::from_static(b"1"),
                Some(self.retention),
            )
            .await?;
        let message = format!("{tenant}\n{run}");
        if let Err(error) = self
            .state
            .pubsub
            .publish(&cancel_topic(), Bytes::from(message))
            .await
        {
            // The running instance also reads the request at its next
            // lease renewal.
            tracing::warn!(%error, run, "could not broadcast a cancellation");
        }
        Ok(())
    }

    /// Whether a cancellation of `run` was asked for.
    pub(crate) async fn cancel_requested(
        &self,
        tenant: &TenantId,
        run: &str,
    ) -> Result<bool, StateError> {
        Ok(self.state.kv.get(&cancel_key(tenant, run)).await?.is_some())
    }
}
