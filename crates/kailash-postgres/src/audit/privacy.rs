//! Personal fields sealed per person, so a person's data can be erased
//! from a hash-chained trail without rewriting a row (crypto-shredding).
//!
//! With [`PersonalData`] on (`PgAuditOptions::personal_data`), each entry's
//! personal fields — the **actor** and the **client address** — are sealed
//! (AES-256-GCM, [`kailash_core::envelope`]) under a data key of that
//! person in that tenant, before the entry is chained. The chained line
//! holds only the ciphertext (`actor: "~1.<base64url>"`, no `ip`), and the
//! row's `actor` column holds the data key's random id, so one person's
//! rows are still found by an index. The data key is stored outside the
//! trail, wrapped by a key-encryption key from a [`KeyProvider`], beside a
//! keyed pseudonym of (tenant, actor) that finds it.
//!
//! * **Access (GDPR art. 15)**: reads (`/api/audit`, the per-user export)
//!   unseal with the person's key; the export finds the rows by the key id.
//! * **Erasure (art. 17)**: [`PgAuditSink::erase_subject`](super::PgAuditSink::erase_subject)
//!   deletes the key row. Every entry sealed under it now reads with no
//!   actor and no address; the chain, the checkpoints and `verify` are
//!   untouched because no chained byte changed. The row's key id links
//!   to nothing any more. A later event of the same person gets a new key.
//! * **Rotation**: a new active KEK in the provider; the sink re-wraps the
//!   stored data keys (hourly, and [`rewrap`] on demand). Chained rows are
//!   never rewritten.
//!
//! What is *not* sealed: the tenant, the action, the resource, the reason,
//! the request and trace ids (they name what happened, not who); entries
//! without an actor keep their client address in clear (there is no person
//! to key it to; retention removes them). Entries written before the
//! feature was on stay as written until retention drops them.

use std::collections::HashMap;
use std::sync::Arc;

use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use kailash_core::audit::AuditEvent;
use kailash_core::envelope::{DataKey, EnvelopeError, KeyProvider, WrappedKey};
use kailash_core::tenant::TenantId;
use tokio_postgres::GenericClient;

use crate::db::{Database, DbError};

/// The prefix of a sealed actor in a chained line.
const SEALED_PREFIX: &str = "~1.";
/// Bytes of a data key's id.
const KEY_ID_LEN: usize = 16;
/// The wrapping context of the pseudonym key.
const INDEX_CONTEXT: &[u8] = b"kailash-audit-index-v1";
/// Bytes of a sealed actor's plaintext at most (an actor is bounded by
/// the entry format; this bounds what a read will open).
const MAX_SEALED: usize = 4096;

fn key_context(key_id: &[u8], subject: &[u8]) -> Vec<u8> {
    let mut out = b"kailash-audit-subject-v1\0".to_vec();
    out.extend_from_slice(key_id);
    out.extend_from_slice(subject);
    out
}

fn seal_context(key_id: &[u8]) -> Vec<u8> {
    let mut out = b"kailash-audit-actor-v1\0".to_vec();
    out.extend_from_slice(key_id);
    out
}

fn envelope(e: EnvelopeError) -> DbError {
    DbError::Corrupt(format!("audit personal data: {e}"))
}

/// What a sealed actor holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Personal {
    a: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip: Option<std::net::IpAddr>,
}

/// Seals audit entries' personal fields per person; see the module docs.
pub struct PersonalData {
    provider: Arc<dyn KeyProvider>,
    index: DataKey,
}

impl std::fmt::Debug for PersonalData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonalData")
            .field("active_kek", &self.provider.active_id())
            .finish_non_exhaustive()
    }
}

impl PersonalData {
    /// Loads (or, the first time, creates) the pseudonym key in `db`,
    /// wrapped by `provider`'s active KEK. The tables must exist (the
    /// sink's start creates them). A provider that lacks the KEK the
    /// stored key names stops the start with [`DbError::Corrupt`].
    pub async fn open(db: &Database, provider: Arc<dyn KeyProvider>) -> Result<Self, DbError> {
        let q = |e: tokio_postgres::Error| DbError::query(&e);
        let conn = db.get().await?;
        let select = "SELECT kek_id, wrapped FROM kailash_audit_privacy WHERE id = 1";
        let row = match conn.query_opt(select, &[]).await.map_err(q)? {
            Some(row) => row,
            None => {
                let fresh = DataKey::generate().map_err(envelope)?;
                let wrapped = provider
                    .wrap(&fresh, INDEX_CONTEXT)
                    .await
                    .map_err(envelope)?;
                conn.execute(
                    "INSERT INTO kailash_audit_privacy (id, kek_id, wrapped) VALUES (1, $1, $2) \
                     ON CONFLICT (id) DO NOTHING",
                    &[&wrapped.kek_id, &wrapped.bytes],
                )
                .await
                .map_err(q)?;
                // Another instance may have won the insert: use its key.
                conn.query_one(select, &[]).await.map_err(q)?
            }
        };
        let wrapped = WrappedKey {
            kek_id: row.get(0),
            bytes: row.get(1),
        };
        let index = provider
            .unwrap(&wrapped, INDEX_CONTEXT)
            .await
            .map_err(envelope)?;
        Ok(Self { provider, index })
    }

