//! The second thread: compresses closed files, deletes expired ones,
//! measures sizes and free space, and raises the storage alarms — all off
//! the writer's path.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, SystemTime};

use super::writer::sync_dir;
use super::{FULL, JsonLinesOptions, OPEN, Shared};
use crate::audit::files::{Kind, Naming};

pub(super) struct Housekeeper {
    shared: Arc<Shared>,
    naming: Naming,
    from_writer: Receiver<PathBuf>,
    interval: Duration,
    retention: Duration,
    max_total_bytes: Option<u64>,
    hard_total_bytes: Option<u64>,
    min_free_bytes: u64,
    pending: Vec<PathBuf>,
}

impl Housekeeper {
    pub(super) fn new(
        shared: Arc<Shared>,
        naming: Naming,
        options: &JsonLinesOptions,
        from_writer: Receiver<PathBuf>,
    ) -> Self {
        Self {
            shared,
            naming,
            from_writer,
            interval: options.housekeeping_interval.max(Duration::from_millis(10)),
            retention: options.retention,
            max_total_bytes: options.max_total_bytes,
            hard_total_bytes: options.hard_total_bytes,
            min_free_bytes: options.min_free_bytes,
            pending: Vec::new(),
        }
    }

    pub(super) fn run(mut self) {
        // Closed files left uncompressed by an earlier run.
        if let Ok(files) = self.naming.list_closed() {
            self.pending
                .extend(files.into_iter().filter(|f| !f.compressed).map(|f| f.path));
        }
        loop {
            let stop = match self.from_writer.recv_timeout(self.interval) {
                Ok(path) => {
                    self.pending.push(path);
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            while let Ok(path) = self.from_writer.try_recv() {
                self.pending.push(path);
            }
            self.compress_pending();
            self.expire();
            self.measure();
            if stop {
                return;
            }
        }
    }

    fn compress_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        for path in pending {
            if let Err(e) = compress(&path) {
                tracing::error!(path = %path.display(), error = %e, "could not compress a closed audit file; retrying");
                self.pending.push(path);
            }
        }
    }

    /// Deletes whole closed files closed longer ago than the retention.
    fn expire(&self) {
        let Some(cutoff) = SystemTime::now().checked_sub(self.retention) else {
            return;
        };
        let Ok(files) = self.naming.list_closed() else {
            return;
        };
        for file in files {
            let closed_at = std::fs::metadata(&file.path).and_then(|m| m.modified());
            if closed_at.is_ok_and(|t| t < cutoff) && !self.pending.contains(&file.path) {
                match std::fs::remove_file(&file.path) {
                    Ok(()) => {
                        tracing::info!(path = %file.path.display(), first_seq = file.seq, "deleted an audit file past its retention")
                    }
                    Err(e) => {
                        tracing::error!(path = %file.path.display(), error = %e, "could not delete an expired audit file")
                    }
                }
            }
        }
    }

    /// Measures the closed files and the free space, and raises or clears
    /// the alarms.
    pub(super) fn measure(&mut self) {
        let mut closed = 0u64;
        if let Ok(entries) = std::fs::read_dir(self.naming.dir()) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                if matches!(
                    self.naming.classify(&name.to_string_lossy()),
                    Some(Kind::Closed { .. } | Kind::Legacy | Kind::Temporary)
                ) {
                    closed += entry.metadata().map_or(0, |m| m.len());
                }
            }
        }
        let s = &self.shared;
        s.closed_bytes.store(closed, Ordering::Relaxed);
        let total = s.total_bytes();
        let free = free_bytes(self.naming.dir()).unwrap_or(u64::MAX);
        s.free_bytes.store(free, Ordering::Relaxed);

        let over = self.max_total_bytes.is_some_and(|cap| total >= cap);
        alarm(&s.over_soft, over, || {
            tracing::error!(
                target: "kailash::audit::alert",
                total_bytes = total, limit = self.max_total_bytes,
                "audit files reached audit.max_total_bytes (nothing is deleted before its retention): readiness fails"
            )
        });
        let low = free < self.min_free_bytes;
        alarm(&s.low_disk, low, || {
            tracing::error!(
                target: "kailash::audit::alert",
                free_bytes = free, limit = self.min_free_bytes,
                "free space of the audit directory is below audit.min_free_bytes: readiness fails"
            )
        });
        if self.hard_total_bytes.is_none_or(|hard| total < hard) {
            let _ = s
                .refusing
                .compare_exchange(FULL, OPEN, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

/// Sets `flag` to `on`, calling `raise` when it turns on; logs when it clears.
fn alarm(flag: &std::sync::atomic::AtomicBool, on: bool, raise: impl FnOnce()) {
    match (flag.swap(on, Ordering::Relaxed), on) {
        (false, true) => raise(),
        (true, false) => {
            tracing::info!(target: "kailash::audit::alert", "audit storage alarm cleared")
        }
        _ => {}
    }
}

fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// `X` → `X.gz` (through `X.gz.tmp`, synced before the rename), then `X`
/// is removed: at every step one complete copy exists.
fn compress(path: &Path) -> std::io::Result<()> {
    let mut gz = path.as_os_str().to_owned();
    gz.push(".gz");
    let gz = PathBuf::from(gz);
    let mut tmp = gz.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut input = BufReader::new(File::open(path)?);
        let output = File::create(&tmp)?;
        let mut encoder =
            flate2::write::GzEncoder::new(BufWriter::new(output), flate2::Compression::fast());
        std::io::copy(&mut input, &mut encoder)?;
        let output = encoder.finish()?.into_inner().map_err(|e| e.into_error())?;
        output.sync_all()?;
        // Retention counts from when the file was closed, not compressed.
        if let Ok(closed) = std::fs::metadata(path).and_then(|m| m.modified()) {
            let _ = output.set_modified(closed);
        }
        std::fs::rename(&tmp, &gz)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(dir) = gz.parent() {
        sync_dir(dir);
    }
    std::fs::remove_file(path)
}
