//! The sink: a bounded queue, one writer task that group-commits batches
//! into PostgreSQL, and a file spool that takes over while the database is
//! away and is replayed, in order, when it returns.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use kailash_core::audit::{
    AuditBatch, AuditError, AuditEvent, AuditSink, AuditTicket, JsonLinesAuditSink,
    JsonLinesOptions, read_entries,
};

use super::append::{
    CheckpointPolicy, HeadCache, Progress, SyncCommit, append, append_fast, progress_of,
};
use super::checkpoint::CheckpointKey;
use super::privacy::PersonalData;
use crate::db::{Database, DbError};

/// Options of [`PgAuditSink`].
#[derive(Debug)]
pub struct PgAuditOptions {
    /// Events waiting for the writer at most (the bounded buffer).
    pub queue_capacity: usize,
    /// How long [`record`](AuditSink::record) waits for room in a full
    /// buffer before [`AuditError::Backpressure`].
    pub enqueue_timeout: Duration,
    /// Events in one transaction at most (a bigger queue is written as
    /// several transactions, in order).
    pub max_batch: usize,
    /// The active file of the outage spool: while the database is away,
    /// batches go there (a [`JsonLinesAuditSink`], with its meaning of
    /// accepted), and are replayed from there when it is back.
    pub spool: PathBuf,
    /// Options of the spool's files (rotation, retention, fsync, limits).
    pub spool_options: JsonLinesOptions,
    /// How often the database is tried again while spooling.
    pub retry_interval: Duration,
    /// Signs checkpoints when given.
    pub checkpoint_key: Option<CheckpointKey>,
    /// A checkpoint at least every this many entries...
    pub checkpoint_every: u64,
    /// ...and at the first batch after this long without one.
    pub checkpoint_interval: Duration,
    /// Monthly partitions whose month ended longer ago than this are
    /// dropped (checked hourly), each leaving a checkpoint at its last
    /// entry ([`drop_expired`](super::drop_expired)). `None` keeps
    /// everything.
    pub retention: Option<Duration>,
    /// Seals each entry's personal fields (actor, client address) under a
    /// data key of that person, wrapped by this provider's keys, so
    /// [`PgAuditSink::erase_subject`] can erase them without touching the
    /// chain (see [`PersonalData`]). `None` stores them as the file sink
    /// does.
    pub personal_data: Option<Arc<dyn kailash_core::envelope::KeyProvider>>,
    /// Whether a batch is accepted only once PostgreSQL has flushed its
    /// commit to disk (default `true`). `false` (what the gateway sets for
    /// `audit.fsync = "interval"`) commits with `synchronous_commit = off`:
    /// visible and ordered at once, flushed by the WAL writer within
    /// 3 × `wal_writer_delay` (600 ms by default) — a crash of the
    /// server's machine may lose that much, a crash of PostgreSQL itself
    /// nothing; the file sink's promise with an interval sync.
    pub synchronous_commit: bool,
}

impl PgAuditOptions {
    /// Defaults, spooling to `spool` (an active file path; its directory
    /// is created).
    pub fn new(spool: impl Into<PathBuf>) -> Self {
        Self {
            queue_capacity: 65_536,
            enqueue_timeout: Duration::from_secs(5),
            max_batch: 4_096,
            spool: spool.into(),
            spool_options: JsonLinesOptions::default(),
            retry_interval: Duration::from_secs(1),
            checkpoint_key: None,
            checkpoint_every: 10_000,
            checkpoint_interval: Duration::from_secs(60),
            retention: None,
            personal_data: None,
            synchronous_commit: true,
        }
    }
}

/// Why [`PgAuditSink::erase_subject`] erased nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EraseError {
    /// The sink stores personal fields as written (no
    /// [`PgAuditOptions::personal_data`]): they cannot be erased without
    /// breaking the chain.
    #[error("the audit trail does not seal personal data, so it cannot erase it")]
    NotSealed,
    /// The database could not be reached, or accepted events could not be
    /// written first.
    #[error("{0}")]
    Unavailable(String),
}

