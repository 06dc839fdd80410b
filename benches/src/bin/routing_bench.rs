//! Read routing overhead: `SELECT 1` through a `Reader` (without a session,
//! and with a read-your-writes session the replica has caught up with)
//! against the same query on a plain pool of the replica, `C` concurrent
//! clients for `DUR` seconds each. A throwaway primary and hot standby come
//! from `.ci/pg/replica.sh` on spare ports and are removed afterwards.
//!
//! ```sh
//! cargo build --release -p kailash-benches --bin routing_bench
//! KAILASH_BENCH_PG_REPLICA=.ci/pg/replica.sh DUR=5 target/release/routing_bench 1 16
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kailash_postgres::routing::{Databases, ReadSession, ReadTarget, RoutingSettings};
use kailash_postgres::{Database, DbSettings};

fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a spare port")
        .local_addr()
        .expect("its address")
        .port()
}

struct Pair {
    script: String,
    dir: String,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.script)
            .args(["destroy", &self.dir])
            .status();
    }
}

#[derive(Clone, Copy)]
enum Way {
    Plain,
    Reader,
    ReaderSession(ReadSession),
}

async fn run(
    way: Way,
    plain: &Database,
    dbs: &Databases,
    clients: usize,
    dur: Duration,
) -> (f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (stop, count, plain, reader) =
            (stop.clone(), count.clone(), plain.clone(), dbs.reader());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n: i32 = match way {
                    Way::Plain => {
                        let c = plain.get().await.expect("a replica connection");
                        c.query_one("SELECT 1", &[]).await.expect("a row").get(0)
                    }
                    Way::Reader | Way::ReaderSession(_) => {
                        let session = match way {
                            Way::ReaderSession(s) => Some(s),
                            _ => None,
                        };
                        let c = reader
                            .get(session.as_ref())
                            .await
                            .expect("a read connection");
                        assert_eq!(c.target, ReadTarget::Replica, "reads stay on the replica");
                        c.query_one("SELECT 1", &[]).await.expect("a row").get(0)
                    }
                };
                assert_eq!(n, 1);
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(dur).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client");
    }
    let n = count.load(Ordering::Relaxed) as f64;
    let secs = started.elapsed().as_secs_f64();
    (n / secs, secs * 1e6 * clients as f64 / n)
}

#[tokio::main]
async fn main() {
    let script = std::env::var("KAILASH_BENCH_PG_REPLICA")
        .expect("KAILASH_BENCH_PG_REPLICA: the path of .ci/pg/replica.sh");
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
        levels = vec![1, 16];
    }
    let (p, r) = (spare_port(), spare_port());
    let pair = Pair {
        script,
        dir: std::env::temp_dir()
            .join(format!("kailash-routing-bench-{}", std::process::id()))
            .to_string_lossy()
            .into_owned(),
    };
    let ok = std::process::Command::new(&pair.script)
        .args(["init", &pair.dir, &p.to_string(), &r.to_string()])
        .status()
        .expect("the replica script runs")
        .success();
    assert!(ok, "the primary and its replica start");
    let url = |port: u16| format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable");
    let mut replica = DbSettings::new(url(r));
    replica.read_only = true;
    let plain = Database::connect(&replica).await.expect("the replica");
    let mut settings = RoutingSettings::new(DbSettings::new(url(p)));
    settings.replica = Some(DbSettings::new(url(r)));
    let dbs = Databases::connect(settings)
        .await
        .expect("the routed pools");
    // A session whose write the replica has replayed.
    let mut session = ReadSession::default();
    let w = dbs.writer().get().await.expect("the primary");
    w.batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
        .await
        .expect("a write");
    session.wrote(&w).await.expect("its position");
    drop(w);
    loop {
        let c = dbs.reader().get(Some(&session)).await.expect("a read");
        if c.target == ReadTarget::Replica {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("| clients | way | reads/s | µs per read |");
    println!("|---:|---|---:|---:|");
    for clients in levels {
        for (name, way) in [
            ("plain replica pool", Way::Plain),
            ("Reader, no session", Way::Reader),
            ("Reader, caught-up session", Way::ReaderSession(session)),
        ] {
            let (rate, us) = run(way, &plain, &dbs, clients, dur).await;
            println!("| {clients} | {name} | {rate:.0} | {us:.1} |");
        }
    }
}