    /// The keyed pseudonym of `actor` in `tenant`.
    fn subject(&self, tenant: Option<&TenantId>, actor: &str) -> [u8; 32] {
        let tenant = tenant.map_or("", |t| t.as_str());
        let mut msg = Vec::with_capacity(tenant.len() + actor.len() + 2);
        msg.extend_from_slice(tenant.as_bytes());
        msg.push(0);
        msg.extend_from_slice(actor.as_bytes());
        self.index.mac(&msg)
    }

    /// Copies of `events` with their personal fields sealed, and the value
    /// of each row's `actor` column (the key id). Runs inside the append's
    /// transaction: missing keys are created there, and existing ones are
    /// read `FOR SHARE`, so an erasure waits for the batch instead of
    /// deleting a key the batch is about to use.
    pub(crate) async fn seal_batch(
        &self,
        tx: &impl GenericClient,
        events: &[AuditEvent],
    ) -> Result<(Vec<AuditEvent>, Vec<Option<String>>), DbError> {
        let q = |e: tokio_postgres::Error| DbError::query(&e);
        let mut subjects: HashMap<[u8; 32], Option<([u8; KEY_ID_LEN], DataKey)>> = HashMap::new();
        let mut of_event = Vec::with_capacity(events.len());
        for event in events {
            let subject = event
                .actor
                .as_deref()
                .map(|a| self.subject(event.tenant.as_ref(), a));
            if let Some(s) = subject {
                subjects.entry(s).or_insert(None);
            }
            of_event.push(subject);
        }
        if !subjects.is_empty() {
            let wanted: Vec<&[u8]> = subjects.keys().map(<[u8; 32]>::as_slice).collect();
            let rows = tx
                .query(
                    "SELECT subject, key_id, kek_id, wrapped FROM kailash_audit_subject_key \
                     WHERE subject = ANY($1) FOR SHARE",
                    &[&wanted],
                )
                .await
                .map_err(q)?;
            for row in rows {
                let subject: [u8; 32] = row
                    .get::<_, &[u8]>(0)
                    .try_into()
                    .map_err(|_| DbError::Corrupt("a subject pseudonym is not 32 bytes".into()))?;
                let key_id: [u8; KEY_ID_LEN] = row
                    .get::<_, &[u8]>(1)
                    .try_into()
                    .map_err(|_| DbError::Corrupt("a data key id is not 16 bytes".into()))?;
                let wrapped = WrappedKey {
                    kek_id: row.get(2),
                    bytes: row.get(3),
                };
                let key = self
                    .provider
                    .unwrap(&wrapped, &key_context(&key_id, &subject))
                    .await
                    .map_err(envelope)?;
                subjects.insert(subject, Some((key_id, key)));
            }
            let (mut ids, mut subs, mut keks, mut wraps) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (subject, slot) in &mut subjects {
                if slot.is_some() {
                    continue;
                }
                let mut key_id = [0u8; KEY_ID_LEN];
                getrandom::fill(&mut key_id)
                    .map_err(|_| DbError::Corrupt("the system random source failed".into()))?;
                let key = DataKey::generate().map_err(envelope)?;
                let wrapped = self
                    .provider
                    .wrap(&key, &key_context(&key_id, subject))
                    .await
                    .map_err(envelope)?;
                ids.push(key_id.to_vec());
                subs.push(subject.to_vec());
                keks.push(wrapped.kek_id);
                wraps.push(wrapped.bytes);
                *slot = Some((key_id, key));
            }
            if !ids.is_empty() {
                let now = jiff::Timestamp::now().as_millisecond();
                tx.execute(
                    "INSERT INTO kailash_audit_subject_key (key_id, subject, kek_id, wrapped, created_ms) \
                     SELECT k, s, e, w, $5 FROM UNNEST($1::bytea[], $2::bytea[], $3::text[], $4::bytea[]) AS t(k, s, e, w)",
                    &[&ids, &subs, &keks, &wraps, &now],
                )
                .await
                .map_err(q)?;
            }
        }
        let mut sealed = Vec::with_capacity(events.len());
        let mut columns = Vec::with_capacity(events.len());
        let mut json = Vec::with_capacity(128);
        for (event, subject) in events.iter().zip(of_event) {
            let mut event = event.clone();
            let column = match (subject, event.actor.take()) {
                (Some(subject), Some(actor)) => {
                    let Some(Some((key_id, key))) = subjects.get(&subject) else {
                        return Err(DbError::Corrupt("a data key went missing".into()));
                    };
                    json.clear();
                    serde_json::to_writer(
                        &mut json,
                        &Personal {
                            a: actor,
                            ip: event.client_ip.take(),
                        },
                    )
                    .map_err(|e| DbError::Corrupt(e.to_string()))?;
                    let ct = key.seal(&json, &seal_context(key_id)).map_err(envelope)?;
                    let mut blob = Vec::with_capacity(KEY_ID_LEN + ct.len());
                    blob.extend_from_slice(key_id);
                    blob.extend_from_slice(&ct);
                    event.actor = Some(format!("{SEALED_PREFIX}{}", BASE64URL_NOPAD.encode(&blob)));
                    Some(HEXLOWER.encode(key_id))
                }
                (_, actor) => {
                    event.actor = actor;
                    None
                }
            };
            sealed.push(event);
            columns.push(column);
        }
        Ok((sealed, columns))
    }