/// Why the sink could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgAuditError {
    /// The database refused or could not be reached.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The spool directory or its files could not be opened.
    #[error("audit spool {}: {source}", path.display())]
    Spool {
        /// The spool's active file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

struct Queue {
    events: Vec<AuditEvent>,
    batch: Arc<AuditBatch>,
    flush: bool,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: tokio::sync::Notify,
    space: tokio::sync::Notify,
    capacity: usize,
    /// The database took the last batch (not spooling).
    live: AtomicBool,
    /// Spooled entries not yet replayed (as last known).
    spool_backlog: AtomicU64,
    /// While spooling: the prober's last ping of the database answered.
    db_reachable: AtomicBool,
    spool_failing: AtomicBool,
    stopped: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The audit trail in PostgreSQL: hash-chained, group-committed, with
/// signed checkpoints, and a file spool that keeps every accepted event
/// through a database outage.
///
/// **Accepted means committed.** [`try_record`](AuditSink::try_record)
/// adds the event to the batch being filled and returns an
/// [`AuditTicket`]; one writer task appends the whole batch in one
/// transaction — lock the chain's head row, insert every entry with
/// `hash = SHA-256(prev ‖ entry)` in the [format of the file
/// sink](kailash_core::audit::entry), move the head — and completes the
/// tickets once `COMMIT` returned. Several instances append to the same
/// chain; the head row lock serialises them, so the chain never forks.
///
/// **Outages.** When a batch cannot be committed, it goes to the spool, a
/// [`JsonLinesAuditSink`] on local disk, and its tickets complete when that
/// write returns (the file sink's meaning of accepted); every later batch
/// follows it there, so order holds. Every `retry_interval` the writer
/// tries the database again and replays the spool from where the last
/// replay stopped, in transactions that also record how far they got
/// (`kailash_audit_replay`): a replay interrupted half-way resumes without
/// duplicates. Once the spool is drained, batches go to the database again.
/// A batch whose `COMMIT` answer was lost is looked up by its own progress
/// row before its spooled copy is replayed, so it is never written twice.
///
/// **Bounded.** At most `queue_capacity` events wait; a caller finding the
/// queue full waits up to `enqueue_timeout`, then gets
/// [`AuditError::Backpressure`]. Only when the spool refuses too (disk
/// full) are events refused.
///
/// ```no_run
/// use kailash_core::audit::{AuditDecision, AuditEvent, AuditSink};
/// use kailash_postgres::{Database, DbSettings};
/// use kailash_postgres::audit::{PgAuditOptions, PgAuditSink};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let db = Database::connect(&DbSettings::new("postgres://kailash@db.internal/kailash?sslmode=require")).await?;
/// let sink = PgAuditSink::open(db, PgAuditOptions::new("/var/lib/kailash/audit-spool/audit.jsonl")).await?;
/// // Returns once the entry is committed (or spooled while the database is away).
/// sink.record(AuditEvent::new("auth.logout", AuditDecision::Success).actor("bob")).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgAuditSink {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    enqueue_timeout: Duration,
    db: Database,
    spool_path: PathBuf,
    privacy: Option<Arc<PersonalData>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

impl std::fmt::Debug for PgAuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAuditSink")
            .field("spool", &self.handle.spool_path)
            .field("live", &self.is_live())
            .finish_non_exhaustive()
    }
}

/// The spool's stable name in `kailash_audit_replay`: a random id kept in
/// a file beside the spool, made on first use.
fn origin_of(spool: &Path) -> std::io::Result<String> {
    let dir = spool.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let path = dir.join("spool-origin");
    match std::fs::read_to_string(&path) {
        Ok(text) if is_origin(text.trim()) => return Ok(text.trim().to_owned()),
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} does not hold a spool id", path.display()),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    let id = format!("spool-{}", data_encoding::HEXLOWER.encode(&bytes));
    let tmp = dir.join("spool-origin.tmp");
    std::fs::write(&tmp, format!("{id}\n"))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(id)
}

