//! One transaction per batch: lock the chain's head, chain and insert the
//! batch's entries, move the head, maybe sign a checkpoint, commit.

use kailash_core::audit::AuditEvent;
use kailash_core::audit::entry::{ChainHash, encode_entry};

use super::checkpoint::CheckpointKey;
use super::privacy::PersonalData;
use crate::db::{Database, DbError};

/// Progress recorded in the same transaction as the entries, so a replay
/// (or a batch whose commit answer was lost) is applied exactly once.
#[derive(Debug, Clone)]
pub(crate) struct Progress<'a> {
    pub(crate) origin: &'a str,
    pub(crate) last_seq: i64,
}

/// When to sign a checkpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckpointPolicy {
    pub(crate) every_entries: u64,
    pub(crate) every_ms: i64,
}

/// Whether a batch's commit waits for the WAL flush
/// ([`PgAuditOptions::synchronous_commit`](super::PgAuditOptions::synchronous_commit)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyncCommit(pub(crate) bool);

pub(crate) fn hash_of(bytes: &[u8]) -> Result<ChainHash, DbError> {
    bytes
        .try_into()
        .map_err(|_| DbError::Corrupt("a chain hash is not 32 bytes".into()))
}

fn seq_i64(seq: u64) -> Result<i64, DbError> {
    i64::try_from(seq).map_err(|_| DbError::Corrupt("sequence number overflow".into()))
}

/// A batch's rows, chained on a head.
struct Chained {
    seqs: Vec<i64>,
    tenants: Vec<Option<String>>,
    actors: Vec<Option<String>>,
    lines: Vec<String>,
    hashes: Vec<Vec<u8>>,
    /// The last entry's sequence number and hash (the new head).
    last: (u64, ChainHash),
}

/// Chains `events` after the entry `seq` with hash `prev`; the `actor`
/// column holds `actor_columns` when given (sealed personal data), else
/// each event's actor.
fn chain(
    events: &[AuditEvent],
    mut seq: u64,
    mut prev: ChainHash,
    actor_columns: Option<Vec<Option<String>>>,
    buf: &mut Vec<u8>,
) -> Result<Chained, DbError> {
    let n = events.len();
    let mut out = Chained {
        seqs: Vec::with_capacity(n),
        tenants: Vec::with_capacity(n),
        actors: Vec::with_capacity(n),
        lines: Vec::with_capacity(n),
        hashes: Vec::with_capacity(n),
        last: (seq, prev),
    };
    let mut actor_columns = actor_columns.map(Vec::into_iter);
    for event in events {
        seq += 1;
        buf.clear();
        prev = encode_entry(event, seq, &prev, buf);
        buf.pop(); // the `\n`
        out.lines.push(
            String::from_utf8(std::mem::take(buf))
                .map_err(|_| DbError::Corrupt("an entry is not UTF-8".into()))?,
        );
        out.seqs.push(seq_i64(seq)?);
        out.tenants
            .push(event.tenant.as_ref().map(|t| t.as_str().to_owned()));
        out.actors.push(match &mut actor_columns {
            Some(columns) => columns.next().flatten(),
            None => event.actor.clone(),
        });
        out.hashes.push(prev.to_vec());
    }
    out.last = (seq, prev);
    Ok(out)
}