    /// Unseals the personal fields of `events` in place. An entry whose
    /// key was erased reads with no actor and no address; one that does
    /// not open under its key is [`DbError::Corrupt`] (altered).
    pub(crate) async fn reveal(
        &self,
        conn: &impl GenericClient,
        events: &mut [(i64, AuditEvent)],
    ) -> Result<(), DbError> {
        let mut ids: Vec<Vec<u8>> = Vec::new();
        let mut blobs = Vec::with_capacity(events.len());
        for (seq, event) in events.iter() {
            let blob = match event
                .actor
                .as_deref()
                .and_then(|a| a.strip_prefix(SEALED_PREFIX))
            {
                Some(text) if text.len() <= MAX_SEALED => {
                    let blob = BASE64URL_NOPAD
                        .decode(text.as_bytes())
                        .ok()
                        .filter(|b| b.len() > KEY_ID_LEN)
                        .ok_or_else(|| {
                            DbError::Corrupt(format!("entry {seq}: a sealed actor does not decode"))
                        })?;
                    if !ids.iter().any(|id| id[..] == blob[..KEY_ID_LEN]) {
                        ids.push(blob[..KEY_ID_LEN].to_vec());
                    }
                    Some(blob)
                }
                Some(_) => {
                    return Err(DbError::Corrupt(format!(
                        "entry {seq}: a sealed actor is too long"
                    )));
                }
                None => None,
            };
            blobs.push(blob);
        }
        if ids.is_empty() {
            return Ok(());
        }
        let rows = conn
            .query(
                "SELECT key_id, subject, kek_id, wrapped FROM kailash_audit_subject_key WHERE key_id = ANY($1)",
                &[&ids],
            )
            .await
            .map_err(|e| DbError::query(&e))?;
        let mut keys: HashMap<Vec<u8>, DataKey> = HashMap::with_capacity(rows.len());
        for row in rows {
            let key_id: Vec<u8> = row.get(0);
            let subject: &[u8] = row.get(1);
            let wrapped = WrappedKey {
                kek_id: row.get(2),
                bytes: row.get(3),
            };
            let key = self
                .provider
                .unwrap(&wrapped, &key_context(&key_id, subject))
                .await
                .map_err(envelope)?;
            keys.insert(key_id, key);
        }
        for ((seq, event), blob) in events.iter_mut().zip(blobs) {
            let Some(blob) = blob else { continue };
            let (key_id, ct) = blob.split_at(KEY_ID_LEN);
            match keys.get(key_id) {
                None => {
                    // Erased: nothing personal remains readable.
                    event.actor = None;
                    event.client_ip = None;
                }
                Some(key) => {
                    let plain = key.open(ct, &seal_context(key_id)).map_err(|_| {
                        DbError::Corrupt(format!(
                            "entry {seq}: its personal fields do not open (altered?)"
                        ))
                    })?;
                    let personal: Personal = serde_json::from_slice(&plain).map_err(|_| {
                        DbError::Corrupt(format!("entry {seq}: its personal fields do not decode"))
                    })?;
                    event.actor = Some(personal.a);
                    event.client_ip = personal.ip;
                }
            }
        }
        Ok(())
    }

