//! The embedded durable sink: hash-chained JSON lines, group-committed by
//! one writer thread, rotated, compressed and expired by a second.

mod housekeeping;
mod recover;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::files::Naming;
use super::{AuditBatch, AuditError, AuditEvent, AuditSink, AuditTicket, MemoryAuditSink};

/// When the writer asks the OS to put written batches on the disk
/// (`fdatasync`).
///
/// An event is accepted once the `write` of its batch returned: from then
/// on a crash of the *process* loses nothing. A crash of the *machine*
/// (power loss, kernel panic) loses what the OS had not yet put on the
/// disk: nothing with [`Batch`](Self::Batch), at most the last interval
/// with [`Interval`](Self::Interval). The chain shows such a loss as a
/// shorter trail (the last file ends early), never as a broken one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` after every batch, before its events count as accepted:
    /// survives a machine crash, at the cost of one disk flush per batch.
    Batch,
    /// `fdatasync` at most this often while there are unsynced writes.
    Interval(Duration),
}

/// Options of [`JsonLinesAuditSink`].
#[derive(Debug, Clone)]
pub struct JsonLinesOptions {
    /// Events waiting for the writer at most (the bounded buffer); a
    /// request finding it full waits up to `enqueue_timeout`.
    pub queue_capacity: usize,
    /// How long `record` waits for room in a full buffer before answering
    /// [`AuditError::Backpressure`] (the caller then fails its request).
    pub enqueue_timeout: Duration,
    /// When written batches are synced to the disk.
    pub fsync: FsyncPolicy,
    /// The active file is closed once it holds this many bytes (at the
    /// next batch boundary: a file exceeds it by at most one batch).
    pub rotate_bytes: u64,
    /// The active file is closed once it is this old and holds an entry.
    pub rotate_interval: Option<Duration>,
    /// Closed files are deleted once this long has passed since they were
    /// closed (whole files only; the active file never).
    pub retention: Duration,
    /// Soft cap on the bytes of all the sink's files: reaching it fails
    /// [`health`](AuditSink::health) and logs an alert; nothing is deleted
    /// before its retention.
    pub max_total_bytes: Option<u64>,
    /// Hard cap: at or past it, events are refused
    /// ([`AuditError::StorageFull`]) and requests needing audit fail.
    pub hard_total_bytes: Option<u64>,
    /// Free space of the file system below which
    /// [`health`](AuditSink::health) fails and an alert is logged.
    pub min_free_bytes: u64,
    /// How often closed files are compressed and expired, and sizes and
    /// free space measured.
    pub housekeeping_interval: Duration,
    /// Where written events are also kept (the newest ones, for queries);
    /// an event arrives there only after its batch was written.
    pub recent: Option<Arc<MemoryAuditSink>>,
}

impl Default for JsonLinesOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 65_536,
            enqueue_timeout: Duration::from_secs(5),
            fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
            rotate_bytes: 64 * 1024 * 1024,
            rotate_interval: Some(Duration::from_secs(24 * 3600)),
            retention: Duration::from_secs(2555 * 24 * 3600),
            max_total_bytes: None,
            hard_total_bytes: None,
            min_free_bytes: 256 * 1024 * 1024,
            housekeeping_interval: Duration::from_secs(1),
            recent: None,
        }
    }
}

/// The sink's use of its storage, for monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StorageStatus {
    /// Bytes of every file of the sink (active, closed, compressed).
    pub total_bytes: u64,
    /// Free bytes of the file system (for unprivileged users), as last measured.
    pub free_bytes: u64,
    /// Whether `total_bytes` reached the soft cap.
    pub over_soft_cap: bool,
    /// Whether free space is below the minimum.
    pub low_free_space: bool,
    /// Whether events are being refused (hard cap or a failing disk).
    pub refusing: bool,
}

const OPEN: u8 = 0;
const FULL: u8 = 1;
const CLOSED: u8 = 2;

/// State shared by the sink handles, the writer and the housekeeper.
struct Shared {
    queue: Mutex<Queue>,
    writer_wake: Condvar,
    /// Room in the queue again (the writer took a batch).
    space: tokio::sync::Notify,
    capacity: usize,
    refusing: AtomicU8,
    write_failing: AtomicBool,
    over_soft: AtomicBool,
    low_disk: AtomicBool,
    closed_bytes: AtomicU64,
    active_bytes: AtomicU64,
    free_bytes: AtomicU64,
    /// The active file (a second descriptor) and whether it has writes not
    /// yet synced, for the interval syncer.
    sync_file: Mutex<Option<std::fs::File>>,
    unsynced: AtomicBool,
    /// Tests hold the writer back to observe a batch before its write.
    #[cfg(test)]
    paused: AtomicBool,
}

struct Queue {
    events: Vec<AuditEvent>,
    batch: Arc<AuditBatch>,
    /// A flush asked for an `fdatasync` with the next batch.
    sync: bool,
    writer_idle: bool,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn total_bytes(&self) -> u64 {
        self.closed_bytes.load(Ordering::Relaxed) + self.active_bytes.load(Ordering::Relaxed)
    }