fn is_origin(text: &str) -> bool {
    text.strip_prefix("spool-")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl PgAuditSink {
    /// Creates the tables if needed, opens the spool (replaying what an
    /// earlier run left there first) and starts the writer task (so it
    /// needs a Tokio runtime). An unreachable database or an unusable
    /// spool directory stops the start.
    pub async fn open(db: Database, options: PgAuditOptions) -> Result<Self, PgAuditError> {
        crate::schema::migrate(&db).await?;
        crate::schema::ensure_partitions(&db, jiff::Timestamp::now().as_millisecond()).await?;
        let spool_err = |source| PgAuditError::Spool {
            path: options.spool.clone(),
            source,
        };
        let origin = origin_of(&options.spool).map_err(spool_err)?;
        let spool = JsonLinesAuditSink::open_with(&options.spool, options.spool_options.clone())
            .map_err(spool_err)?;
        let replayed = progress_of(&db, &origin).await?;
        let privacy = match options.personal_data {
            Some(provider) => Some(Arc::new(PersonalData::open(&db, provider).await?)),
            None => None,
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                events: Vec::new(),
                batch: AuditBatch::new(),
                flush: false,
                closed: false,
            }),
            wake: tokio::sync::Notify::new(),
            space: tokio::sync::Notify::new(),
            capacity: options.queue_capacity.max(1),
            live: AtomicBool::new(true),
            spool_backlog: AtomicU64::new(0),
            db_reachable: AtomicBool::new(true),
            spool_failing: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        });
        let mut writer = Writer {
            shared: shared.clone(),
            db: db.clone(),
            spool,
            spool_path: options.spool.clone(),
            live_origin: format!("{origin}:live"),
            origin,
            replayed,
            spool_seq: replayed,
            progress_unknown: false,
            max_batch: options.max_batch.max(1),
            retry_interval: options.retry_interval.max(Duration::from_millis(10)),
            signer: options.checkpoint_key.map(|k| {
                (
                    k,
                    CheckpointPolicy {
                        every_entries: options.checkpoint_every.max(1),
                        every_ms: i64::try_from(options.checkpoint_interval.as_millis())
                            .unwrap_or(i64::MAX),
                    },
                )
            }),
            batch_no: 0,
            retention: options.retention,
            uncertain: None,
            buf: Vec::with_capacity(512),
            partitions_until: 0,
            privacy: privacy.clone(),
            head: HeadCache::default(),
            sync: SyncCommit(options.synchronous_commit),
        };
        writer.batch_no = progress_of(&db, &writer.live_origin).await?;
        writer.spool_seq = writer.spool_last().await;
        // What an earlier run spooled goes first.
        if writer.drain(None).await != Drain::Done {
            writer.shared.live.store(false, Ordering::Relaxed);
            writer.shared.db_reachable.store(false, Ordering::Relaxed);
        }
        tokio::spawn(probe(
            Arc::downgrade(&shared),
            db.clone(),
            writer.retry_interval,
        ));
        tokio::spawn(writer.run());
        Ok(Self {
            handle: Arc::new(Handle {
                shared,
                enqueue_timeout: options.enqueue_timeout,
                db,
                spool_path: options.spool,
                privacy,
            }),
        })
    }

    /// Whether batches go to the database (`false` while spooling).
    pub fn is_live(&self) -> bool {
        self.handle.shared.live.load(Ordering::Relaxed)
    }

    /// Spooled entries not replayed yet, as last measured.
    pub fn spool_backlog(&self) -> u64 {
        self.handle.shared.spool_backlog.load(Ordering::Relaxed)
    }

    /// The database the trail is in.
    pub fn database(&self) -> &Database {
        &self.handle.db
    }

    /// Whether entries' personal fields are sealed per person
    /// ([`PgAuditOptions::personal_data`]), so
    /// [`erase_subject`](Self::erase_subject) can erase them.
    pub fn seals_personal_data(&self) -> bool {
        self.handle.privacy.is_some()
    }

    /// Erases `actor`'s personal fields in `tenant`'s entries (GDPR
    /// article 17) by deleting their data key: every entry sealed under it
    /// then reads with no actor and no client address, while the chain,
    /// checkpoints and [`verify`](super::verify) are unchanged. Events
    /// accepted before the call are written first, so none of them escapes
    /// the erasure. `Ok(false)` when the trail held no key of `actor`.
    ///
    /// # Errors
    /// [`EraseError::NotSealed`] when the sink does not seal personal data,
    /// [`EraseError::Unavailable`] when the database (or the flush) fails;
    /// nothing is erased then.
    pub async fn erase_subject(
        &self,
        tenant: Option<&kailash_core::tenant::TenantId>,
        actor: &str,
    ) -> Result<bool, EraseError> {
        let Some(privacy) = &self.handle.privacy else {
            return Err(EraseError::NotSealed);
        };
        self.flush()
            .await
            .map_err(|e| EraseError::Unavailable(e.to_string()))?;
        if !self.is_live() {
            // Flushed into the spool: its entries are not sealed yet.
            return Err(EraseError::Unavailable(
                "the audit database is unreachable".into(),
            ));
        }
        privacy
            .erase(&self.handle.db, tenant, actor)
            .await
            .map_err(|e| EraseError::Unavailable(e.to_string()))
    }

    /// Re-wraps up to `limit` stored data keys under the active key (the
    /// sink does this hourly after a rotation); how many moved.
    pub async fn rewrap_keys(&self, limit: usize) -> Result<u64, DbError> {
        match &self.handle.privacy {
            Some(p) => p.rewrap(&self.handle.db, limit).await,
            None => Ok(0),
        }
    }

    #[allow(
        clippy::result_large_err,
        reason = "the event goes back by value, unboxed"
    )]
    fn enqueue(&self, event: AuditEvent) -> Result<AuditTicket, AuditEvent> {
        let shared = &self.handle.shared;
        let mut queue = shared.lock();
        if queue.closed || shared.stopped.load(Ordering::Relaxed) {
            drop(queue);
            refused();
            return Ok(AuditTicket::ready(Err(AuditError::Closed)));
        }
        if queue.events.len() >= shared.capacity {
            return Err(event);
        }
        queue.events.push(event);
        let ticket = queue.batch.ticket();
        let first = queue.events.len() == 1;
        drop(queue);
        if first {
            shared.wake.notify_one();
        }
        Ok(ticket)
    }
}