/// Appends `events` (in order) to the trail.
pub(crate) async fn append(
    db: &Database,
    events: &[AuditEvent],
    progress: Option<Progress<'_>>,
    signer: Option<(&CheckpointKey, CheckpointPolicy)>,
    privacy: Option<&PersonalData>,
    sync: SyncCommit,
    buf: &mut Vec<u8>,
) -> Result<(), DbError> {
    let q = |e: tokio_postgres::Error| DbError::query(&e);
    let mut conn = db.get().await?;
    let tx = conn.transaction().await.map_err(q)?;
    if !sync.0 {
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .map_err(q)?;
    }
    let head = tx
        .query_one(
            "SELECT seq, at_ms, hash FROM kailash_audit_head WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await
        .map_err(q)?;
    let head_seq: i64 = head.get(0);
    let head_at: i64 = head.get(1);
    let prev = hash_of(head.get::<_, &[u8]>(2))?;
    let seq =
        u64::try_from(head_seq).map_err(|_| DbError::Corrupt("a negative head sequence".into()))?;
    // Append time never goes back, whatever the instances' clocks say, so
    // monthly partitions hold consecutive ranges of the chain.
    let at_ms = jiff::Timestamp::now().as_millisecond().max(head_at);

    // Personal fields are sealed before chaining: the chain covers the
    // ciphertext, so erasing a key later changes no chained byte.
    let sealed;
    let (events, key_columns) = match privacy {
        Some(p) if !events.is_empty() => {
            let (e, columns) = p.seal_batch(&*tx, events).await?;
            sealed = e;
            (sealed.as_slice(), Some(columns))
        }
        _ => (events, None),
    };
    let n = events.len();
    let c = chain(events, seq, prev, key_columns, buf)?;
    let (seq, prev) = c.last;
    let ats = vec![at_ms; n];
    if n > 0 {
        tx.execute(
            "INSERT INTO kailash_audit (seq, at_ms, tenant, actor, line, hash) \
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[])",
            &[&c.seqs, &ats, &c.tenants, &c.actors, &c.lines, &c.hashes],
        )
        .await
        .map_err(q)?;
        tx.execute(
            "UPDATE kailash_audit_head SET seq = $1, at_ms = $2, hash = $3 WHERE id = 1",
            &[&seq_i64(seq)?, &at_ms, &prev.as_slice()],
        )
        .await
        .map_err(q)?;
    }
    if let Some(p) = progress {
        tx.execute(
            "INSERT INTO kailash_audit_replay (origin, last_seq) VALUES ($1, $2) \
             ON CONFLICT (origin) DO UPDATE SET last_seq = GREATEST(kailash_audit_replay.last_seq, EXCLUDED.last_seq)",
            &[&p.origin, &p.last_seq],
        )
        .await
        .map_err(q)?;
    }
    let mut checkpointed = false;
    if let Some((key, policy)) = signer
        && n > 0
    {
        let last = tx
            .query_opt(
                "SELECT seq, at_ms FROM kailash_audit_checkpoint ORDER BY seq DESC LIMIT 1",
                &[],
            )
            .await
            .map_err(q)?;
        let (last_seq, last_at) = last.map_or((0i64, i64::MIN), |r| (r.get(0), r.get(1)));
        let every = seq_i64(policy.every_entries.max(1))?;
        let due = seq_i64(seq)? / every > last_seq / every
            || at_ms.saturating_sub(last_at) >= policy.every_ms;
        if due {
            let signature = key.sign(seq, at_ms, &prev);
            tx.execute(
                "INSERT INTO kailash_audit_checkpoint (seq, at_ms, hash, key_id, signature) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
                &[
                    &seq_i64(seq)?,
                    &at_ms,
                    &prev.as_slice(),
                    &key.key_id(),
                    &signature,
                ],
            )
            .await
            .map_err(q)?;
            checkpointed = true;
        }
    }
    tx.commit().await.map_err(q)?;
    if checkpointed {
        metrics::counter!("kailash_audit_checkpoints_total").increment(1);
    }
    Ok(())
}

/// The replay progress of `origin` (0 when none).
pub(crate) async fn progress_of(db: &Database, origin: &str) -> Result<u64, DbError> {
    let conn = db.get().await?;
    let row = conn
        .query_opt(
            "SELECT last_seq FROM kailash_audit_replay WHERE origin = $1",
            &[&origin],
        )
        .await
        .map_err(|e| DbError::query(&e))?;
    Ok(row.map_or(0, |r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0)))
}

/// What a writer knows of the chain's head and the newest checkpoint, so
/// a batch goes in one round trip ([`append_fast`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HeadCache {
    head: Option<(u64, i64, ChainHash)>,
    last_checkpoint: Option<(i64, i64)>,
}

impl HeadCache {
    /// Forgets the head (after a failure, or an append by another path).
    pub(crate) fn forget(&mut self) {
        self.head = None;
    }
}

/// How often a batch is re-chained on a head another instance moved before
/// it falls back to locking the head first.
const FAST_ATTEMPTS: usize = 4;

