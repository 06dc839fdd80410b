//! Primary, replica and analytics pools behind distinct handle types, with
//! read-your-writes by WAL position.
//!
//! [`Databases`] holds up to three pools: the **primary** (writes), a
//! streaming **replica** (reads) and an **analytics** server (long reports).
//! Code says what it does by the handle it asks for — [`Databases::writer`],
//! [`Databases::reader`], [`Databases::analytics`] — never by SQL parsing.
//! Readers and analytics run in read-only transactions wherever they land:
//! the replica and analytics pools, and the read-only primary pool reads
//! fall back to, all set `default_transaction_read_only`, so a write
//! through a reader fails instead of landing somewhere unexpected.
//!
//! **Read-your-writes.** A [`ReadSession`] remembers the primary's WAL
//! position after the session's last write ([`ReadSession::wrote`]). A read
//! for that session goes to the replica only once the replica has replayed
//! up to that position (a cached replay position, refreshed in the
//! background; when it is behind, the replica is asked once more before
//! the read goes to the primary). A session is a small token
//! ([`ReadSession::token`]) an HTTP service can carry in a cookie or header
//! between requests.
//!
//! **Replica trouble.** A replica that cannot be reached, or lags more than
//! [`RoutingSettings::max_replica_lag`], gets no reads: they go to the
//! primary (read-only) while [`RoutingSettings::fallback_to_primary`] is
//! on (the default), and fail with [`DbError::Unreachable`] when it is off.
//! Replica lag (bytes and seconds), its reachability and each pool's
//! occupancy are metrics, and [`Databases::replica_status`] feeds a
//! readiness check.
//!
//! ```no_run
//! use kailash_postgres::routing::{Databases, ReadSession, RoutingSettings};
//! use kailash_postgres::DbSettings;
//!
//! # async fn run() -> Result<(), kailash_postgres::DbError> {
//! let mut settings = RoutingSettings::new(DbSettings::new("postgres://app@primary/app"));
//! settings.replica = Some(DbSettings::new("postgres://app@replica/app"));
//! let dbs = Databases::connect(settings).await?;
//!
//! let mut session = ReadSession::default();
//! let conn = dbs.writer().get().await?;
//! conn.execute("INSERT INTO orders (id) VALUES (1)", &[]).await.ok();
//! session.wrote(&conn).await?;
//!
//! // Sees the insert: the replica if it has replayed it, else the primary.
//! let read = dbs.reader().get(Some(&session)).await?;
//! let n: i64 = read.query_one("SELECT count(*) FROM orders", &[]).await.ok().map_or(0, |r| r.get(0));
//! # let _ = n;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::db::{Connection, Database, DbError, DbSettings};

/// Where reads and analytics go, and how the replica is watched.
#[derive(Debug, Clone)]
pub struct RoutingSettings {
    /// The primary: every write.
    pub primary: DbSettings,
    /// A streaming replica for reads; without one reads go to the primary
    /// (read-only).
    pub replica: Option<DbSettings>,
    /// A server for analytics queries; without one they go where reads go.
    pub analytics: Option<DbSettings>,
    /// Reads go to the primary while the replica is unreachable or too far
    /// behind (default `true`); `false` fails them instead.
    pub fallback_to_primary: bool,
    /// The replica gets no reads while it lags more than this (default 10 s).
    pub max_replica_lag: Duration,
    /// How often the replica's position and the pools are measured
    /// (default 1 s).
    pub poll_interval: Duration,
}

impl RoutingSettings {
    /// Only a primary, with the defaults.
    pub fn new(primary: DbSettings) -> Self {
        Self {
            primary,
            replica: None,
            analytics: None,
            fallback_to_primary: true,
            max_replica_lag: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// A WAL position (`pg_lsn`) as a number.
fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    (hi <= u64::from(u32::MAX) && lo <= u64::from(u32::MAX)).then_some((hi << 32) | lo)
}

fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// What a session has written: reads for it must see the primary at least
/// up to this WAL position. Cheap to clone; carry it between requests as
/// [`token`](Self::token).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadSession {
    lsn: u64,
}

impl ReadSession {
    /// Records the position after a write made on `conn` (a writer's
    /// connection, after the transaction committed): one `SELECT`.
    pub async fn wrote(&mut self, conn: &Connection) -> Result<(), DbError> {
        let row = conn
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .map_err(|e| DbError::query(&e))?;
        let lsn = parse_lsn(row.get(0))
            .ok_or_else(|| DbError::Corrupt("pg_current_wal_lsn is not a WAL position".into()))?;
        self.lsn = self.lsn.max(lsn);
        Ok(())
    }