fn refused() {
    metrics::counter!("kailash_audit_events_total", "outcome" => "refused").increment(1);
}

#[async_trait]
impl AuditSink for PgAuditSink {
    #[allow(
        clippy::result_large_err,
        reason = "the event goes back by value, unboxed"
    )]
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        let handle = &self.handle;
        kailash_core::audit::enqueue_or_wait(
            &handle.shared.space,
            handle.enqueue_timeout,
            event,
            |e| self.enqueue(e),
        )
        .await
    }

    fn try_record(&self, event: AuditEvent) -> Result<AuditTicket, AuditEvent> {
        self.enqueue(event)
    }

    /// Waits until every event accepted before the call is committed or
    /// spooled (both are durable when accepted).
    async fn flush(&self) -> Result<(), AuditError> {
        let shared = &self.handle.shared;
        let ticket = {
            let mut queue = shared.lock();
            if queue.closed {
                return Err(AuditError::Closed);
            }
            queue.flush = true;
            queue.batch.ticket()
        };
        shared.wake.notify_one();
        ticket.await
    }

    /// Failing only when events are refused: the spool cannot write. A
    /// database outage alone is not a failure of the trail (events are
    /// spooled); [`is_live`](PgAuditSink::is_live) and the metrics show it.
    fn health(&self) -> Result<(), AuditError> {
        let s = &self.handle.shared;
        if s.stopped.load(Ordering::Relaxed) {
            Err(AuditError::Closed)
        } else if s.spool_failing.load(Ordering::Relaxed) {
            Err(AuditError::Io(
                "the audit database is unreachable and the spool cannot write".into(),
            ))
        } else {
            Ok(())
        }
    }
}

/// While the sink spools, pings the database every `every` (off the
/// writer's task, so a database that hangs holds no batch back) and wakes
/// the writer to replay once it answers. Ends with the sink.
async fn probe(shared: std::sync::Weak<Shared>, db: Database, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(s) = shared.upgrade() else {
            return;
        };
        if s.stopped.load(Ordering::Relaxed) {
            return;
        }
        if s.live.load(Ordering::Relaxed) || s.db_reachable.load(Ordering::Relaxed) {
            continue;
        }
        drop(s);
        let up = db.ping().await.is_ok();
        let Some(s) = shared.upgrade() else {
            return;
        };
        if up {
            s.db_reachable.store(true, Ordering::Relaxed);
            s.wake.notify_one();
        }
    }
}

/// A live batch whose `COMMIT` answer was lost: its events were spooled
/// too; whether the database has it decides whether they are replayed.
#[derive(Debug, Clone, Copy)]
struct Uncertain {
    batch_no: u64,
    /// Its events (the first ones spooled after it failed).
    len: u64,
    /// The spool's last entry before and after the batch was spooled.
    spool_before: u64,
    spool_after: u64,
}

struct Writer {
    shared: Arc<Shared>,
    db: Database,
    spool: JsonLinesAuditSink,
    spool_path: PathBuf,
    origin: String,
    live_origin: String,
    /// The spool's entries up to this one are in the database.
    replayed: u64,
    /// The spool's last entry (this writer is its only producer).
    spool_seq: u64,
    /// A replay append failed: whether it committed is read back first.
    progress_unknown: bool,
    max_batch: usize,
    retry_interval: Duration,
    signer: Option<(CheckpointKey, CheckpointPolicy)>,
    /// This instance's live batches so far (the progress row of `live_origin`).
    batch_no: u64,
    uncertain: Option<Uncertain>,
    buf: Vec<u8>,
    /// Partitions are known to exist, and expired ones dropped, up to this
    /// time (housekeeping runs hourly).
    partitions_until: i64,
    retention: Option<Duration>,
    privacy: Option<Arc<PersonalData>>,
    /// The chain's head as this writer last saw it (one round trip a batch).
    head: HeadCache,
    sync: SyncCommit,
}