/// [`append`] in one round trip: the batch is chained on the cached head
/// and sent to `kailash_audit_append`, which appends it only if the head is
/// still there (else it answers the current head and the batch is chained
/// again). Personal-data sealing needs the locking path.
pub(crate) async fn append_fast(
    db: &Database,
    events: &[AuditEvent],
    progress: Option<Progress<'_>>,
    signer: Option<(&CheckpointKey, CheckpointPolicy)>,
    cache: &mut HeadCache,
    sync: SyncCommit,
    buf: &mut Vec<u8>,
) -> Result<(), DbError> {
    let result = append_fast_inner(db, events, progress.clone(), signer, cache, sync, buf).await;
    match result {
        Ok(true) => Ok(()),
        Ok(false) => {
            // The head kept moving (busy instances): lock it instead.
            cache.forget();
            append(db, events, progress, signer, None, sync, buf).await
        }
        Err(e) => {
            cache.forget();
            Err(e)
        }
    }
}

async fn append_fast_inner(
    db: &Database,
    events: &[AuditEvent],
    progress: Option<Progress<'_>>,
    signer: Option<(&CheckpointKey, CheckpointPolicy)>,
    cache: &mut HeadCache,
    sync: SyncCommit,
    buf: &mut Vec<u8>,
) -> Result<bool, DbError> {
    let q = |e: tokio_postgres::Error| DbError::query(&e);
    let conn = db.get().await?;
    if signer.is_some() && cache.last_checkpoint.is_none() {
        let last = conn
            .query_opt(
                "SELECT seq, at_ms FROM kailash_audit_checkpoint ORDER BY seq DESC LIMIT 1",
                &[],
            )
            .await
            .map_err(q)?;
        cache.last_checkpoint = Some(last.map_or((0, i64::MIN), |r| (r.get(0), r.get(1))));
    }
    if cache.head.is_none() {
        let row = conn
            .query_one(
                "SELECT seq, at_ms, hash FROM kailash_audit_head WHERE id = 1",
                &[],
            )
            .await
            .map_err(q)?;
        let seq = u64::try_from(row.get::<_, i64>(0))
            .map_err(|_| DbError::Corrupt("a negative head sequence".into()))?;
        cache.head = Some((seq, row.get(1), hash_of(row.get::<_, &[u8]>(2))?));
    }
    let (origin, origin_seq) = match &progress {
        Some(p) => (Some(p.origin), Some(p.last_seq)),
        None => (None, None),
    };
    let n = events.len();
    for _ in 0..FAST_ATTEMPTS {
        let Some((head_seq, head_at, head_hash)) = cache.head else {
            return Ok(false);
        };
        let at_ms = jiff::Timestamp::now().as_millisecond().max(head_at);
        let c = chain(events, head_seq, head_hash, None, buf)?;
        let (seq, prev) = c.last;
        let mut checkpoint: (Option<String>, Option<Vec<u8>>) = (None, None);
        if let Some((key, policy)) = signer
            && n > 0
        {
            let (last_seq, last_at) = cache.last_checkpoint.unwrap_or((0, i64::MIN));
            let every = seq_i64(policy.every_entries.max(1))?;
            let due = seq_i64(seq)? / every > last_seq / every
                || at_ms.saturating_sub(last_at) >= policy.every_ms;
            if due {
                checkpoint = (
                    Some(key.key_id().to_owned()),
                    Some(key.sign(seq, at_ms, &prev)),
                );
            }
        }
        let row = conn
            .query_one(
                "SELECT ok, head_seq, head_at, head_hash FROM kailash_audit_append(\
                 $1, $2, $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bytea[], $8, $9, $10, $11, $12)",
                &[
                    &seq_i64(head_seq)?,
                    &at_ms,
                    &c.seqs,
                    &c.tenants,
                    &c.actors,
                    &c.lines,
                    &c.hashes,
                    &origin,
                    &origin_seq,
                    &checkpoint.0,
                    &checkpoint.1,
                    &sync.0,
                ],
            )
            .await
            .map_err(q)?;
        let ok: bool = row.get(0);
        let now_seq = u64::try_from(row.get::<_, i64>(1))
            .map_err(|_| DbError::Corrupt("a negative head sequence".into()))?;
        cache.head = Some((now_seq, row.get(2), hash_of(row.get::<_, &[u8]>(3))?));
        if ok {
            if checkpoint.1.is_some() {
                cache.last_checkpoint = Some((seq_i64(seq)?, at_ms));
                metrics::counter!("kailash_audit_checkpoints_total").increment(1);
            }
            return Ok(true);
        }
        // Another instance appended since: chain again on its head.
    }
    Ok(false)
}