    fn refusal(&self) -> Option<AuditError> {
        match self.refusing.load(Ordering::Relaxed) {
            OPEN => None,
            FULL => Some(AuditError::StorageFull),
            _ => Some(AuditError::Closed),
        }
    }
}

/// Appends events as hash-chained JSON lines to a file, group-committed
/// by a dedicated writer thread, with rotation, compression, retention and
/// storage limits.
///
/// **Accepted means written.** [`try_record`](AuditSink::try_record)
/// adds the event to the batch being filled (a short lock, no
/// serialisation, no allocation) and returns an [`AuditTicket`] for that
/// batch; the writer serialises and chains the whole batch, hands it to the
/// OS with one `write`, then completes every ticket. A write that fails
/// (a full disk) is undone and the batch's tickets fail: an event is never
/// reported accepted without being in the file. Syncing to the disk
/// follows [`FsyncPolicy`].
///
/// **Bounded.** At most `queue_capacity` events wait for the writer; a
/// caller finding the buffer full waits in [`record`](AuditSink::record)
/// for up to `enqueue_timeout` (a Tokio timer: the runtime needs its time
/// driver), then gets [`AuditError::Backpressure`].
///
/// **Files.** The active file is the configured path; past
/// `rotate_bytes` or `rotate_interval` it is renamed
/// `STEM-<first seq, 20 digits>.EXT` and a new one started whose header
/// carries the last hash (see the [entry format](super::entry)). A second
/// thread compresses closed files (`.gz`), deletes whole closed files past
/// `retention`, measures total size and free space, and raises the alarms
/// that [`health`](AuditSink::health) reports. Past `hard_total_bytes`
/// events are refused ([`AuditError::StorageFull`]).
///
/// ```
/// use kailash_core::audit::{AuditDecision, AuditEvent, AuditSink, JsonLinesAuditSink};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join(format!("kailash-audit-doc-{}", std::process::id()));
/// let sink = JsonLinesAuditSink::open(dir.join("audit.jsonl"))?;
/// // Returns once the line is in the file.
/// sink.record(AuditEvent::new("auth.logout", AuditDecision::Success).actor("bob")).await.unwrap();
/// let text = std::fs::read_to_string(dir.join("audit.jsonl"))?;
/// assert!(text.lines().nth(1).unwrap().contains("\"a\":\"auth.logout\""));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct JsonLinesAuditSink {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    path: PathBuf,
    enqueue_timeout: Duration,
    options: JsonLinesOptions,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // The last handle: the writer writes what is queued and stops.
        self.shared.lock().closed = true;
        self.shared.writer_wake.notify_one();
    }
}

impl std::fmt::Debug for JsonLinesAuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesAuditSink")
            .field("path", &self.handle.path)
            .finish_non_exhaustive()
    }
}