const REPLAY_CHUNK: usize = 512;

/// How a replay step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// The spool is replayed; batches go to the database again.
    Done,
    /// Entries are left for the next step.
    More,
    /// The database (or the spool) failed; the prober decides when to retry.
    Failed,
}

impl Writer {
    async fn run(mut self) {
        loop {
            let live = self.shared.live.load(Ordering::Relaxed);
            let replaying = !live && self.shared.db_reachable.load(Ordering::Relaxed);
            // While replaying, batches and replay chunks take turns: new
            // requests never wait for a whole backlog. Otherwise the writer
            // sleeps until events arrive (or the prober finds the database
            // back); probing never happens on this task, so a database that
            // hangs never holds a batch back.
            let wait = if replaying {
                Duration::ZERO
            } else {
                Duration::from_secs(3600)
            };
            let (events, batch, closed) = self.next_batch(wait).await;
            if !events.is_empty() || batch.is_some() {
                // Room again: callers waiting for it may retry.
                self.shared.space.notify_waiters();
                let result = self.write(events).await;
                if let Some(batch) = batch {
                    batch.complete(result);
                }
            }
            if self.shared.live.load(Ordering::Relaxed)
                && let Err(e) = self.housekeep().await
            {
                tracing::warn!(error = %e, "audit housekeeping failed; retried with the next batch");
            }
            if !self.shared.live.load(Ordering::Relaxed)
                && self.shared.db_reachable.load(Ordering::Relaxed)
            {
                match self.drain(Some(1)).await {
                    Drain::Done => tracing::info!("audit database reachable again; spool replayed"),
                    Drain::More => {}
                    Drain::Failed => self.shared.db_reachable.store(false, Ordering::Relaxed),
                }
            }
            if closed {
                break;
            }
        }
        self.shared.stopped.store(true, Ordering::Relaxed);
    }

