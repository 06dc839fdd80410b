//! The tables this crate owns, created and upgraded at start under an
//! advisory lock (so instances starting together never race).

use crate::db::{Database, DbError};

/// The advisory lock key of migrations (`kailash` in ASCII).
const MIGRATION_LOCK: i64 = 0x006b_6169_6c61_7368;

/// Each step runs once, in order, recorded in `kailash_schema`.
const STEPS: &[(i32, &str)] = &[
    (
        1,
        r"
-- The audit trail: one row per entry, append-only. `line` holds the exact
-- compact entry the file sink writes (kailash_core::audit::entry), `hash`
-- its chain link. Partitioned by month of append time (`at_ms`, kept
-- non-decreasing with `seq` by the head row) so retention drops whole
-- partitions.
CREATE TABLE kailash_audit (
    seq    bigint NOT NULL,
    at_ms  bigint NOT NULL,
    tenant text,
    actor  text,
    line   text   NOT NULL,
    hash   bytea  NOT NULL,
    PRIMARY KEY (seq, at_ms)
) PARTITION BY RANGE (at_ms);
CREATE TABLE kailash_audit_default PARTITION OF kailash_audit DEFAULT;
CREATE INDEX kailash_audit_tenant ON kailash_audit (tenant, seq DESC);
CREATE INDEX kailash_audit_actor ON kailash_audit (actor, seq);

-- The chain's head: every append locks it, so concurrent writers (several
-- gateway instances) never fork the chain.
CREATE TABLE kailash_audit_head (
    id    int PRIMARY KEY CHECK (id = 1),
    seq   bigint NOT NULL,
    at_ms bigint NOT NULL,
    hash  bytea  NOT NULL
);
INSERT INTO kailash_audit_head VALUES (1, 0, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');

-- Signed checkpoints (Ed25519 over the head at `seq`), outside the trail.
CREATE TABLE kailash_audit_checkpoint (
    seq       bigint PRIMARY KEY,
    at_ms     bigint NOT NULL,
    hash      bytea  NOT NULL,
    key_id    text   NOT NULL,
    signature bytea  NOT NULL
);

-- How far each instance's outage spool has been replayed: updated in the
-- transaction that appends the replayed entries (exactly once).
CREATE TABLE kailash_audit_replay (
    origin   text PRIMARY KEY,
    last_seq bigint NOT NULL
);

-- Rows are never updated or deleted by kailash; retention drops whole
-- partitions. A role that may only append cannot change history.
CREATE FUNCTION kailash_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'kailash_audit is append-only';
END $$;
CREATE TRIGGER kailash_audit_append_only BEFORE UPDATE OR DELETE ON kailash_audit
    FOR EACH ROW EXECUTE FUNCTION kailash_audit_append_only();
",
    ),
    (
        2,
        r"
-- Personal fields of audit entries sealed per person (crypto-shredding):
-- one data key per (tenant, actor), found by a keyed pseudonym of both
-- (`subject`) and stored only wrapped by a key-encryption key (`kek_id`).
-- Chained rows name the key by `key_id` (their `actor` column); deleting
-- the key row erases the person's fields in every entry without touching
-- a chained row. Rotation re-wraps these rows, never the trail.
CREATE TABLE kailash_audit_subject_key (
    key_id     bytea  PRIMARY KEY,
    subject    bytea  NOT NULL UNIQUE,
    kek_id     text   NOT NULL,
    wrapped    bytea  NOT NULL,
    created_ms bigint NOT NULL
);
CREATE INDEX kailash_audit_subject_key_kek ON kailash_audit_subject_key (kek_id);

-- The key behind the pseudonyms, wrapped the same way.
CREATE TABLE kailash_audit_privacy (
    id      int   PRIMARY KEY CHECK (id = 1),
    kek_id  text  NOT NULL,
    wrapped bytea NOT NULL
);
",
    ),
    (
        3,
        r"
-- Tenants and their configuration (kailash_postgres::tenants): the TOML
-- seeds ids that are not here yet; from then on this table is the source
-- of truth. Every change bumps `version` and notifies `kailash_tenants`.
CREATE TABLE kailash_tenants (
    id         text        PRIMARY KEY,
    spec       jsonb       NOT NULL,
    version    bigint      NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
);
",
    ),
    (
        4,
        r"
-- One round trip per audit batch: the writer chains the batch on the head
-- it last saw and sends it here; the function locks the head row and
-- appends only if the head is still there (else it answers the current
-- head, and the writer re-chains and sends again). Called outside an
-- explicit transaction, so its answer means committed.
CREATE FUNCTION kailash_audit_append(
    expect_seq bigint, at_ms_in bigint,
    seqs bigint[], tenants text[], actors text[], lines text[], hashes bytea[],
    origin_in text, origin_seq bigint,
    cp_key text, cp_sig bytea,
    sync_commit boolean
) RETURNS TABLE (ok boolean, head_seq bigint, head_at bigint, head_hash bytea)
LANGUAGE plpgsql AS $$
DECLARE
    h record;
    n int := coalesce(cardinality(seqs), 0);
BEGIN
    IF NOT sync_commit THEN
        -- audit.fsync = interval: committed, flushed by the WAL writer
        -- within 3 x wal_writer_delay (the file sink's promise).
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    SELECT seq, at_ms, hash INTO h FROM kailash_audit_head WHERE id = 1 FOR UPDATE;
    IF h.seq <> expect_seq OR (n > 0 AND at_ms_in < h.at_ms) THEN
        RETURN QUERY SELECT false, h.seq, h.at_ms, h.hash;
        RETURN;
    END IF;
    IF n > 0 THEN
        INSERT INTO kailash_audit (seq, at_ms, tenant, actor, line, hash)
            SELECT u.s, at_ms_in, u.t, u.a, u.l, u.x
            FROM unnest(seqs, tenants, actors, lines, hashes) AS u(s, t, a, l, x);
        UPDATE kailash_audit_head SET seq = seqs[n], at_ms = at_ms_in, hash = hashes[n] WHERE id = 1;
    END IF;
    IF origin_in IS NOT NULL THEN
        INSERT INTO kailash_audit_replay (origin, last_seq) VALUES (origin_in, origin_seq)
            ON CONFLICT (origin) DO UPDATE
            SET last_seq = GREATEST(kailash_audit_replay.last_seq, EXCLUDED.last_seq);
    END IF;
    IF cp_sig IS NOT NULL AND n > 0 THEN
        INSERT INTO kailash_audit_checkpoint (seq, at_ms, hash, key_id, signature)
            VALUES (seqs[n], at_ms_in, hashes[n], cp_key, cp_sig)
            ON CONFLICT (seq) DO NOTHING;
    END IF;
    IF n > 0 THEN
        RETURN QUERY SELECT true, seqs[n], at_ms_in, hashes[n];
    ELSE
        RETURN QUERY SELECT true, h.seq, h.at_ms, h.hash;
    END IF;
END $$;
",
    ),
];

/// Creates or upgrades the tables. Safe to call from several instances at
/// once and on every start.
pub async fn migrate(db: &Database) -> Result<(), DbError> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await.map_err(|e| DbError::query(&e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| DbError::query(&e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS kailash_schema (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(|e| DbError::query(&e))?;
    let row = tx
        .query_one("SELECT coalesce(max(version), 0) FROM kailash_schema", &[])
        .await
        .map_err(|e| DbError::query(&e))?;
    let current: i32 = row.get(0);
    let newest = STEPS.last().map_or(0, |s| s.0);
    if current > newest {
        return Err(DbError::Corrupt(format!(
            "the schema is at version {current}, newer than this build knows ({newest})"
        )));
    }
    for (version, sql) in STEPS.iter().filter(|s| s.0 > current) {
        tx.batch_execute(sql)
            .await
            .map_err(|e| DbError::query(&e))?;
        tx.execute(
            "INSERT INTO kailash_schema (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(|e| DbError::query(&e))?;
    }
    tx.commit().await.map_err(|e| DbError::query(&e))?;
    Ok(())
}

/// The first millisecond of the month holding `ms` and of the next one (UTC).
pub(crate) fn month_bounds(ms: i64) -> (i64, i64) {
    use jiff::civil::Date;
    let ts = jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let date = jiff::tz::Offset::UTC.to_datetime(ts).date();
    let start = Date::new(date.year(), date.month(), 1).unwrap_or(date);
    let next = start
        .checked_add(jiff::Span::new().months(1))
        .unwrap_or(start);
    let ms_of = |d: Date| {
        jiff::tz::Offset::UTC
            .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
            .map_or(0, |t| t.as_millisecond())
    };
    (ms_of(start), ms_of(next))
}

/// Makes sure the partitions of the month holding `ms` and the next one
/// exist (their rows would otherwise land in the default partition, which
/// retention cannot drop whole).
pub async fn ensure_partitions(db: &Database, ms: i64) -> Result<(), DbError> {
    let conn = db.get().await?;
    let (start, next) = month_bounds(ms);
    let (_, after) = month_bounds(next);
    for (from, to) in [(start, next), (next, after)] {
        let name = partition_name(from);
        // Names and bounds are numbers this code formats, never input.
        let sql = format!(
            "DO $$ BEGIN
               IF to_regclass('{name}') IS NULL THEN
                 EXECUTE 'CREATE TABLE {name} PARTITION OF kailash_audit FOR VALUES FROM ({from}) TO ({to})';
               END IF;
             EXCEPTION WHEN duplicate_table THEN NULL;
             END $$"
        );
        if let Err(e) = conn.batch_execute(&sql).await {
            // Rows of that month already in the default partition (a long
            // gap in housekeeping): keep appending there, say so.
            tracing::warn!(partition = %name, error = %DbError::query(&e), "could not create an audit partition");
        }
    }
    Ok(())
}

/// `kailash_audit_yYYYYmMM` for the month starting at `from_ms`.
pub(crate) fn partition_name(from_ms: i64) -> String {
    let ts = jiff::Timestamp::from_millisecond(from_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let date = jiff::tz::Offset::UTC.to_datetime(ts).date();
    format!("kailash_audit_y{:04}m{:02}", date.year(), date.month())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_utc_calendar_months() {
        let ms = jiff::Timestamp::from_second(1_764_547_200 + 86_400 * 40) // 2026-01-10
            .unwrap()
            .as_millisecond();
        let (start, next) = month_bounds(ms);
        assert_eq!(partition_name(start), "kailash_audit_y2026m01");
        assert_eq!(partition_name(next), "kailash_audit_y2026m02");
        assert!(start <= ms && ms < next);
        assert_eq!(month_bounds(next - 1), (start, next));
        assert_eq!(month_bounds(next).0, next);
    }
}
