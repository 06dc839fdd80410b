//! Recomputing the chain stored in PostgreSQL and checking it against the
//! signed checkpoints.

use futures_util::TryStreamExt;
use kailash_core::audit::entry::{ChainHash, GENESIS, chain_hash, parse_line};

use super::append::hash_of;
use super::checkpoint::VerifyingKey;
use crate::db::{Database, DbError};

/// What a verification found when the trail holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgVerifyReport {
    /// Entries verified.
    pub entries: u64,
    /// The first entry's sequence number (above 1 once retention dropped
    /// older entries; a checkpoint at the boundary anchors it).
    pub first_seq: u64,
    /// The last entry's sequence number.
    pub last_seq: u64,
    /// The last hash.
    pub last_hash: ChainHash,
    /// Checkpoints whose signature and hash were checked.
    pub checkpoints: usize,
    /// The newest checkpoint's sequence number.
    pub latest_checkpoint: Option<u64>,
}

/// Where and how the trail is broken: the first entry found changed,
/// removed or inserted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PgBreak {
    /// The entry's content no longer gives its hash, or its stored hash
    /// was changed.
    #[error("entry {seq} was changed")]
    Changed {
        /// The entry.
        seq: u64,
    },
    /// Entries are missing from this one on.
    #[error("entry {seq} was removed")]
    Removed {
        /// The first missing entry.
        seq: u64,
    },
    /// A row was added that the chain does not hold.
    #[error("an entry was inserted at {seq}")]
    Inserted {
        /// Where.
        seq: u64,
    },
    /// The chain up to a checkpoint was rewritten consistently (every hash
    /// recomputed), but does not end in the signed hash.
    #[error(
        "the entries after {after} up to {seq} were rewritten: the chain no longer ends in checkpoint {seq}'s signed hash"
    )]
    Rewritten {
        /// The previous checkpoint that matched (0: the start).
        after: u64,
        /// The checkpoint that does not match.
        seq: u64,
    },
    /// The trail ends before a checkpoint or the chain's head.
    #[error("the trail was truncated: it ends at entry {last_seq}, but {expected} was recorded")]
    Truncated {
        /// The last entry present.
        last_seq: u64,
        /// The entry a checkpoint (or the head row) says exists.
        expected: u64,
    },
    /// A checkpoint's signature does not verify with any given key.
    #[error("checkpoint {seq} is not signed by a trusted key (forged, or signed by key {key_id})")]
    ForgedCheckpoint {
        /// The checkpoint.
        seq: u64,
        /// The key id it names.
        key_id: String,
    },
    /// The oldest entry has no checkpoint before it to continue from.
    #[error("the trail starts at entry {first_seq} with no checkpoint at {}: the entries before it were removed", first_seq - 1)]
    Unanchored {
        /// The first entry present.
        first_seq: u64,
    },
}

/// Why a verification could not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgVerifyError {
    /// The database could not be read.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The trail is broken.
    #[error("{0}")]
    Broken(#[from] PgBreak),
}

struct Checkpoint {
    seq: u64,
    hash: ChainHash,
}

fn u64_of(v: i64) -> Result<u64, DbError> {
    u64::try_from(v).map_err(|_| DbError::Corrupt("a negative sequence number".into()))
}