    /// The queued events and their batch (or `None` when there were none
    /// and no flush), after waiting at most `wait` for any.
    async fn next_batch(
        &mut self,
        wait: Duration,
    ) -> (Vec<AuditEvent>, Option<Arc<AuditBatch>>, bool) {
        let fresh = AuditBatch::new();
        let notified = self.shared.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut q = self.shared.lock();
            if !q.events.is_empty() || q.flush || q.closed {
                return Self::take(&mut q, fresh);
            }
        }
        let _ = tokio::time::timeout(wait, notified).await;
        let mut q = self.shared.lock();
        Self::take(&mut q, fresh)
    }

    fn take(
        q: &mut Queue,
        fresh: Arc<AuditBatch>,
    ) -> (Vec<AuditEvent>, Option<Arc<AuditBatch>>, bool) {
        let closed = q.closed;
        if q.events.is_empty() && !q.flush {
            return (Vec::new(), None, closed);
        }
        q.flush = false;
        let events = std::mem::take(&mut q.events);
        let batch = std::mem::replace(&mut q.batch, fresh);
        (events, Some(batch), closed)
    }

    /// Writes a batch to the database, or to the spool while the database
    /// is away or the spool is not drained.
    async fn write(&mut self, mut events: Vec<AuditEvent>) -> Result<(), AuditError> {
        if events.is_empty() {
            return Ok(());
        }
        if self.shared.live.load(Ordering::Relaxed) {
            match self.write_live(&events).await {
                Ok(()) => {
                    metrics::counter!("kailash_audit_events_total", "outcome" => "written")
                        .increment(events.len() as u64);
                    return Ok(());
                }
                Err((committed, e)) => {
                    // Chunks before the failed one are in the database.
                    metrics::counter!("kailash_audit_events_total", "outcome" => "written")
                        .increment(committed as u64);
                    events.drain(..committed);
                    tracing::error!(
                        target: "kailash::audit::alert",
                        error = %e,
                        "audit database write failed; events go to the spool until it is back"
                    );
                    self.shared.live.store(false, Ordering::Relaxed);
                    self.shared.db_reachable.store(false, Ordering::Relaxed);
                    metrics::gauge!("kailash_audit_database_up").set(0.0);
                }
            }
        }
        self.write_spool(events).await
    }

    /// Appends `events` in chunks; on failure, how many went in before it.
    async fn write_live(&mut self, events: &[AuditEvent]) -> Result<(), (usize, DbError)> {
        self.housekeep().await.map_err(|e| (0, e))?;
        let mut committed = 0;
        for chunk in events.chunks(self.max_batch) {
            let batch_no = self.batch_no + 1;
            let progress = Progress {
                origin: &self.live_origin,
                last_seq: i64::try_from(batch_no).unwrap_or(i64::MAX),
            };
            let signer = self.signer.as_ref().map(|(k, p)| (k, *p));
            match write_batch(
                &self.db,
                self.privacy.as_deref(),
                &mut self.head,
                self.sync,
                &mut self.buf,
                chunk,
                Some(progress),
                signer,
            )
            .await
            {
                Ok(_) => {
                    self.batch_no = batch_no;
                    committed += chunk.len();
                }
                Err(e) => {
                    // The commit may have happened with its answer lost:
                    // remember the batch to look it up before replaying.
                    self.uncertain = Some(Uncertain {
                        batch_no,
                        len: chunk.len() as u64,
                        spool_before: 0,
                        spool_after: 0,
                    });
                    return Err((committed, e));
                }
            }
        }
        Ok(())
    }

    async fn write_spool(&mut self, events: Vec<AuditEvent>) -> Result<(), AuditError> {
        let n = events.len() as u64;
        let before = self.spool_seq;
        let result = self.spool.record_all(events).await;
        match &result {
            Ok(()) => {
                self.shared.spool_failing.store(false, Ordering::Relaxed);
                self.spool_seq += n;
                self.shared.spool_backlog.fetch_add(n, Ordering::Relaxed);
                metrics::counter!("kailash_audit_events_total", "outcome" => "spooled")
                    .increment(n);
                if let Some(u) = &mut self.uncertain
                    && u.spool_after == 0
                {
                    u.spool_before = before;
                    u.spool_after = before + u.len;
                }
            }
            Err(e) => {
                if !self.shared.spool_failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        target: "kailash::audit::alert",
                        error = %e,
                        "audit spool write failed while the database is away: requests needing audit are refused"
                    );
                }
                metrics::counter!("kailash_audit_events_total", "outcome" => "failed").increment(n);
            }
        }
        result
    }

    /// Hourly: next month's partition exists, expired ones are dropped.
    async fn housekeep(&mut self) -> Result<(), DbError> {
        let now = jiff::Timestamp::now().as_millisecond();
        if now < self.partitions_until {
            return Ok(());
        }
        crate::schema::ensure_partitions(&self.db, now).await?;
        if let Some(retention) = self.retention {
            let key = self.signer.as_ref().map(|(k, _)| k);
            if let Err(e) = super::drop_expired(&self.db, key, retention, now).await {
                tracing::warn!(error = %e, "audit retention failed; retried in an hour");
            }
        }
        if let Some(privacy) = &self.privacy {
            // After a key rotation: move a bounded share of the data keys
            // to the active key each hour, off the batches' path.
            match privacy.rewrap(&self.db, 10_000).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(keys = n, "audit data keys re-wrapped under the active key")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "audit key re-wrap failed; retried in an hour")
                }
            }
        }
        // A new month gets its partition a month ahead.
        self.partitions_until = now + 3_600_000;
        Ok(())
    }

    /// The spool's last entry's sequence number.
    async fn spool_last(&self) -> u64 {
        let path = self.spool_path.clone();
        let after = self.replayed;
        tokio::task::spawn_blocking(move || {
            let mut last = after;
            loop {
                match read_entries(&path, last, 4096) {
                    Ok(entries) if entries.is_empty() => return last,
                    Ok(entries) => last = entries.last().map_or(last, |e| e.0),
                    Err(_) => return last,
                }
            }
        })
        .await
        .unwrap_or(after)
    }

    /// Replays the spool into the database, at most `chunks` chunks (all
    /// with `None`); once nothing is left, batches go to the database again.
    async fn drain(&mut self, chunks: Option<usize>) -> Drain {
        if self.progress_unknown {
            // The last replay append failed: it may have committed.
            match progress_of(&self.db, &self.origin).await {
                Ok(done) => {
                    self.replayed = self.replayed.max(done);
                    self.progress_unknown = false;
                }
                Err(_) => return Drain::Failed,
            }
        }
        if let Some(u) = self.uncertain {
            match progress_of(&self.db, &self.live_origin).await {
                Ok(done) => {
                    if done >= u.batch_no && u.spool_after > u.spool_before {
                        // The lost answer was a commit: its spooled copy is
                        // not replayed. Entries spooled before it were.
                        if let Err(e) = self.skip_uncertain(u).await {
                            tracing::warn!(error = %e, "audit spool replay waits for the database");
                            return Drain::Failed;
                        }
                    }
                    self.batch_no = done.max(self.batch_no);
                    self.uncertain = None;
                }
                Err(_) => return Drain::Failed,
            }
        }
        let mut left = chunks;
        loop {
            if left == Some(0) {
                return Drain::More;
            }
            left = left.map(|n| n - 1);
            let path = self.spool_path.clone();
            let after = self.replayed;
            let read =
                tokio::task::spawn_blocking(move || read_entries(&path, after, REPLAY_CHUNK))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))
                    .and_then(|r| r);
            let entries = match read {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::error!(
                        target: "kailash::audit::alert",
                        error = %e,
                        "the audit spool cannot be read back; replay stopped"
                    );
                    return Drain::Failed;
                }
            };
            let Some(last) = entries.last().map(|e| e.0) else {
                self.shared.spool_backlog.store(0, Ordering::Relaxed);
                let was_live = self.shared.live.swap(true, Ordering::Relaxed);
                if !was_live {
                    metrics::gauge!("kailash_audit_database_up").set(1.0);
                }
                return Drain::Done;
            };
            let events: Vec<AuditEvent> = entries.into_iter().map(|e| e.1).collect();
            let progress = Progress {
                origin: &self.origin,
                last_seq: i64::try_from(last).unwrap_or(i64::MAX),
            };
            let signer = self.signer.as_ref().map(|(k, p)| (k, *p));
            match write_batch(
                &self.db,
                self.privacy.as_deref(),
                &mut self.head,
                self.sync,
                &mut self.buf,
                &events,
                Some(progress),
                signer,
            )
            .await
            {
                Ok(()) => {
                    self.replayed = last;
                    let n = events.len() as u64;
                    let _ = self.shared.spool_backlog.fetch_update(
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                        |b| Some(b.saturating_sub(n)),
                    );
                    metrics::counter!("kailash_audit_events_total", "outcome" => "replayed")
                        .increment(n);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "audit spool replay waits for the database");
                    self.progress_unknown = true;
                    return Drain::Failed;
                }
            }
        }
    }

    /// Marks the spooled copy of a batch that did commit as replayed, with
    /// the entries spooled before it replayed first.
    async fn skip_uncertain(&mut self, u: Uncertain) -> Result<(), DbError> {
        // Entries spooled before the uncertain batch (none: it was the
        // first to go to the spool after the database left).
        debug_assert!(u.spool_before >= self.replayed || u.spool_before == 0);
        let progress = Progress {
            origin: &self.origin,
            last_seq: i64::try_from(u.spool_after).unwrap_or(i64::MAX),
        };
        write_batch(
            &self.db,
            self.privacy.as_deref(),
            &mut self.head,
            self.sync,
            &mut self.buf,
            &[],
            Some(progress),
            None,
        )
        .await?;
        self.replayed = self.replayed.max(u.spool_after);
        Ok(())
    }
}

