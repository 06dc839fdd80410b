//! Audit appends per second, with the hash chain, for the PostgreSQL sink
//! and the file sink side by side: `C` concurrent writers each recording
//! events one after another for `DUR` seconds, so a batch holds about `C`
//! events (group commit). Prints events/s and events per transaction.
//!
//! ```sh
//! cargo build --release -p kailash-benches --bin audit_bench
//! KAILASH_BENCH_DATABASE_URL='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' \
//!   DUR=5 target/release/audit_bench 1 64 512
//! ```
//!
//! Each PostgreSQL run uses a fresh database (created and dropped here).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kailash_core::audit::{
    AuditDecision, AuditEvent, AuditSink, JsonLinesAuditSink, JsonLinesOptions,
};
use kailash_core::envelope::Keyring;
use kailash_postgres::audit::{PgAuditOptions, PgAuditSink};
use kailash_postgres::{Database, DbSettings};

fn event(i: u64) -> AuditEvent {
    // A few hundred people, as on a busy gateway.
    AuditEvent::new("access.check", AuditDecision::Allow)
        .actor(format!("user{}", i % 256))
        .tenant(kailash_core::TenantId::new("acme").expect("a valid id"))
        .resource(format!("report:view {i}"))
        .reason("role `business_user` grants `report:view`")
}

async fn drive(sink: Arc<dyn AuditSink>, writers: usize, dur: Duration) -> (u64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (sink, stop, count) = (sink.clone(), stop.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let i = count.fetch_add(1, Ordering::Relaxed);
                sink.record(event(i)).await.expect("accepted");
            }
        }));
    }
    tokio::time::sleep(dur).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("writer");
    }
    let n = count.load(Ordering::Relaxed);
    (n, n as f64 / started.elapsed().as_secs_f64())
}

fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let server = base.rfind('/').map_or(base, |i| &base[..i]);
    format!("{server}/{db}?{query}")
}

#[tokio::main]
async fn main() {
    let url = std::env::var("KAILASH_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into());
    let dur = Duration::from_secs(
        std::env::var("DUR")
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(5),
    );
    let mut levels: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if levels.is_empty() {
        levels = vec![1, 64, 512];
    }
    let admin = Database::connect(&DbSettings::new(&url))
        .await
        .expect("the bench database server");
    let work = std::env::temp_dir().join(format!("kailash-audit-bench-{}", std::process::id()));
    println!("| writers | sink | events/s | events per transaction |");
    println!("|---:|---|---:|---:|");
    for writers in levels {
        for sealed in [false, true] {
            let name = format!("kailash_audit_bench_{writers}_{}", u8::from(sealed));
            let conn = admin.get().await.expect("admin connection");
            // Two statements: DROP/CREATE DATABASE refuse a transaction block.
            conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .expect("no database left over");
            conn.batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("a fresh database");
            drop(conn);
            let db = Database::connect(&DbSettings::new(with_database(&url, &name)))
                .await
                .expect("bench database");
            let mut options =
                PgAuditOptions::new(work.join(format!("spool-{writers}-{sealed}/audit.jsonl")));
            if sealed {
                // Actors sealed per person (one data key each).
                let ring = format!("bench {}", Keyring::generate_key().expect("a key"));
                options.personal_data = Some(Arc::new(Keyring::parse(&ring).expect("a keyring")));
            }
            let sink = PgAuditSink::open(db.clone(), options)
                .await
                .expect("the sink");
            let (n, rate) = drive(Arc::new(sink.clone()), writers, dur).await;
            let txs: i64 = db
                .get()
                .await
                .expect("connection")
                .query_one(
                    "SELECT last_seq FROM kailash_audit_replay WHERE origin LIKE '%:live'",
                    &[],
                )
                .await
                .expect("the live progress row")
                .get(0);
            assert!(
                sink.is_live() && sink.spool_backlog() == 0,
                "the database stayed up"
            );
            let kind = if sealed {
                "postgres, personal data sealed"
            } else {
                "postgres"
            };
            println!(
                "| {writers} | {kind} | {rate:.0} | {:.1} |",
                n as f64 / txs.max(1) as f64
            );
            drop(sink);
            drop(db);
            let conn = admin.get().await.expect("admin connection");
            let _ = conn
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
        let file = JsonLinesAuditSink::open_with(
            work.join(format!("file-{writers}/audit.jsonl")),
            JsonLinesOptions::default(),
        )
        .expect("the file sink");
        let (_, rate) = drive(Arc::new(file), writers, dur).await;
        println!("| {writers} | file (fsync interval 1 s) | {rate:.0} | — |");
    }
    std::fs::remove_dir_all(&work).ok();
}