    /// Whether the session has written anything.
    pub fn has_written(&self) -> bool {
        self.lsn > 0
    }

    /// The session as text (`"0/3000060"`, PostgreSQL's notation; empty
    /// for a session that has not written).
    pub fn token(&self) -> String {
        if self.lsn == 0 {
            String::new()
        } else {
            format_lsn(self.lsn)
        }
    }

    /// A session from its [`token`](Self::token); `None` for text that is
    /// not one (treat it as no session, or refuse it). A client can only
    /// make its own reads go to the primary by sending a far position.
    pub fn from_token(token: &str) -> Option<Self> {
        if token.is_empty() {
            return Some(Self::default());
        }
        if token.len() > 17 {
            return None;
        }
        parse_lsn(token).map(|lsn| Self { lsn })
    }
}

/// Where a read went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadTarget {
    /// The replica.
    Replica,
    /// The primary, read-only: no replica, or the replica had not replayed
    /// the session's writes.
    Primary,
    /// The primary, read-only, because the replica is unreachable or lags
    /// too much.
    Fallback,
    /// The analytics server.
    Analytics,
}

impl ReadTarget {
    fn label(self) -> &'static str {
        match self {
            Self::Replica => "replica",
            Self::Primary => "primary",
            Self::Fallback => "fallback",
            Self::Analytics => "analytics",
        }
    }
}

/// A connection for reading, with where it came from. Dereferences to the
/// pooled connection.
pub struct ReadConnection {
    conn: Connection,
    /// Where the read goes.
    pub target: ReadTarget,
}

impl std::fmt::Debug for ReadConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadConnection")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for ReadConnection {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

/// The replica as last measured.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ReplicaStatus {
    /// Whether the last measurement reached it.
    pub reachable: bool,
    /// Bytes of WAL the primary has that the replica has not replayed.
    pub lag_bytes: u64,
    /// Seconds since the replica replayed a transaction while it has WAL
    /// left to replay (0 when it is caught up).
    pub lag_seconds: f64,
    /// Whether it gets reads now (reachable and within the lag limit).
    pub serving: bool,
}

struct Watch {
    /// The replica's replay position (only grows).
    replay_lsn: AtomicU64,
    lag_bytes: AtomicU64,
    lag_seconds_bits: AtomicU64,
    reachable: AtomicBool,
    serving: AtomicBool,
}

impl Watch {
    fn raise_replay(&self, lsn: u64) {
        self.replay_lsn.fetch_max(lsn, Ordering::Relaxed);
    }
}

struct Inner {
    primary: Database,
    /// The primary for reads: read-only transactions.
    primary_reads: Database,
    replica: Option<Database>,
    analytics: Option<Database>,
    fallback: bool,
    max_lag: Duration,
    watch: Watch,
}

/// The pools and the routing between them; cheap to clone.
#[derive(Clone)]
pub struct Databases {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Databases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Databases")
            .field("replica", &self.inner.replica.is_some())
            .field("analytics", &self.inner.analytics.is_some())
            .finish_non_exhaustive()
    }
}

impl Databases {
    /// Connects to the primary (a bad URL or an unreachable primary stops
    /// the start) and builds the replica and analytics pools. A replica or
    /// analytics URL that does not parse stops the start too; an
    /// unreachable replica does not (reads fall back, and
    /// [`replica_status`](Self::replica_status) says so). Starts the
    /// background measurement, so it needs a Tokio runtime.
    pub async fn connect(settings: RoutingSettings) -> Result<Self, DbError> {
        let primary = Database::connect(&settings.primary).await?;
        let mut read_settings = settings.primary.clone();
        read_settings.read_only = true;
        let primary_reads = Database::lazy(&read_settings)?;
        let read_only = |s: &DbSettings| {
            let mut s = s.clone();
            s.read_only = true;
            s
        };
        let replica = match &settings.replica {
            Some(s) => Some(Database::lazy(&read_only(s))?),
            None => None,
        };
        let analytics = match &settings.analytics {
            Some(s) => Some(Database::lazy(&read_only(s))?),
            None => None,
        };
        let inner = Arc::new(Inner {
            primary,
            primary_reads,
            replica,
            analytics,
            fallback: settings.fallback_to_primary,
            max_lag: settings.max_replica_lag,
            watch: Watch {
                replay_lsn: AtomicU64::new(0),
                lag_bytes: AtomicU64::new(0),
                lag_seconds_bits: AtomicU64::new(0f64.to_bits()),
                reachable: AtomicBool::new(false),
                serving: AtomicBool::new(false),
            },
        });
        if inner.replica.is_some() {
            measure(&inner).await;
        }
        tokio::spawn(watch(
            Arc::downgrade(&inner),
            settings.poll_interval.max(Duration::from_millis(10)),
        ));
        Ok(Self { inner })
    }

