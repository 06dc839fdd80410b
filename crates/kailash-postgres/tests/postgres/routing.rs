//! Routing against a real primary and a streaming hot standby
//! (`KAILASH_TEST_PG_REPLICA`: `.ci/pg/replica.sh`, which builds both on
//! spare ports and tears them down).

use std::path::PathBuf;
use std::time::Duration;

use kailash_postgres::routing::{Databases, ReadSession, ReadTarget, RoutingSettings};
use kailash_postgres::{DbError, DbSettings};

use super::support::{random_hex, spare_port, until};

struct Pair {
    script: PathBuf,
    dir: PathBuf,
    primary: u16,
    replica: u16,
}

impl Pair {
    fn run(&self, args: &[&str]) {
        let status = std::process::Command::new(&self.script)
            .args(args)
            .status()
            .expect("the replica script runs");
        assert!(
            status.success(),
            "{} {args:?} failed",
            self.script.display()
        );
    }
    fn dir(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }
    fn url(port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable")
    }
    fn settings(&self) -> RoutingSettings {
        let mut s = RoutingSettings::new(DbSettings::new(Self::url(self.primary)));
        let mut replica = DbSettings::new(Self::url(self.replica));
        replica.connect_timeout = Duration::from_secs(1);
        s.replica = Some(replica);
        s.poll_interval = Duration::from_millis(100);
        s
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.script)
            .args(["destroy", &self.dir()])
            .status();
    }
}

fn pair(test: &str) -> Option<Pair> {
    let script = match std::env::var("KAILASH_TEST_PG_REPLICA") {
        Ok(s) if !s.is_empty() => PathBuf::from(s),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but KAILASH_TEST_PG_REPLICA is not set"
            );
            eprintln!("skipped {test}: KAILASH_TEST_PG_REPLICA is not set");
            return None;
        }
    };
    let p = Pair {
        script,
        dir: std::env::temp_dir().join(format!("kailash-pgr-{}", random_hex())),
        primary: spare_port(),
        replica: spare_port(),
    };
    p.run(&[
        "init",
        &p.dir(),
        &p.primary.to_string(),
        &p.replica.to_string(),
    ]);
    Some(p)
}

