//! The writer thread: takes the whole queue as one batch, chains and
//! serialises it, writes it with one `write`, completes its tickets.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use super::recover::Recovered;
use super::{CLOSED, FULL, FsyncPolicy, JsonLinesOptions, OPEN, Shared};
use crate::audit::entry::{ChainHash, encode_entry, encode_header};
use crate::audit::files::Naming;
use crate::audit::{AuditBatch, AuditError, AuditEvent, MemoryAuditSink};

pub(super) struct Writer {
    shared: Arc<Shared>,
    naming: Naming,
    fsync: FsyncPolicy,
    rotate_bytes: u64,
    rotate_interval: Option<Duration>,
    hard_total_bytes: Option<u64>,
    recent: Option<Arc<MemoryAuditSink>>,
    to_housekeeper: Sender<std::path::PathBuf>,

    /// `None` until a new active file (with its header) is written.
    file: Option<File>,
    file_len: u64,
    file_first_seq: u64,
    file_started: Instant,
    next_seq: u64,
    last_hash: ChainHash,

    buf: Vec<u8>,
    spare: Vec<AuditEvent>,
    /// Written since the writer last synced itself (it does at exit).
    unsynced: bool,
}

fn io_error(e: &std::io::Error) -> AuditError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        AuditError::StorageFull
    } else {
        AuditError::Io(e.kind().to_string())
    }
}