    /// The handle for writes (the primary).
    pub fn writer(&self) -> Writer {
        Writer {
            db: self.inner.primary.clone(),
        }
    }

    /// The handle for reads.
    pub fn reader(&self) -> Reader {
        Reader {
            inner: self.inner.clone(),
        }
    }

    /// The handle for analytics queries: the analytics server when there is
    /// one, else where reads without a session go.
    pub fn analytics(&self) -> Analytics {
        Analytics {
            inner: self.inner.clone(),
        }
    }

    /// The replica as last measured; `None` without a replica.
    pub fn replica_status(&self) -> Option<ReplicaStatus> {
        self.inner.replica.as_ref()?;
        let w = &self.inner.watch;
        Some(ReplicaStatus {
            reachable: w.reachable.load(Ordering::Relaxed),
            lag_bytes: w.lag_bytes.load(Ordering::Relaxed),
            lag_seconds: f64::from_bits(w.lag_seconds_bits.load(Ordering::Relaxed)),
            serving: w.serving.load(Ordering::Relaxed),
        })
    }

    /// Measures the replica now (the background task does it every
    /// `poll_interval`).
    pub async fn refresh(&self) {
        measure(&self.inner).await;
    }
}

/// Writes: connections to the primary.
#[derive(Debug, Clone)]
pub struct Writer {
    db: Database,
}

impl Writer {
    /// A primary connection.
    pub async fn get(&self) -> Result<Connection, DbError> {
        self.db.get().await
    }

    /// The primary's pool (for components that take a [`Database`], such
    /// as the audit sink, so they share it).
    pub fn database(&self) -> &Database {
        &self.db
    }
}

/// Reads: the replica when it can serve them, else the primary, always in
/// read-only transactions.
#[derive(Clone)]
pub struct Reader {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reader")
    }
}

impl Reader {
    /// A connection for a read that must see `session`'s writes (none
    /// when `None`).
    pub async fn get(&self, session: Option<&ReadSession>) -> Result<ReadConnection, DbError> {
        let conn = route(&self.inner, session.map_or(0, |s| s.lsn)).await?;
        metrics::counter!("kailash_db_reads_total", "target" => conn.target.label()).increment(1);
        Ok(conn)
    }
}

/// Analytics: the analytics server, else reads' routing.
#[derive(Clone)]
pub struct Analytics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Analytics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Analytics")
    }
}

impl Analytics {
    /// A connection for an analytics query (read-only).
    pub async fn get(&self) -> Result<ReadConnection, DbError> {
        let conn = match &self.inner.analytics {
            Some(db) => ReadConnection {
                conn: db.get().await?,
                target: ReadTarget::Analytics,
            },
            None => route(&self.inner, 0).await?,
        };
        metrics::counter!("kailash_db_reads_total", "target" => conn.target.label()).increment(1);
        Ok(conn)
    }
}

async fn route(inner: &Inner, needs: u64) -> Result<ReadConnection, DbError> {
    let primary = |target| async move {
        Ok(ReadConnection {
            conn: inner.primary_reads.get().await?,
            target,
        })
    };
    let Some(replica) = &inner.replica else {
        return primary(ReadTarget::Primary).await;
    };
    let w = &inner.watch;
    if !w.serving.load(Ordering::Relaxed) {
        return fall_back(inner, "the replica is unreachable or lags too much").await;
    }
    let conn = match replica.get().await {
        Ok(conn) => conn,
        Err(e) => {
            w.reachable.store(false, Ordering::Relaxed);
            w.serving.store(false, Ordering::Relaxed);
            tracing::warn!(error = %e, "the replica is unreachable; reads fall back");
            return fall_back(inner, "the replica is unreachable").await;
        }
    };
    if needs <= w.replay_lsn.load(Ordering::Relaxed) {
        return Ok(ReadConnection {
            conn,
            target: ReadTarget::Replica,
        });
    }
    // The cached position is behind the session's write: ask once.
    let replayed = conn
        .query_one("SELECT pg_last_wal_replay_lsn()::text", &[])
        .await
        .ok()
        .and_then(|row| row.get::<_, Option<&str>>(0).and_then(parse_lsn));
    if let Some(lsn) = replayed {
        w.raise_replay(lsn);
        if needs <= lsn {
            return Ok(ReadConnection {
                conn,
                target: ReadTarget::Replica,
            });
        }
    }
    primary(ReadTarget::Primary).await
}