async fn in_recovery(conn: &kailash_postgres::Connection) -> bool {
    conn.query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_replica_see_their_writes_and_fall_back_when_it_is_away() {
    let Some(pair) = pair("reads_go_to_the_replica") else {
        return;
    };
    let dbs = Databases::connect(pair.settings()).await.unwrap();
    let status = dbs.replica_status().unwrap();
    assert!(status.reachable && status.serving, "{status:?}");

    // A write on the writer; a read without a session goes to the replica.
    let w = dbs.writer().get().await.unwrap();
    assert!(!in_recovery(&w).await);
    w.batch_execute("CREATE TABLE t (id int)").await.unwrap();
    // The replica has the table before replay is paused below.
    let mut created = ReadSession::default();
    created.wrote(&w).await.unwrap();
    let reader = dbs.reader();
    until("the replica has the table", async || {
        reader.get(Some(&created)).await.unwrap().target == ReadTarget::Replica
    })
    .await;
    let r = dbs.reader().get(None).await.unwrap();
    assert_eq!(r.target, ReadTarget::Replica);
    assert!(in_recovery(&r).await);
    drop(r);

    // Read-your-writes: with replay paused the replica cannot have the
    // session's write, so the session reads the primary and sees it;
    // a read without a session still goes to the (stale) replica.
    pair.run(&["pause-replay", &pair.dir()]);
    let mut session = ReadSession::default();
    w.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    session.wrote(&w).await.unwrap();
    assert!(session.has_written());
    let r = dbs.reader().get(Some(&session)).await.unwrap();
    assert_eq!(r.target, ReadTarget::Primary);
    let n: i64 = r
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    // Read-only even on the primary: a write through a reader fails and
    // changes nothing.
    let err = r
        .execute("INSERT INTO t VALUES (2)", &[])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("read-only") || format!("{err:?}").contains("25006"),
        "{err:?}"
    );
    drop(r);
    let stale = dbs.reader().get(None).await.unwrap();
    assert_eq!(stale.target, ReadTarget::Replica);
    let n: i64 = stale
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "replay is paused");
    drop(stale);
    // The token carries the session between requests.
    let carried = ReadSession::from_token(&session.token()).unwrap();
    pair.run(&["resume-replay", &pair.dir()]);
    let reader = dbs.reader();
    until("the replica serves the session after replay", async || {
        let r = reader.get(Some(&carried)).await.unwrap();
        r.target == ReadTarget::Replica
            && r.query_one("SELECT count(*) FROM t", &[])
                .await
                .unwrap()
                .get::<_, i64>(0)
                == 1
    })
    .await;

    // Lag beyond the limit: reads fall back to the primary. A paused
    // replay with writes waiting makes the lag grow.
    let mut lagging = pair.settings();
    lagging.max_replica_lag = Duration::from_millis(500);
    let strict = Databases::connect(lagging).await.unwrap();
    pair.run(&["pause-replay", &pair.dir()]);
    w.execute("INSERT INTO t VALUES (3)", &[]).await.unwrap();
    until("the lag shows", async || {
        strict.refresh().await;
        let s = strict.replica_status().unwrap();
        s.lag_bytes > 0 && !s.serving
    })
    .await;
    assert_eq!(
        strict.reader().get(None).await.unwrap().target,
        ReadTarget::Fallback
    );
    pair.run(&["resume-replay", &pair.dir()]);
    until("the replica catches up", async || {
        strict.refresh().await;
        strict.replica_status().unwrap().serving
    })
    .await;
    assert_eq!(strict.replica_status().unwrap().lag_bytes, 0);
    assert_eq!(
        strict.reader().get(None).await.unwrap().target,
        ReadTarget::Replica
    );

    // The replica stops: reads fall back to the primary; without fallback
    // they fail with a clear error. Analytics without its own server go
    // where reads go.
    pair.run(&["stop-replica", &pair.dir()]);
    let r = dbs.reader().get(None).await.unwrap();
    assert_eq!(r.target, ReadTarget::Fallback);
    assert!(!in_recovery(&r).await);
    drop(r);
    assert!(!dbs.replica_status().unwrap().reachable);
    assert_eq!(
        dbs.analytics().get().await.unwrap().target,
        ReadTarget::Fallback
    );
    let mut strict = pair.settings();
    strict.fallback_to_primary = false;
    let strict = Databases::connect(strict).await.unwrap();
    match strict.reader().get(None).await {
        Err(e @ DbError::Unreachable(_)) => assert!(e.to_string().contains("replica"), "{e}"),
        other => panic!("expected unreachable, got {:?}", other.map(|c| c.target)),
    }
    // It comes back by itself.
    pair.run(&["start-replica", &pair.dir()]);
    until("the replica serves again", async || {
        dbs.refresh().await;
        dbs.replica_status().unwrap().serving
    })
    .await;
    assert_eq!(
        dbs.reader().get(None).await.unwrap().target,
        ReadTarget::Replica
    );

    // An analytics server of its own, read-only.
    let mut with_analytics = pair.settings();
    let mut analytics = DbSettings::new(Pair::url(pair.replica));
    analytics.max_connections = 2;
    with_analytics.analytics = Some(analytics);
    let a = Databases::connect(with_analytics).await.unwrap();
    let conn = a.analytics().get().await.unwrap();
    assert_eq!(conn.target, ReadTarget::Analytics);
    assert!(
        conn.batch_execute("CREATE TABLE nope (x int)")
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_stop_the_start_without_the_password() {
    let mut s = RoutingSettings::new(DbSettings::new("postgres://u:sekret@127.0.0.1:1/x"));
    s.primary.connect_timeout = Duration::from_millis(500);
    let err = Databases::connect(s).await.unwrap_err().to_string();
    assert!(!err.contains("sekret"), "{err}");
    let mut s = RoutingSettings::new(DbSettings::new("postgres://u:sekret@127.0.0.1:1/x"));
    s.replica = Some(DbSettings::new("not a url sekret"));
    let err = Databases::connect(s).await.unwrap_err().to_string();
    assert!(!err.contains("sekret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_connections_close_when_idle_and_old_ones_are_recycled() {
    let Some(admin) = super::support::admin_url("overflow_connections_close_when_idle") else {
        return;
    };
    let mut s = DbSettings::new(&admin);
    s.max_connections = 2;
    s.max_overflow = 2;
    s.max_lifetime = Some(Duration::from_secs(2));
    let db = kailash_postgres::Database::connect(&s).await.unwrap();
    let held: Vec<_> = hold(&db, 4).await;
    assert_eq!(db.pool_status().open, 4);
    assert_eq!(db.pool_status().max, 4);
    drop(held);
    // Within a couple of upkeep rounds only `max_connections` stay open...
    until("overflow closed", async || db.pool_status().open <= 2).await;
    // ...and after their lifetime, none.
    until("old connections recycled", async || {
        db.pool_status().open == 0
    })
    .await;
    db.ping().await.unwrap();
}

async fn hold(db: &kailash_postgres::Database, n: usize) -> Vec<kailash_postgres::Connection> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(db.get().await.unwrap());
    }
    out
}