impl JsonLinesAuditSink {
    /// Opens (creating it and its directory if needed) `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        Self::open_with(path, JsonLinesOptions::default())
    }

    /// Opens `path` with explicit options, continuing the chain of the
    /// files already there. Fails if the directory or file cannot be
    /// created or written, or the active file's last line is not a chain
    /// line, so a misconfigured or damaged trail stops the start.
    pub fn open_with(path: impl AsRef<Path>, options: JsonLinesOptions) -> std::io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let naming = Naming::new(&path);
        std::fs::create_dir_all(naming.dir())?;
        let recovered = recover::recover(&naming)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                events: Vec::new(),
                batch: AuditBatch::new(),
                sync: false,
                writer_idle: false,
                closed: false,
            }),
            writer_wake: Condvar::new(),
            space: tokio::sync::Notify::new(),
            capacity: options.queue_capacity.max(1),
            refusing: AtomicU8::new(OPEN),
            write_failing: AtomicBool::new(false),
            over_soft: AtomicBool::new(false),
            low_disk: AtomicBool::new(false),
            closed_bytes: AtomicU64::new(0),
            active_bytes: AtomicU64::new(0),
            free_bytes: AtomicU64::new(u64::MAX),
            sync_file: Mutex::new(None),
            unsynced: AtomicBool::new(false),
            #[cfg(test)]
            paused: AtomicBool::new(false),
        });
        let (to_housekeeper, from_writer) = std::sync::mpsc::channel();
        let mut housekeeper =
            housekeeping::Housekeeper::new(shared.clone(), naming.clone(), &options, from_writer);
        // Sizes and free space are known before the first event.
        housekeeper.measure();
        let writer =
            writer::Writer::start(shared.clone(), naming, &options, recovered, to_housekeeper)?;
        std::thread::Builder::new()
            .name("kailash-audit-files".into())
            .spawn(move || housekeeper.run())?;
        if let FsyncPolicy::Interval(every) = options.fsync {
            let weak = Arc::downgrade(&shared);
            let every = every.max(Duration::from_millis(1));
            std::thread::Builder::new()
                .name("kailash-audit-sync".into())
                .spawn(move || writer::run_syncer(weak, every))?;
        }
        std::thread::Builder::new()
            .name("kailash-audit".into())
            .spawn(move || writer.run())?;
        Ok(Self {
            handle: Arc::new(Handle {
                shared,
                path,
                enqueue_timeout: options.enqueue_timeout,
                options,
            }),
        })
    }

    /// The active file.
    pub fn path(&self) -> &Path {
        &self.handle.path
    }

    /// The options it was opened with.
    pub fn options(&self) -> &JsonLinesOptions {
        &self.handle.options
    }

    /// Whether the last write failed (for a readiness check).
    pub fn is_failing(&self) -> bool {
        self.handle.shared.write_failing.load(Ordering::Relaxed)
    }

    /// The sink's use of its storage.
    pub fn storage(&self) -> StorageStatus {
        let s = &self.handle.shared;
        StorageStatus {
            total_bytes: s.total_bytes(),
            free_bytes: s.free_bytes.load(Ordering::Relaxed),
            over_soft_cap: s.over_soft.load(Ordering::Relaxed),
            low_free_space: s.low_disk.load(Ordering::Relaxed),
            refusing: s.refusal().is_some(),
        }
    }

    /// Accepts `events` all together: they go into one batch, written by
    /// one `write` (so either every one of them is in the file or none
    /// is), waiting up to the enqueue timeout for room. A sink that
    /// spools another sink's batches uses it to keep their all-or-nothing
    /// meaning. More events than the queue holds are refused
    /// ([`AuditError::Backpressure`]) without waiting.
    pub async fn record_all(&self, events: Vec<AuditEvent>) -> Result<(), AuditError> {
        if events.is_empty() {
            return Ok(());
        }
        let shared = &self.handle.shared;
        if events.len() > shared.capacity {
            refused();
            return Err(AuditError::Backpressure);
        }
        super::enqueue_or_wait(&shared.space, self.handle.enqueue_timeout, events, |e| {
            self.enqueue_all(e)
        })
        .await
    }

    fn enqueue_all(&self, mut events: Vec<AuditEvent>) -> Result<AuditTicket, Vec<AuditEvent>> {
        let shared = &self.handle.shared;
        if let Some(error) = shared.refusal() {
            refused();
            return Ok(AuditTicket::ready(Err(error)));
        }
        let mut queue = shared.lock();
        if queue.closed {
            drop(queue);
            refused();
            return Ok(AuditTicket::ready(Err(AuditError::Closed)));
        }
        if queue.events.len() + events.len() > shared.capacity {
            return Err(events);
        }
        queue.events.append(&mut events);
        let ticket = queue.batch.ticket();
        let wake = std::mem::take(&mut queue.writer_idle);
        drop(queue);
        if wake {
            shared.writer_wake.notify_one();
        }
        Ok(ticket)
    }

    #[allow(
        clippy::result_large_err,
        reason = "the event goes back by value, unboxed"
    )]
    fn enqueue(&self, event: AuditEvent) -> Result<AuditTicket, AuditEvent> {
        let shared = &self.handle.shared;
        if let Some(error) = shared.refusal() {
            refused();
            return Ok(AuditTicket::ready(Err(error)));
        }
        let mut queue = shared.lock();
        if queue.closed {
            drop(queue);
            refused();
            return Ok(AuditTicket::ready(Err(AuditError::Closed)));
        }
        if queue.events.len() >= shared.capacity {
            return Err(event);
        }
        queue.events.push(event);
        let ticket = queue.batch.ticket();
        let wake = std::mem::take(&mut queue.writer_idle);
        drop(queue);
        if wake {
            shared.writer_wake.notify_one();
        }
        Ok(ticket)
    }
}

/// An event the sink refused before queueing it (storage refusing, closed,
/// or the queue full past the enqueue timeout).
fn refused() {
    metrics::counter!("kailash_audit_events_total", "outcome" => "refused").increment(1);
}

#[async_trait]
impl AuditSink for JsonLinesAuditSink {
    #[allow(
        clippy::result_large_err,
        reason = "the event goes back by value, unboxed"
    )]
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        let handle = &self.handle;
        super::enqueue_or_wait(&handle.shared.space, handle.enqueue_timeout, event, |e| {
            self.enqueue(e)
        })
        .await
    }

    fn try_record(&self, event: AuditEvent) -> Result<AuditTicket, AuditEvent> {
        self.enqueue(event)
    }

    async fn flush(&self) -> Result<(), AuditError> {
        let shared = &self.handle.shared;
        let ticket = {
            let mut queue = shared.lock();
            if queue.closed {
                return Err(AuditError::Closed);
            }
            queue.sync = true;
            queue.writer_idle = false;
            queue.batch.ticket()
        };
        shared.writer_wake.notify_one();
        ticket.await
    }

    fn health(&self) -> Result<(), AuditError> {
        let s = &self.handle.shared;
        if let Some(error) = s.refusal() {
            Err(error)
        } else if s.write_failing.load(Ordering::Relaxed) {
            Err(AuditError::Io(
                "the last write to the audit file failed".into(),
            ))
        } else if s.low_disk.load(Ordering::Relaxed) {
            Err(AuditError::StorageLow(
                "free space is below audit.min_free_bytes",
            ))
        } else if s.over_soft.load(Ordering::Relaxed) {
            Err(AuditError::StorageLow(
                "the audit files reached audit.max_total_bytes",
            ))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