/// One batch into the trail: in one round trip on the cached head, or,
/// when personal data is sealed (keys are read and created in the batch's
/// transaction), under the head row's lock.
#[allow(clippy::too_many_arguments, reason = "the writer's disjoint fields")]
async fn write_batch(
    db: &Database,
    privacy: Option<&PersonalData>,
    head: &mut HeadCache,
    sync: SyncCommit,
    buf: &mut Vec<u8>,
    events: &[AuditEvent],
    progress: Option<Progress<'_>>,
    signer: Option<(&CheckpointKey, CheckpointPolicy)>,
) -> Result<(), DbError> {
    match privacy {
        None => append_fast(db, events, progress, signer, head, sync, buf).await,
        Some(privacy) => {
            head.forget();
            append(db, events, progress, signer, Some(privacy), sync, buf).await
        }
    }
}

/// Rows of `tenant` (and `actor`) older than `before`, newest first, one
/// more than `limit` to know whether a next page exists.
async fn page(
    db: &Database,
    privacy: Option<&PersonalData>,
    tenant: &kailash_core::tenant::TenantId,
    actor: Option<&str>,
    limit: usize,
    before: Option<u64>,
) -> Result<kailash_core::audit::AuditPage, AuditError> {
    let unavailable = |_| AuditError::Io("the audit database is unreachable".into());
    let limit = limit.clamp(1, kailash_core::audit::MAX_PAGE);
    let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX) + 1;
    let conn = db.get().await.map_err(unavailable)?;
    let failed = |e: DbError| {
        tracing::warn!(error = %e, "audit query failed");
        AuditError::Io("the audit query failed".into())
    };
    let actor_columns = match (actor, privacy) {
        (Some(actor), Some(p)) => Some(
            p.actor_columns(&**conn, Some(tenant), actor)
                .await
                .map_err(failed)?,
        ),
        (Some(actor), None) => Some(vec![actor.to_owned()]),
        (None, _) => None,
    };
    let rows = match &actor_columns {
        None => {
            conn.query(
                "SELECT seq, line FROM kailash_audit WHERE tenant = $1 AND seq < $2 \
                 ORDER BY seq DESC LIMIT $3",
                &[&tenant.as_str(), &before, &fetch],
            )
            .await
        }
        Some(actors) => {
            conn.query(
                "SELECT seq, line FROM kailash_audit WHERE actor = ANY($1) AND tenant = $2 \
                 AND seq < $3 ORDER BY seq DESC LIMIT $4",
                &[actors, &tenant.as_str(), &before, &fetch],
            )
            .await
        }
    }
    .map_err(|e| {
        tracing::warn!(error = %DbError::query(&e), "audit query failed");
        AuditError::Io("the audit query failed".into())
    })?;
    let mut events = Vec::with_capacity(limit.min(rows.len()));
    let mut next_before = None;
    for row in &rows {
        if events.len() == limit {
            let seq: i64 = rows[limit - 1].get(0);
            next_before = u64::try_from(seq).ok();
            break;
        }
        let line: &str = row.get(1);
        match kailash_core::audit::entry::decode_entry(line.as_bytes()) {
            Ok((_, event)) => events.push((row.get::<_, i64>(0), event)),
            Err(_) => {
                let seq: i64 = row.get(0);
                tracing::error!(
                    seq,
                    "an audit row does not decode (altered?); run kailash audit verify"
                );
                return Err(AuditError::Io("an audit row does not decode".into()));
            }
        }
    }
    if let Some(p) = privacy {
        p.reveal(&**conn, &mut events).await.map_err(|e| {
            tracing::error!(error = %e, "audit personal fields do not open; run kailash audit verify");
            AuditError::Io("an audit row's personal fields do not open".into())
        })?;
    }
    let events = events.into_iter().map(|(_, e)| e).collect();
    Ok(kailash_core::audit::AuditPage::new(events, next_before))
}