    /// The `actor` column values of `actor`'s rows in `tenant`: the key
    /// id of their live data key, and the plain actor for rows written
    /// before sealing was on.
    pub(crate) async fn actor_columns(
        &self,
        conn: &impl GenericClient,
        tenant: Option<&TenantId>,
        actor: &str,
    ) -> Result<Vec<String>, DbError> {
        let subject = self.subject(tenant, actor);
        let row = conn
            .query_opt(
                "SELECT key_id FROM kailash_audit_subject_key WHERE subject = $1",
                &[&subject.as_slice()],
            )
            .await
            .map_err(|e| DbError::query(&e))?;
        let mut out = vec![actor.to_owned()];
        if let Some(row) = row {
            out.push(HEXLOWER.encode(row.get::<_, &[u8]>(0)));
        }
        Ok(out)
    }

    /// Deletes the data key of `actor` in `tenant`; `true` when there was
    /// one. Waits for a batch that is using the key to commit first.
    pub(crate) async fn erase(
        &self,
        db: &Database,
        tenant: Option<&TenantId>,
        actor: &str,
    ) -> Result<bool, DbError> {
        let subject = self.subject(tenant, actor);
        let conn = db.get().await?;
        let n = conn
            .execute(
                "DELETE FROM kailash_audit_subject_key WHERE subject = $1",
                &[&subject.as_slice()],
            )
            .await
            .map_err(|e| DbError::query(&e))?;
        Ok(n > 0)
    }

    /// Re-wraps stored keys that are not under the active KEK, at most
    /// `limit` data keys per call; how many moved. Chained rows are not
    /// touched.
    pub async fn rewrap(&self, db: &Database, limit: usize) -> Result<u64, DbError> {
        let q = |e: tokio_postgres::Error| DbError::query(&e);
        let active = self.provider.active_id();
        let conn = db.get().await?;
        let mut moved = 0;
        if let Some(row) = conn
            .query_opt(
                "SELECT kek_id, wrapped FROM kailash_audit_privacy WHERE id = 1 AND kek_id <> $1",
                &[&active],
            )
            .await
            .map_err(q)?
        {
            let old = WrappedKey {
                kek_id: row.get(0),
                bytes: row.get(1),
            };
            if let Some(new) = self
                .provider
                .rewrap(&old, INDEX_CONTEXT)
                .await
                .map_err(envelope)?
            {
                moved += conn
                    .execute(
                        "UPDATE kailash_audit_privacy SET kek_id = $1, wrapped = $2 \
                         WHERE id = 1 AND kek_id = $3",
                        &[&new.kek_id, &new.bytes, &old.kek_id],
                    )
                    .await
                    .map_err(q)?;
            }
        }
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let rows = conn
            .query(
                "SELECT key_id, subject, kek_id, wrapped FROM kailash_audit_subject_key \
                 WHERE kek_id <> $1 LIMIT $2",
                &[&active, &limit],
            )
            .await
            .map_err(q)?;
        for row in rows {
            let key_id: &[u8] = row.get(0);
            let subject: &[u8] = row.get(1);
            let old = WrappedKey {
                kek_id: row.get(2),
                bytes: row.get(3),
            };
            let Some(new) = self
                .provider
                .rewrap(&old, &key_context(key_id, subject))
                .await
                .map_err(envelope)?
            else {
                continue;
            };
            // Only if nobody erased or re-wrapped it meanwhile.
            moved += conn
                .execute(
                    "UPDATE kailash_audit_subject_key SET kek_id = $1, wrapped = $2 \
                     WHERE key_id = $3 AND kek_id = $4",
                    &[&new.kek_id, &new.bytes, &key_id, &old.kek_id],
                )
                .await
                .map_err(q)?;
        }
        Ok(moved)
    }
}

/// Re-wraps every stored key of the trail in `db` under `provider`'s
/// active KEK (the rotation job; the sink also runs it hourly). Returns
/// how many keys moved.
pub async fn rewrap(db: &Database, provider: Arc<dyn KeyProvider>) -> Result<u64, DbError> {
    let personal = PersonalData::open(db, provider).await?;
    let mut total = 0;
    loop {
        let moved = personal.rewrap(db, 1_000).await?;
        total += moved;
        if moved == 0 {
            return Ok(total);
        }
    }
}
