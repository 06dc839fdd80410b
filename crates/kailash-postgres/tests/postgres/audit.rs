//! Group commit, the chain, checkpoints and what `verify` catches.

use std::collections::BTreeSet;
use std::time::Duration;

use kailash_core::audit::AuditSink;
use kailash_postgres::Database;
use kailash_postgres::audit::{
    CheckpointKey, PgAuditOptions, PgAuditSink, PgBreak, PgVerifyError, VerifyingKey, verify,
};

use super::support::{Fresh, admin_url, event};

fn options(fresh: &Fresh, tag: &str, key: Option<CheckpointKey>) -> PgAuditOptions {
    let mut o = PgAuditOptions::new(fresh.dir.join(tag).join("audit.jsonl"));
    o.checkpoint_key = key;
    o.checkpoint_every = 100;
    o.retry_interval = Duration::from_millis(100);
    o
}

async fn resources(db: &Database) -> Vec<String> {
    let conn = db.get().await.unwrap();
    conn.query("SELECT line FROM kailash_audit ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let line: String = r.get(0);
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            v["r"].as_str().unwrap().to_owned()
        })
        .collect()
}

async fn exec(db: &Database, sql: &str) {
    db.get().await.unwrap().batch_execute(sql).await.unwrap();
}

fn broken(result: Result<kailash_postgres::audit::PgVerifyReport, PgVerifyError>) -> PgBreak {
    match result {
        Err(PgVerifyError::Broken(b)) => b,
        other => panic!("expected a break, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_transactions_and_the_chain_verifies() {
    let Some(admin) = admin_url("concurrent_requests_share_transactions_and_the_chain_verifies")
    else {
        return;
    };
    let fresh = Fresh::new(&admin).await;
    let db = fresh.db().await;
    let key = CheckpointKey::generate().unwrap();
    let public = VerifyingKey::from_pem(&key.public_key_pem()).unwrap();
    let sink = PgAuditSink::open(db.clone(), options(&fresh, "a", Some(key)))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let sink = sink.clone();
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            sink.record(event("c", i)).await.unwrap();
            // Accepted means committed: another connection sees it now.
            if i % 97 == 0 {
                let conn = db.get().await.unwrap();
                let n: i64 = conn
                    .query_one(
                        "SELECT count(*) FROM kailash_audit WHERE line LIKE $1",
                        &[&format!("%\"r\":\"c-{i}\"%")],
                    )
                    .await
                    .unwrap()
                    .get(0);
                assert_eq!(n, 1, "event {i} accepted but not committed");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = verify(&db, std::slice::from_ref(&public)).await.unwrap();
    assert_eq!(report.entries, 1000);
    assert_eq!((report.first_seq, report.last_seq), (1, 1000));
    // At most one checkpoint per transaction (at its end), and one at least.
    assert!(report.checkpoints >= 1, "{report:?}");
    let got: BTreeSet<String> = resources(&db).await.into_iter().collect();
    assert_eq!(got.len(), 1000);
    // Group commit: far fewer transactions than events.
    let conn = db.get().await.unwrap();
    let batches: i64 = conn
        .query_one(
            "SELECT last_seq FROM kailash_audit_replay WHERE origin LIKE '%:live'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(batches < 1000, "{batches} transactions for 1000 events");
    // The table refuses changes to history.
    let err = conn
        .execute(
            "UPDATE kailash_audit SET actor = 'mallory' WHERE seq = 1",
            &[],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only") || format!("{err:?}").contains("append-only"));
    drop(conn);
    drop(sink);
    fresh.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_append_to_one_chain_without_forking_it() {
    let Some(admin) = admin_url("two_instances_append_to_one_chain_without_forking_it") else {
        return;
    };
    let fresh = Fresh::new(&admin).await;
    let (db1, db2) = (fresh.db().await, fresh.db().await);
    let one = PgAuditSink::open(db1.clone(), options(&fresh, "one", None))
        .await
        .unwrap();
    let two = PgAuditSink::open(db2, options(&fresh, "two", None))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..600 {
        let sink = if i % 2 == 0 { one.clone() } else { two.clone() };
        tasks.push(tokio::spawn(
            async move { sink.record(event("m", i)).await },
        ));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let report = verify(&db1, &[]).await.unwrap();
    assert_eq!(report.entries, 600);
    fresh.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_changed_removed_inserted_truncated_rewritten_and_forged() {
    let Some(admin) =
        admin_url("verify_names_changed_removed_inserted_truncated_rewritten_and_forged")
    else {
        return;
    };
    let fresh = Fresh::new(&admin).await;
    let db = fresh.db().await;
    let key = CheckpointKey::generate().unwrap();
    let public = VerifyingKey::from_pem(&key.public_key_pem()).unwrap();
    let sink = PgAuditSink::open(db.clone(), options(&fresh, "t", Some(key)))
        .await
        .unwrap();
    for i in 0..250 {
        sink.record(event("t", i)).await.unwrap();
    }
    drop(sink);
    let keys = [public];
    verify(&db, &keys).await.unwrap();
    exec(
        &db,
        "ALTER TABLE kailash_audit DISABLE TRIGGER kailash_audit_append_only",
    )
    .await;
    let snapshot = "CREATE TABLE saved AS SELECT * FROM kailash_audit; \
                    CREATE TABLE saved_head AS SELECT * FROM kailash_audit_head; \
                    CREATE TABLE saved_cp AS SELECT * FROM kailash_audit_checkpoint";
    let restore = "DELETE FROM kailash_audit; INSERT INTO kailash_audit SELECT * FROM saved; \
                   DELETE FROM kailash_audit_head; INSERT INTO kailash_audit_head SELECT * FROM saved_head; \
                   DELETE FROM kailash_audit_checkpoint; INSERT INTO kailash_audit_checkpoint SELECT * FROM saved_cp";
    exec(&db, snapshot).await;

    // An UPDATE made directly in the table.
    exec(&db, "UPDATE kailash_audit SET line = replace(line, '\"u\":\"user3\"', '\"u\":\"user4\"') WHERE seq = 18").await;
    assert_eq!(
        broken(verify(&db, &keys).await),
        PgBreak::Changed { seq: 18 }
    );
    exec(&db, restore).await;
    verify(&db, &keys).await.unwrap();

    // A row removed from the middle.
    exec(&db, "DELETE FROM kailash_audit WHERE seq = 40").await;
    assert_eq!(
        broken(verify(&db, &keys).await),
        PgBreak::Removed { seq: 40 }
    );
    exec(&db, restore).await;

    // A row added (a copy of another under the same number).
    exec(&db, "INSERT INTO kailash_audit SELECT seq, at_ms + 1, tenant, actor, line, hash FROM kailash_audit WHERE seq = 77").await;
    assert_eq!(
        broken(verify(&db, &keys).await),
        PgBreak::Inserted { seq: 77 }
    );
    exec(&db, restore).await;

    // The tail cut: the head row says so...
    exec(&db, "DELETE FROM kailash_audit WHERE seq > 230").await;
    assert_eq!(
        broken(verify(&db, &keys).await),
        PgBreak::Truncated {
            last_seq: 230,
            expected: 250
        }
    );
    // ...and with the head row moved back too, the newest checkpoint
    // (200) still names a cut below it.
    exec(&db, "DELETE FROM kailash_audit WHERE seq > 180; UPDATE kailash_audit_head SET seq = 180, hash = (SELECT hash FROM kailash_audit WHERE seq = 180)").await;
    assert_eq!(
        broken(verify(&db, &keys).await),
        PgBreak::Truncated {
            last_seq: 180,
            expected: 200
        }
    );
    exec(&db, restore).await;

    // Rewritten consistently from entry 150 on (every later hash
    // recomputed): only a signed checkpoint can tell.
    rewrite_from(&db, 150).await;
    match broken(verify(&db, &keys).await) {
        PgBreak::Rewritten {
            after: 100,
            seq: 200,
        } => {}
        other => panic!("expected a rewrite between checkpoints 100 and 200, got {other}"),
    }
    exec(&db, restore).await;

    // A checkpoint re-signed by another key.
    let mallory = CheckpointKey::generate().unwrap();
    let conn = db.get().await.unwrap();
    let row = conn
        .query_one(
            "SELECT seq, at_ms, hash FROM kailash_audit_checkpoint ORDER BY seq LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    let (seq, at_ms, hash): (i64, i64, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
    let sig = mallory.sign(seq as u64, at_ms, &hash.clone().try_into().unwrap());
    conn.execute(
        "UPDATE kailash_audit_checkpoint SET signature = $1 WHERE seq = $2",
        &[&sig, &seq],
    )
    .await
    .unwrap();
    assert!(matches!(
        broken(verify(&db, &keys).await),
        PgBreak::ForgedCheckpoint { seq: s, .. } if s == seq as u64
    ));
    drop(conn);
    exec(&db, restore).await;
    verify(&db, &keys).await.unwrap();
    fresh.drop_db().await;
}

/// Changes entry `from`'s actor and recomputes every hash after it, as
/// someone with write access and the code would.
async fn rewrite_from(db: &Database, from: i64) {
    use kailash_core::audit::entry::{chain_hash, encode_hash};
    let conn = db.get().await.unwrap();
    let prev: Vec<u8> = conn
        .query_one(
            "SELECT hash FROM kailash_audit WHERE seq = $1",
            &[&(from - 1)],
        )
        .await
        .unwrap()
        .get(0);
    let mut prev: [u8; 32] = prev.try_into().unwrap();
    let rows = conn
        .query(
            "SELECT seq, line FROM kailash_audit WHERE seq >= $1 ORDER BY seq",
            &[&from],
        )
        .await
        .unwrap();
    for row in rows {
        let seq: i64 = row.get(0);
        let line: String = row.get(1);
        let body = &line[..line.len() - 51]; // `,"h":"` + 43 + `"}`
        let body = if seq == from {
            body.replace("\"u\":\"", "\"u\":\"x")
        } else {
            body.to_owned()
        };
        let mut fake = format!("{body},\"h\":\"{}\"}}", "A".repeat(43));
        let hash = chain_hash(fake.as_bytes(), &prev).unwrap();
        let mut text = [0u8; 43];
        encode_hash(&hash, &mut text);
        fake = format!("{body},\"h\":\"{}\"}}", std::str::from_utf8(&text).unwrap());
        conn.execute(
            "UPDATE kailash_audit SET line = $1, hash = $2 WHERE seq = $3",
            &[&fake, &hash.as_slice(), &seq],
        )
        .await
        .unwrap();
        prev = hash;
    }
    conn.execute(
        "UPDATE kailash_audit_head SET hash = $1",
        &[&prev.as_slice()],
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_pages_through_the_same_tenant_trail() {
    use kailash_core::audit::AuditQuery;
    use kailash_core::tenant::TenantId;
    let Some(admin) = admin_url("every_instance_pages_through_the_same_tenant_trail") else {
        return;
    };
    let fresh = Fresh::new(&admin).await;
    // One instance commits without waiting for the WAL flush
    // (`audit.fsync = "interval"`): the same trail, the same chain.
    let mut async_commit = options(&fresh, "q1", None);
    async_commit.synchronous_commit = false;
    let one = PgAuditSink::open(fresh.db().await, async_commit)
        .await
        .unwrap();
    let two = PgAuditSink::open(fresh.db().await, options(&fresh, "q2", None))
        .await
        .unwrap();
    for i in 0..25 {
        let sink = if i < 12 { &one } else { &two };
        sink.record(event("q", i)).await.unwrap();
    }
    // `event` gives acme the even numbers.
    let acme = TenantId::new("acme").unwrap();
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = two.newest(&acme, 5, before).await.unwrap();
        seen.extend(page.events.iter().map(|e| e.resource.clone().unwrap()));
        assert!(page.events.iter().all(|e| e.tenant.as_ref() == Some(&acme)));
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    let want: Vec<String> = (0..25)
        .rev()
        .filter(|i| i % 2 == 0)
        .map(|i| format!("q-{i}"))
        .collect();
    assert_eq!(seen, want);
    let from_one = one.newest(&acme, 1000, None).await.unwrap();
    assert_eq!(from_one.events.len(), 13);
    assert_eq!(from_one.next_before, None);
    fresh.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_whole_months_and_what_remains_verifies_from_its_checkpoint() {
    use kailash_postgres::audit::drop_expired;
    let Some(admin) =
        admin_url("retention_drops_whole_months_and_what_remains_verifies_from_its_checkpoint")
    else {
        return;
    };
    let fresh = Fresh::new(&admin).await;
    let db = fresh.db().await;
    let key = CheckpointKey::generate().unwrap();
    let keys = [VerifyingKey::from_pem(&key.public_key_pem()).unwrap()];
    let sink = PgAuditSink::open(
        db.clone(),
        options(
            &fresh,
            "r",
            Some(CheckpointKey::from_pem(&key.private_key_pem().unwrap()).unwrap()),
        ),
    )
    .await
    .unwrap();
    for i in 0..30 {
        sink.record(event("old", i)).await.unwrap();
    }
    // Nothing is old enough yet.
    let now = jiff::Timestamp::now().as_millisecond();
    let day = Duration::from_secs(86_400);
    assert!(
        drop_expired(&db, Some(&key), day * 2555, now)
            .await
            .unwrap()
            .is_empty()
    );
    // Seen from 100 days later with 30 days' retention, this month is
    // expired: dropped whole, a checkpoint left at its last entry.
    let later = now + 100 * 86_400_000;
    let dropped = drop_expired(&db, Some(&key), day * 30, later)
        .await
        .unwrap();
    // This month's partition and next month's (empty) one.
    assert_eq!(dropped.len(), 2, "{dropped:?}");
    let empty = verify(&db, &keys).await.unwrap();
    assert_eq!(
        (empty.entries, empty.first_seq, empty.last_seq),
        (0, 31, 30)
    );
    // New entries continue the chain and verify from the boundary.
    kailash_postgres::schema::ensure_partitions(&db, now)
        .await
        .unwrap();
    for i in 0..10 {
        sink.record(event("new", i)).await.unwrap();
    }
    let report = verify(&db, &keys).await.unwrap();
    assert_eq!(
        (report.entries, report.first_seq, report.last_seq),
        (10, 31, 40)
    );
    // Without the boundary checkpoint the cut is named.
    exec(&db, "DELETE FROM kailash_audit_checkpoint WHERE seq = 30").await;
    assert_eq!(
        broken(verify(&db, &keys).await),
        PgBreak::Unanchored { first_seq: 31 }
    );
    drop(sink);
    fresh.drop_db().await;
}