impl Writer {
    pub(super) fn start(
        shared: Arc<Shared>,
        naming: Naming,
        options: &JsonLinesOptions,
        recovered: Recovered,
        to_housekeeper: Sender<std::path::PathBuf>,
    ) -> std::io::Result<Self> {
        let mut writer = Self {
            shared,
            naming,
            fsync: options.fsync,
            rotate_bytes: options.rotate_bytes.max(1),
            rotate_interval: options.rotate_interval,
            hard_total_bytes: options.hard_total_bytes,
            recent: options.recent.clone(),
            to_housekeeper,
            file: None,
            file_len: 0,
            file_first_seq: recovered.next_seq,
            file_started: Instant::now(),
            next_seq: recovered.next_seq,
            last_hash: recovered.last_hash,
            buf: Vec::with_capacity(64 * 1024),
            spare: Vec::new(),
            unsynced: false,
        };
        match recovered.active {
            Some(active) => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(writer.naming.active())?;
                let age_ms = jiff::Timestamp::now()
                    .as_millisecond()
                    .saturating_sub(active.start_ms)
                    .max(0);
                writer.file_started = Instant::now()
                    .checked_sub(Duration::from_millis(age_ms.unsigned_abs()))
                    .unwrap_or_else(Instant::now);
                writer.file = Some(file);
                writer.file_len = active.len;
                writer.file_first_seq = active.first_seq;
            }
            // A missing or unwritable directory stops the start here.
            None => writer.new_active_file()?,
        }
        writer
            .shared
            .active_bytes
            .store(writer.file_len, Ordering::Relaxed);
        Ok(writer)
    }

    pub(super) fn run(mut self) {
        loop {
            let Some((events, batch, sync)) = self.next_batch() else {
                break;
            };
            // Room again: callers waiting for it may retry.
            self.shared.space.notify_waiters();
            let result = self.write_batch(&events, sync);
            let outcome = if result.is_ok() { "written" } else { "failed" };
            metrics::counter!("kailash_audit_events_total", "outcome" => outcome)
                .increment(events.len() as u64);
            let mut events = events;
            // Written events are queryable before their requests are
            // answered (a client may ask for them right after).
            if result.is_ok()
                && let Some(recent) = &self.recent
            {
                recent.extend(events.drain(..));
            }
            batch.complete(result);
            events.clear();
            self.spare = events;
            self.periodic();
        }
        if self.unsynced
            && let Some(file) = &self.file
        {
            let _ = file.sync_data();
        }
        self.shared.refusing.store(CLOSED, Ordering::Relaxed);
    }

    /// The next batch: every queued event, or `None` once closed and drained.
    fn next_batch(&mut self) -> Option<(Vec<AuditEvent>, Arc<AuditBatch>, bool)> {
        // Allocated before taking the lock requests contend for.
        let mut fresh = Some(AuditBatch::new());
        let mut queue = self.shared.lock();
        loop {
            #[cfg(test)]
            if self.shared.paused.load(Ordering::Relaxed) {
                drop(queue);
                std::thread::sleep(Duration::from_millis(5));
                queue = self.shared.lock();
                continue;
            }
            if !queue.events.is_empty() || queue.sync {
                let events = std::mem::replace(&mut queue.events, std::mem::take(&mut self.spare));
                let batch = std::mem::replace(&mut queue.batch, fresh.take().unwrap_or_default());
                let sync = std::mem::take(&mut queue.sync);
                return Some((events, batch, sync));
            }
            if queue.closed {
                // Tickets handed out for an empty batch (none) need no answer.
                return None;
            }
            queue.writer_idle = true;
            let (guard, wait) = self
                .shared
                .writer_wake
                .wait_timeout(queue, self.tick())
                .unwrap_or_else(|p| p.into_inner());
            queue = guard;
            queue.writer_idle = false;
            if wait.timed_out() {
                drop(queue);
                self.periodic();
                queue = self.shared.lock();
            }
        }
    }

    fn tick(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// Time-based rotation, between batches. (Interval syncs run on their
    /// own thread, so a slow `fdatasync` never holds a batch back.)
    fn periodic(&mut self) {
        if self
            .rotate_interval
            .is_some_and(|i| self.file_started.elapsed() >= i)
            && self.next_seq > self.file_first_seq
            && let Err(e) = self.rotate()
        {
            tracing::error!(error = %e, "audit file rotation failed; retried at the next batch");
        }
    }

    fn write_batch(&mut self, events: &[AuditEvent], sync: bool) -> Result<(), AuditError> {
        if let Some(hard) = self.hard_total_bytes {
            if self.shared.total_bytes() >= hard {
                if self.shared.refusing.swap(FULL, Ordering::Relaxed) == OPEN {
                    tracing::error!(
                        target: "kailash::audit::alert",
                        limit = hard,
                        "audit storage reached audit.hard_total_bytes: requests needing audit are refused"
                    );
                }
                return Err(AuditError::StorageFull);
            }
            let _ = self.shared.refusing.compare_exchange(
                FULL,
                OPEN,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        if !events.is_empty() {
            let due = self.file_len >= self.rotate_bytes && self.next_seq > self.file_first_seq;
            if (self.file.is_none() || due)
                && let Err(e) = self.rotate()
            {
                self.failed(&e);
                return Err(io_error(&e));
            }
        }
        let Some(file) = &mut self.file else {
            return Err(AuditError::Io("no active audit file".into()));
        };
        let (seq, hash) = (self.next_seq, self.last_hash);
        self.buf.clear();
        for event in events {
            self.last_hash = encode_entry(event, self.next_seq, &self.last_hash, &mut self.buf);
            self.next_seq += 1;
        }
        let sync = sync || self.fsync == FsyncPolicy::Batch;
        let written = file
            .write_all(&self.buf)
            .and_then(|()| if sync { file.sync_data() } else { Ok(()) });
        match written {
            Ok(()) => {
                self.file_len += self.buf.len() as u64;
                self.shared
                    .active_bytes
                    .store(self.file_len, Ordering::Relaxed);
                if !sync && !self.buf.is_empty() {
                    self.unsynced = true;
                    self.shared.unsynced.store(true, Ordering::Relaxed);
                }
                if self.shared.write_failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(path = %self.naming.active().display(), "audit writes recovered");
                }
                Ok(())
            }
            Err(e) => {
                // Undo: the chain goes on from the last written entry, and
                // the file is cut back to it, so nothing refused is kept.
                self.next_seq = seq;
                self.last_hash = hash;
                if let Err(cut) = file.set_len(self.file_len) {
                    tracing::error!(error = %cut, "could not cut a failed audit write back; the sink stops");
                    self.shared.refusing.store(CLOSED, Ordering::Relaxed);
                }
                self.failed(&e);
                Err(io_error(&e))
            }
        }
    }

    fn failed(&self, e: &std::io::Error) {
        if !self.shared.write_failing.swap(true, Ordering::Relaxed) {
            tracing::error!(
                target: "kailash::audit::alert",
                path = %self.naming.active().display(), error = %e,
                "audit write failed; requests needing audit are refused until writes succeed"
            );
        }
    }

    /// Closes the active file (if any) and starts a new one whose header
    /// continues the chain. Nothing is lost if it fails half-way: a file
    /// already renamed is closed, and the next batch starts the new one.
    fn rotate(&mut self) -> std::io::Result<()> {
        if let Some(file) = self.file.take() {
            if let Err(e) = file.sync_all() {
                self.file = Some(file);
                return Err(e);
            }
            drop(file);
            let closed = self.naming.closed(self.file_first_seq);
            if let Err(e) = std::fs::rename(self.naming.active(), &closed) {
                match OpenOptions::new().append(true).open(self.naming.active()) {
                    Ok(file) => self.file = Some(file),
                    // Neither closed nor writable: stop rather than risk
                    // starting a new file over this one.
                    Err(_) => self.shared.refusing.store(CLOSED, Ordering::Relaxed),
                }
                return Err(e);
            }
            self.shared
                .closed_bytes
                .fetch_add(self.file_len, Ordering::Relaxed);
            self.shared.active_bytes.store(0, Ordering::Relaxed);
            self.file_len = 0;
            let _ = self.to_housekeeper.send(closed);
        }
        self.new_active_file()
    }

    fn new_active_file(&mut self) -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.naming.active())?;
        // A header write that failed before left a partial file.
        file.set_len(0)?;
        self.buf.clear();
        let hash = encode_header(
            self.next_seq,
            jiff::Timestamp::now().as_millisecond(),
            &self.last_hash,
            &mut self.buf,
        );
        file.write_all(&self.buf)?;
        file.sync_all()?;
        sync_dir(self.naming.dir());
        self.last_hash = hash;
        self.file_len = self.buf.len() as u64;
        self.file_first_seq = self.next_seq;
        self.file_started = Instant::now();
        self.shared
            .active_bytes
            .store(self.file_len, Ordering::Relaxed);
        *self
            .shared
            .sync_file
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = file.try_clone().ok();
        self.file = Some(file);
        Ok(())
    }
}

/// Syncs the active file every `every` while there are unsynced writes,
/// off the writer's thread; stops once the sink and its writer are gone.
pub(super) fn run_syncer(shared: std::sync::Weak<Shared>, every: Duration) {
    loop {
        std::thread::sleep(every);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if !shared.unsynced.swap(false, Ordering::Relaxed) {
            continue;
        }
        let file = shared.sync_file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = file.as_ref()
            && let Err(e) = file.sync_data()
        {
            shared.unsynced.store(true, Ordering::Relaxed);
            tracing::error!(error = %e, "audit file sync failed; retried");
        }
    }
}

/// Makes a rename or a new file in `dir` durable (best effort: not every
/// file system syncs directories).
pub(super) fn sync_dir(dir: &std::path::Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
