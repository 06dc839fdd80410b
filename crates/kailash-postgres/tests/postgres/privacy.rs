//! Personal fields sealed per person: at rest only ciphertext, readable
//! through the sink, erased by deleting one key while the chain still
//! verifies, keys re-wrapped on rotation without touching a chained row.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use kailash_core::audit::{AuditDecision, AuditEvent, AuditQuery, AuditSink};
use kailash_core::envelope::{KeyProvider, Keyring};
use kailash_core::tenant::TenantId;
use kailash_postgres::Database;
use kailash_postgres::audit::{
    CheckpointKey, EraseError, PgAuditOptions, PgAuditSink, PgBreak, PgVerifyError, VerifyingKey,
    verify,
};

use super::support::{Fresh, admin_url};

fn ring(text: &str) -> Arc<dyn KeyProvider> {
    Arc::new(Keyring::parse(text).unwrap())
}

fn options(fresh: &Fresh, tag: &str, provider: Option<Arc<dyn KeyProvider>>) -> PgAuditOptions {
    let mut o = PgAuditOptions::new(fresh.dir.join(tag).join("audit.jsonl"));
    o.retry_interval = Duration::from_millis(100);
    o.personal_data = provider;
    o
}

fn acme() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn ev(actor: Option<&str>, tenant: &str, resource: &str, ip: &str) -> AuditEvent {
    let mut e = AuditEvent::new("auth.login", AuditDecision::Success)
        .tenant(TenantId::new(tenant).unwrap())
        .resource(resource);
    if let Some(a) = actor {
        e = e.actor(a);
    }
    e.client_ip = Some(ip.parse::<IpAddr>().unwrap());
    e
}