async fn fall_back(inner: &Inner, why: &str) -> Result<ReadConnection, DbError> {
    if inner.fallback {
        Ok(ReadConnection {
            conn: inner.primary_reads.get().await?,
            target: ReadTarget::Fallback,
        })
    } else {
        Err(DbError::Unreachable(why.to_owned()))
    }
}

const LAG_SQL: &str = "SELECT pg_last_wal_replay_lsn()::text, \
     CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
     ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8";

async fn measure(inner: &Inner) {
    pool_gauges("primary", &inner.primary);
    pool_gauges("primary_reads", &inner.primary_reads);
    if let Some(db) = &inner.analytics {
        pool_gauges("analytics", db);
    }
    let Some(replica) = &inner.replica else {
        return;
    };
    pool_gauges("replica", replica);
    let w = &inner.watch;
    let measured = async {
        let conn = replica.get().await?;
        let row = conn
            .query_one(LAG_SQL, &[])
            .await
            .map_err(|e| DbError::query(&e))?;
        let replay = row
            .get::<_, Option<&str>>(0)
            .and_then(parse_lsn)
            .ok_or_else(|| DbError::Corrupt("the replica server is not in recovery".into()))?;
        let seconds: f64 = row.get(1);
        drop(conn);
        let primary = inner.primary.get().await?;
        let row = primary
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .map_err(|e| DbError::query(&e))?;
        let head = parse_lsn(row.get(0)).unwrap_or(replay);
        Ok::<_, DbError>((replay, head.saturating_sub(replay), seconds.max(0.0)))
    };
    match measured.await {
        Ok((replay, bytes, seconds)) => {
            w.raise_replay(replay);
            w.lag_bytes.store(bytes, Ordering::Relaxed);
            w.lag_seconds_bits
                .store(seconds.to_bits(), Ordering::Relaxed);
            w.reachable.store(true, Ordering::Relaxed);
            let serving = seconds <= inner.max_lag.as_secs_f64();
            if w.serving.swap(serving, Ordering::Relaxed) != serving {
                tracing::warn!(
                    lag_seconds = seconds,
                    serving,
                    "the replica {} reads",
                    if serving {
                        "takes"
                    } else {
                        "lags too much for"
                    }
                );
            }
            metrics::gauge!("kailash_db_replica_lag_bytes").set(bytes as f64);
            metrics::gauge!("kailash_db_replica_lag_seconds").set(seconds);
            metrics::gauge!("kailash_db_replica_up").set(1.0);
        }
        Err(e) => {
            if w.reachable.swap(false, Ordering::Relaxed) {
                tracing::warn!(error = %e, "the replica is unreachable; reads fall back");
            }
            w.serving.store(false, Ordering::Relaxed);
            metrics::gauge!("kailash_db_replica_up").set(0.0);
        }
    }
}

fn pool_gauges(pool: &'static str, db: &Database) {
    let s = db.pool_status();
    metrics::gauge!("kailash_db_pool_connections", "pool" => pool, "state" => "open")
        .set(s.open as f64);
    metrics::gauge!("kailash_db_pool_connections", "pool" => pool, "state" => "idle")
        .set(s.idle as f64);
    metrics::gauge!("kailash_db_pool_waiting", "pool" => pool).set(s.waiting as f64);
    metrics::gauge!("kailash_db_pool_max", "pool" => pool).set(s.max as f64);
}

async fn watch(inner: std::sync::Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        measure(&inner).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_positions_parse_and_print_like_postgres() {
        assert_eq!(parse_lsn("0/3000060"), Some(0x300_0060));
        assert_eq!(parse_lsn("1A/FF"), Some((0x1A << 32) | 0xFF));
        assert_eq!(format_lsn((0x1A << 32) | 0xFF), "1A/FF");
        for bad in [
            "",
            "0",
            "/1",
            "0/",
            "x/1",
            "1/2/3",
            "100000000/0",
            "0/100000000",
        ] {
            assert_eq!(parse_lsn(bad), None, "{bad:?}");
        }
        let s = ReadSession { lsn: 0x300_0060 };
        assert_eq!(s.token(), "0/3000060");
        assert_eq!(ReadSession::from_token(&s.token()), Some(s));
        assert_eq!(ReadSession::from_token(""), Some(ReadSession::default()));
        assert_eq!(ReadSession::from_token("FFFFFFFF/FFFFFFFF0"), None);
        assert_eq!(ReadSession::from_token("nope"), None);
        assert!(!ReadSession::default().has_written());
    }
}