/// Verifies the whole trail: every entry's hash from the start (or the
/// checkpoint at the retention boundary), every checkpoint's signature
/// (with `keys`; none given checks checkpoints only against the chain),
/// the chain at each checkpoint, and the end against the newest
/// checkpoint and the head row. Reads row by row (a server-side cursor),
/// so memory stays flat however long the trail.
pub async fn verify(db: &Database, keys: &[VerifyingKey]) -> Result<PgVerifyReport, PgVerifyError> {
    let q = |e: tokio_postgres::Error| DbError::query(&e);
    let mut conn = db.get().await?;
    // One snapshot for the rows, the checkpoints and the head.
    let tx = conn
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(q)?;
    let mut checkpoints = Vec::new();
    for row in tx
        .query(
            "SELECT seq, at_ms, hash, key_id, signature FROM kailash_audit_checkpoint ORDER BY seq",
            &[],
        )
        .await
        .map_err(q)?
    {
        let seq = u64_of(row.get(0))?;
        let at_ms: i64 = row.get(1);
        let hash = hash_of(row.get::<_, &[u8]>(2))?;
        let key_id: String = row.get(3);
        let signature: &[u8] = row.get(4);
        if !keys.is_empty() && !keys.iter().any(|k| k.verify(seq, at_ms, &hash, signature)) {
            return Err(PgBreak::ForgedCheckpoint { seq, key_id }.into());
        }
        checkpoints.push(Checkpoint { seq, hash });
    }
    let head = tx
        .query_one("SELECT seq FROM kailash_audit_head WHERE id = 1", &[])
        .await
        .map_err(q)?;
    let head_seq = u64_of(head.get(0))?;

    let rows = tx
        .query_raw(
            "SELECT seq, line, hash FROM kailash_audit ORDER BY seq, at_ms",
            std::iter::empty::<i64>(),
        )
        .await
        .map_err(q)?;
    futures_util::pin_mut!(rows);
    let mut next_checkpoint = 0usize;
    let mut matched_checkpoint = 0u64;
    let mut prev: Option<ChainHash> = None;
    let mut first_seq = 0u64;
    let mut last_seq = 0u64;
    let mut entries = 0u64;
    while let Some(row) = rows.try_next().await.map_err(q)? {
        let seq = u64_of(row.get(0))?;
        let line: &str = row.get(1);
        let stored = hash_of(row.get::<_, &[u8]>(2))?;
        let prev_hash = match prev {
            Some(h) => {
                if seq == last_seq {
                    return Err(PgBreak::Inserted { seq }.into());
                }
                if seq != last_seq + 1 {
                    return Err(PgBreak::Removed { seq: last_seq + 1 }.into());
                }
                h
            }
            None => {
                first_seq = seq;
                // Checkpoints before the trail's start are history.
                while checkpoints
                    .get(next_checkpoint)
                    .is_some_and(|c| c.seq + 1 < seq)
                {
                    next_checkpoint += 1;
                }
                if seq == 1 {
                    GENESIS
                } else {
                    match checkpoints.get(next_checkpoint) {
                        Some(c) if c.seq + 1 == seq => {
                            next_checkpoint += 1;
                            matched_checkpoint = c.seq;
                            c.hash
                        }
                        _ => return Err(PgBreak::Unanchored { first_seq: seq }.into()),
                    }
                }
            }
        };
        let parsed = parse_line(line.as_bytes()).map_err(|_| PgBreak::Changed { seq })?;
        let computed = chain_hash(line.as_bytes(), &prev_hash).ok_or(PgBreak::Changed { seq })?;
        if parsed.seq != seq
            || parsed.header_prev.is_some()
            || parsed.hash != stored
            || computed != stored
        {
            return Err(PgBreak::Changed { seq }.into());
        }
        if let Some(c) = checkpoints.get(next_checkpoint)
            && c.seq == seq
        {
            if c.hash != computed {
                return Err(PgBreak::Rewritten {
                    after: matched_checkpoint,
                    seq,
                }
                .into());
            }
            matched_checkpoint = seq;
            next_checkpoint += 1;
        }
        prev = Some(computed);
        last_seq = seq;
        entries += 1;
    }
    let latest_checkpoint = checkpoints.last().map(|c| c.seq);
    if entries == 0 {
        // Nothing left (retention dropped it all): the head must be the
        // newest checkpoint, which anchors whatever comes next.
        return match checkpoints.last() {
            _ if head_seq == 0 => Ok(PgVerifyReport {
                entries: 0,
                first_seq: 1,
                last_seq: 0,
                last_hash: GENESIS,
                checkpoints: checkpoints.len(),
                latest_checkpoint,
            }),
            Some(c) if c.seq == head_seq => Ok(PgVerifyReport {
                entries: 0,
                first_seq: head_seq + 1,
                last_seq: head_seq,
                last_hash: c.hash,
                checkpoints: checkpoints.len(),
                latest_checkpoint,
            }),
            _ => Err(PgBreak::Truncated {
                last_seq: latest_checkpoint.unwrap_or(0),
                expected: head_seq,
            }
            .into()),
        };
    }
    if let Some(c) = checkpoints.get(next_checkpoint) {
        return Err(PgBreak::Truncated {
            last_seq,
            expected: c.seq,
        }
        .into());
    }
    if head_seq > last_seq {
        return Err(PgBreak::Truncated {
            last_seq,
            expected: head_seq,
        }
        .into());
    }
    if head_seq < last_seq {
        return Err(PgBreak::Inserted { seq: head_seq + 1 }.into());
    }
    tx.commit().await.map_err(q)?;
    Ok(PgVerifyReport {
        entries,
        first_seq: if entries == 0 {
            head_seq + 1
        } else {
            first_seq
        },
        last_seq,
        last_hash: prev.unwrap_or(GENESIS),
        checkpoints: checkpoints.len(),
        latest_checkpoint,
    })
}