async fn lines(db: &Database) -> Vec<(String, Option<String>)> {
    db.get()
        .await
        .unwrap()
        .query("SELECT line, actor FROM kailash_audit ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// (resource, actor, ip) of the tenant's newest entries.
async fn seen(
    sink: &PgAuditSink,
    tenant: &TenantId,
) -> Vec<(String, Option<String>, Option<IpAddr>)> {
    sink.newest(tenant, 100, None)
        .await
        .unwrap()
        .events
        .into_iter()
        .map(|e| (e.resource.unwrap(), e.actor, e.client_ip))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_fields_are_sealed_readable_and_erasable_without_breaking_the_chain() {
    let Some(admin) = admin_url("personal_fields_are_sealed_readable_and_erasable") else {
        return;
    };
    let k1 = format!("k1 {}\n", Keyring::generate_key().unwrap());
    let k2 = format!("k2 {}\n", Keyring::generate_key().unwrap());
    let fresh = Fresh::new(&admin).await;
    let db = fresh.db().await;
    let key = CheckpointKey::generate().unwrap();
    let public = [VerifyingKey::from_pem(&key.public_key_pem()).unwrap()];
    let mut o = options(&fresh, "a", Some(ring(&k1)));
    o.checkpoint_key = Some(key);
    o.checkpoint_every = 2;
    let sink = PgAuditSink::open(db.clone(), o).await.unwrap();
    assert!(sink.seals_personal_data());
    sink.record(ev(Some("alice"), "acme", "r1", "203.0.113.7"))
        .await
        .unwrap();
    sink.record(ev(Some("bob"), "acme", "r2", "198.51.100.1"))
        .await
        .unwrap();
    sink.record(ev(Some("alice"), "globex", "r3", "203.0.113.7"))
        .await
        .unwrap();
    sink.record(ev(None, "acme", "r4", "192.0.2.9"))
        .await
        .unwrap();
    sink.record(ev(Some("alice"), "acme", "r5", "203.0.113.8"))
        .await
        .unwrap();

    // At rest: no name and no address of a person, in the line or the column.
    let rows = lines(&db).await;
    assert_eq!(rows.len(), 5);
    for (line, actor) in &rows {
        for secret in ["alice", "bob", "203.0.113", "198.51.100"] {
            assert!(!line.contains(secret), "{line} shows {secret}");
            assert!(!actor.as_deref().unwrap_or("").contains(secret));
        }
    }
    // The anonymous entry keeps its address (no person to key it to).
    assert!(rows[3].0.contains("192.0.2.9"));
    // One key per (tenant, person): alice's acme rows share a key id,
    // her globex row has another.
    assert_eq!(rows[0].1, rows[4].1);
    assert_ne!(rows[0].1, rows[2].1);
    assert_ne!(rows[0].1, rows[1].1);

    // Through the sink everything reads back.
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    assert_eq!(
        seen(&sink, &acme()).await,
        vec![
            ("r5".into(), Some("alice".into()), ip("203.0.113.8")),
            ("r4".into(), None, ip("192.0.2.9")),
            ("r2".into(), Some("bob".into()), ip("198.51.100.1")),
            ("r1".into(), Some("alice".into()), ip("203.0.113.7")),
        ]
    );
    // The export (article 15) finds one person's rows in one tenant.
    let export = sink.of_actor(&acme(), "alice", 100, None).await.unwrap();
    let resources: Vec<_> = export
        .events
        .iter()
        .map(|e| e.resource.clone().unwrap())
        .collect();
    assert_eq!(resources, ["r5", "r1"]);

    // Erasure (article 17): one key row goes; no chained row changes.
    let before = lines(&db).await;
    assert!(sink.erase_subject(Some(&acme()), "alice").await.unwrap());
    assert!(!sink.erase_subject(Some(&acme()), "alice").await.unwrap());
    assert_eq!(lines(&db).await, before);
    let report = verify(&db, &public).await.unwrap();
    assert_eq!(report.entries, 5);
    assert!(report.checkpoints >= 2);
    assert_eq!(
        seen(&sink, &acme()).await,
        vec![
            ("r5".into(), None, None),
            ("r4".into(), None, ip("192.0.2.9")),
            ("r2".into(), Some("bob".into()), ip("198.51.100.1")),
            ("r1".into(), None, None),
        ]
    );
    assert!(
        sink.of_actor(&acme(), "alice", 100, None)
            .await
            .unwrap()
            .events
            .is_empty()
    );
    // Her entries in another tenant are another subject.
    let globex = TenantId::new("globex").unwrap();
    assert_eq!(
        seen(&sink, &globex).await,
        vec![("r3".into(), Some("alice".into()), ip("203.0.113.7"))]
    );
    // A later event of the same person gets a new key and reads back.
    sink.record(ev(Some("alice"), "acme", "r6", "203.0.113.9"))
        .await
        .unwrap();
    let export = sink.of_actor(&acme(), "alice", 100, None).await.unwrap();
    assert_eq!(export.events.len(), 1);
    assert_eq!(export.events[0].resource.as_deref(), Some("r6"));
    assert_eq!(export.events[0].client_ip, ip("203.0.113.9"));
    drop(sink);

    // Rotation: k2 becomes active; the data keys are re-wrapped, the
    // trail is not rewritten, and k1 can then go.
    let before = lines(&db).await;
    let rotated = PgAuditSink::open(
        db.clone(),
        options(&fresh, "b", Some(ring(&format!("{k1}{k2}")))),
    )
    .await
    .unwrap();
    // bob, globex's alice, the new alice key, and the pseudonym key.
    assert_eq!(rotated.rewrap_keys(100).await.unwrap(), 4);
    assert_eq!(rotated.rewrap_keys(100).await.unwrap(), 0);
    assert_eq!(lines(&db).await, before);
    drop(rotated);
    let only_k2 = PgAuditSink::open(db.clone(), options(&fresh, "c", Some(ring(&k2))))
        .await
        .unwrap();
    assert_eq!(seen(&only_k2, &globex).await[0].1.as_deref(), Some("alice"));
    drop(only_k2);
    // A keyring without the key the trail is under stops the start.
    let err = PgAuditSink::open(db.clone(), options(&fresh, "d", Some(ring(&k1))))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown key-encryption key id \"k2\""),
        "{err}"
    );

    // A sink that does not seal cannot erase.
    let plain = PgAuditSink::open(db.clone(), options(&fresh, "e", None))
        .await
        .unwrap();
    assert!(matches!(
        plain.erase_subject(Some(&acme()), "bob").await,
        Err(EraseError::NotSealed)
    ));
    drop(plain);

    // A sealed field altered in the table: the read refuses (never
    // garbage) and verify names the row.
    let sink = PgAuditSink::open(db.clone(), options(&fresh, "f", Some(ring(&k2))))
        .await
        .unwrap();
    let conn = db.get().await.unwrap();
    conn.batch_execute("ALTER TABLE kailash_audit DISABLE TRIGGER kailash_audit_append_only")
        .await
        .unwrap();
    // Flip one character of bob's sealed actor (seq 2) past its key id.
    let line: String = conn
        .query_one("SELECT line FROM kailash_audit WHERE seq = 2", &[])
        .await
        .unwrap()
        .get(0);
    let at = line.find("\"u\":\"~1.").unwrap() + 6 + 30;
    let mut bytes = line.into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let line = String::from_utf8(bytes).unwrap();
    conn.execute("UPDATE kailash_audit SET line = $1 WHERE seq = 2", &[&line])
        .await
        .unwrap();
    assert!(sink.newest(&acme(), 100, None).await.is_err());
    match verify(&db, &[]).await {
        Err(PgVerifyError::Broken(PgBreak::Changed { seq: 2 })) => {}
        other => panic!("expected a change at 2, got {other:?}"),
    }
    drop(sink);
    fresh.drop_db().await;
}