#[async_trait]
impl kailash_core::audit::AuditQuery for PgAuditSink {
    /// From the table every instance writes to, through the
    /// `(tenant, seq)` index; the cursor is the sequence number. Events
    /// still in this instance's spool (the database is away) are not in
    /// the table yet, and the query fails with [`AuditError::Io`] then.
    async fn newest(
        &self,
        tenant: &kailash_core::tenant::TenantId,
        limit: usize,
        before: Option<u64>,
    ) -> Result<kailash_core::audit::AuditPage, AuditError> {
        page(
            &self.handle.db,
            self.handle.privacy.as_deref(),
            tenant,
            None,
            limit,
            before,
        )
        .await
    }

    /// Through the `(actor, seq)` index.
    async fn of_actor(
        &self,
        tenant: &kailash_core::tenant::TenantId,
        actor: &str,
        limit: usize,
        before: Option<u64>,
    ) -> Result<kailash_core::audit::AuditPage, AuditError> {
        page(
            &self.handle.db,
            self.handle.privacy.as_deref(),
            tenant,
            Some(actor),
            limit,
            before,
        )
        .await
    }
}

#[async_trait]
impl kailash_core::audit::AuditErasure for PgAuditSink {
    /// [`PgAuditSink::erase_subject`]; a sink without sealed personal data
    /// answers [`AuditError::Io`] (it never claims an erasure it cannot do).
    async fn erase_subject(
        &self,
        tenant: &kailash_core::tenant::TenantId,
        actor: &str,
    ) -> Result<bool, AuditError> {
        PgAuditSink::erase_subject(self, Some(tenant), actor)
            .await
            .map_err(|e| AuditError::Io(e.to_string()))
    }
}
