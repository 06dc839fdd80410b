//! Retention: whole monthly partitions past `retention` are dropped, each
//! with a checkpoint at its last entry first, so the trail that remains
//! still verifies from that checkpoint.

use std::time::Duration;

use super::append::hash_of;
use super::checkpoint::CheckpointKey;
use crate::db::{Database, DbError};

/// The key id of a boundary checkpoint written without a signing key.
pub(crate) const UNSIGNED: &str = "unsigned";

/// `(year, month)` of a partition this crate named, or `None`.
fn month_of(name: &str) -> Option<(i16, i8)> {
    let rest = name.strip_prefix("kailash_audit_y")?;
    let (year, month) = rest.split_once('m')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    if !year
        .bytes()
        .chain(month.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let month: i8 = month.parse().ok()?;
    (1..=12).contains(&month).then_some(())?;
    Some((year.parse().ok()?, month))
}

/// The first millisecond after the month.
fn month_end_ms(year: i16, month: i8) -> Option<i64> {
    let start = jiff::civil::Date::new(year, month, 1).ok()?;
    let next = start.checked_add(jiff::Span::new().months(1)).ok()?;
    jiff::tz::Offset::UTC
        .to_timestamp(next.to_datetime(jiff::civil::Time::midnight()))
        .ok()
        .map(|t| t.as_millisecond())
}

/// Drops every partition whose month ended more than `retention` before
/// `now_ms`, oldest first, and returns their names. Before each drop, in
/// the same transaction (holding the chain's head row, so appends and
/// other instances wait), the partition's last entry becomes a checkpoint
/// — signed with `key`, or marked `unsigned` without one — so `verify`
/// starts the remaining trail from it.
pub async fn drop_expired(
    db: &Database,
    key: Option<&CheckpointKey>,
    retention: Duration,
    now_ms: i64,
) -> Result<Vec<String>, DbError> {
    let q = |e: tokio_postgres::Error| DbError::query(&e);
    let cutoff = now_ms.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    let mut conn = db.get().await?;
    let rows = conn
        .query(
            "SELECT c.relname::text FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
             WHERE p.relname = 'kailash_audit'",
            &[],
        )
        .await
        .map_err(q)?;
    let mut expired: Vec<(i64, String)> = rows
        .iter()
        .filter_map(|r| {
            let name: String = r.get(0);
            let (y, m) = month_of(&name)?;
            let end = month_end_ms(y, m)?;
            (end <= cutoff).then_some((end, name))
        })
        .collect();
    expired.sort();
    let mut dropped = Vec::new();
    for (_, name) in expired {
        // `name` matched the pattern above: letters, digits and `_` only.
        let tx = conn.transaction().await.map_err(q)?;
        tx.execute(
            "SELECT 1 FROM kailash_audit_head WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await
        .map_err(q)?;
        let exists = tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
            .await
            .map_err(q)?
            .get::<_, bool>(0);
        if !exists {
            tx.commit().await.map_err(q)?;
            continue;
        }
        let last = tx
            .query_opt(
                &format!("SELECT seq, at_ms, hash FROM {name} ORDER BY seq DESC LIMIT 1"),
                &[],
            )
            .await
            .map_err(q)?;
        if let Some(row) = last {
            let seq: i64 = row.get(0);
            let at_ms: i64 = row.get(1);
            let hash = hash_of(row.get::<_, &[u8]>(2))?;
            let useq = u64::try_from(seq)
                .map_err(|_| DbError::Corrupt("a negative sequence number".into()))?;
            let (key_id, signature) = match key {
                Some(k) => (k.key_id().to_owned(), k.sign(useq, at_ms, &hash)),
                None => (UNSIGNED.to_owned(), Vec::new()),
            };
            tx.execute(
                "INSERT INTO kailash_audit_checkpoint (seq, at_ms, hash, key_id, signature) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
                &[&seq, &at_ms, &hash.as_slice(), &key_id, &signature],
            )
            .await
            .map_err(q)?;
        }
        tx.batch_execute(&format!("DROP TABLE {name}"))
            .await
            .map_err(q)?;
        tx.commit().await.map_err(q)?;
        tracing::info!(partition = %name, "audit partition past retention dropped");
        metrics::counter!("kailash_audit_partitions_dropped_total").increment(1);
        dropped.push(name);
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_this_crate_makes_are_months() {
        assert_eq!(month_of("kailash_audit_y2026m01"), Some((2026, 1)));
        assert_eq!(month_of("kailash_audit_y2026m13"), None);
        assert_eq!(month_of("kailash_audit_default"), None);
        assert_eq!(month_of("kailash_audit_y2026m1x"), None);
        assert_eq!(month_of("kailash_audit_y2026m01; DROP"), None);
        let end = month_end_ms(2025, 12).unwrap();
        assert_eq!(crate::schema::partition_name(end), "kailash_audit_y2026m01");
    }
}
