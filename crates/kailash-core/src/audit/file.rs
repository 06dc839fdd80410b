use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::{AuditError, AuditEvent, AuditSink};

/// Options of [`JsonLinesAuditSink`].
#[derive(Debug, Clone)]
pub struct JsonLinesOptions {
    /// Events queued between the request path and the writer thread.
    pub queue_capacity: usize,
    /// How long `record` waits for room in a full queue before answering
    /// [`AuditError::Backpressure`] (the caller then fails its request rather
    /// than lose the event).
    pub enqueue_timeout: Duration,
    /// How long the writer waits before retrying after a failed write.
    pub retry_delay: Duration,
}

impl Default for JsonLinesOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 65_536,
            enqueue_timeout: Duration::from_secs(5),
            retry_delay: Duration::from_secs(1),
        }
    }
}

enum Command {
    Event(Box<AuditEvent>),
    Flush(oneshot::Sender<Result<(), String>>),
}

/// Appends events as JSON lines to a file, from a dedicated writer thread.
///
/// `record` only enqueues; the thread serialises, writes in batches (one
/// `write` per burst of events) and hands the batch to the OS, so a process
/// crash loses nothing that was written; [`flush`](AuditSink::flush) also
/// `fsync`s, for a power loss. A failing disk keeps events queued and
/// retried, logs the error (never the event), and turns into
/// [`AuditError::Backpressure`] for new events once the queue is full.
///
/// The file is opened in append mode, so external rotation by rename (or
/// `copytruncate`) is safe.
///
/// ```
/// use kailash_core::audit::{AuditDecision, AuditEvent, AuditSink, JsonLinesAuditSink};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join(format!("kailash-audit-doc-{}", std::process::id()));
/// let sink = JsonLinesAuditSink::open(dir.join("audit.jsonl"))?;
/// sink.record(AuditEvent::new("auth.logout", AuditDecision::Success).actor("bob")).await.unwrap();
/// sink.flush().await.unwrap();
/// let text = std::fs::read_to_string(dir.join("audit.jsonl"))?;
/// assert!(text.contains("\"action\":\"auth.logout\""));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct JsonLinesAuditSink {
    tx: mpsc::Sender<Command>,
    enqueue_timeout: Duration,
    path: Arc<PathBuf>,
    failing: Arc<AtomicBool>,
}

impl JsonLinesAuditSink {
    /// Opens (creating it and its directory if needed) `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        Self::open_with(path, JsonLinesOptions::default())
    }

    /// Opens `path` with explicit options. Fails if the file cannot be opened
    /// for appending, so a misconfigured path stops the start.
    pub fn open_with(path: impl AsRef<Path>, options: JsonLinesOptions) -> std::io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let failing = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            file: BufWriter::with_capacity(64 * 1024, file),
            path: path.clone(),
            retry_delay: options.retry_delay,
            failing: failing.clone(),
            pending: Vec::new(),
        };
        std::thread::Builder::new()
            .name("kailash-audit".into())
            .spawn(move || writer.run(rx))?;
        Ok(Self {
            tx,
            enqueue_timeout: options.enqueue_timeout,
            path: Arc::new(path),
            failing,
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the last write failed (for a readiness check).
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl AuditSink for JsonLinesAuditSink {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        match self
            .tx
            .send_timeout(Command::Event(Box::new(event)), self.enqueue_timeout)
            .await
        {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(AuditError::Backpressure),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(AuditError::Closed),
        }
    }

    fn try_record(&self, event: AuditEvent) -> Option<AuditEvent> {
        // Full: the caller waits in `record` (up to the enqueue timeout);
        // closed: `record` reports it. Either way the event goes back.
        match self.tx.try_send(Command::Event(Box::new(event))) {
            Ok(()) => None,
            Err(e) => match e.into_inner() {
                Command::Event(event) => Some(*event),
                // Only events are sent here.
                Command::Flush(_) => None,
            },
        }
    }

    async fn flush(&self) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Command::Flush(ack))
            .await
            .map_err(|_| AuditError::Closed)?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AuditError::Io(e)),
            Err(_) => Err(AuditError::Closed),
        }
    }

    fn health(&self) -> Result<(), AuditError> {
        if self.tx.is_closed() {
            Err(AuditError::Closed)
        } else if self.is_failing() {
            Err(AuditError::Io(
                "the last write to the audit file failed".into(),
            ))
        } else {
            Ok(())
        }
    }
}

struct Writer {
    file: BufWriter<File>,
    path: PathBuf,
    retry_delay: Duration,
    failing: Arc<AtomicBool>,
    /// Serialised lines not yet handed to the OS.
    pending: Vec<u8>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(first) = rx.blocking_recv() {
            let mut flushes = Vec::new();
            self.take(first, &mut flushes);
            // Batch whatever else is already queued into the same write.
            while let Ok(cmd) = rx.try_recv() {
                self.take(cmd, &mut flushes);
            }
            let fsync = !flushes.is_empty();
            let result = self.write_out(fsync);
            for ack in flushes {
                let _ = ack.send(result.clone());
            }
            if result.is_err() {
                std::thread::sleep(self.retry_delay);
            }
        }
        // Every sender is gone: write what is left, retrying a few times.
        for _ in 0..5 {
            if self.write_out(true).is_ok() {
                return;
            }
            std::thread::sleep(self.retry_delay);
        }
        tracing::error!(path = %self.path.display(), "audit writer stopped with unwritten events");
    }

    fn take(&mut self, cmd: Command, flushes: &mut Vec<oneshot::Sender<Result<(), String>>>) {
        match cmd {
            Command::Event(event) => {
                // An event of strings, numbers and timestamps always serialises.
                if serde_json::to_writer(&mut self.pending, &event).is_ok() {
                    self.pending.push(b'\n');
                }
            }
            Command::Flush(ack) => flushes.push(ack),
        }
    }

    fn write_out(&mut self, fsync: bool) -> Result<(), String> {
        let result = (|| {
            if !self.pending.is_empty() {
                self.file.write_all(&self.pending)?;
                self.pending.clear();
            }
            self.file.flush()?;
            if fsync {
                self.file.get_ref().sync_data()?;
            }
            Ok::<(), std::io::Error>(())
        })();
        match result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(path = %self.path.display(), "audit writes recovered");
                }
                Ok(())
            }
            Err(e) => {
                // BufWriter keeps what it could not write; `pending` is only
                // cleared once handed over, so nothing accepted is dropped.
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(path = %self.path.display(), error = %e, "audit write failed; retrying");
                }
                Err(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditDecision;

    fn temp_path(name: &str) -> PathBuf {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).unwrap();
        std::env::temp_dir()
            .join(format!("kailash-audit-{}", u64::from_le_bytes(bytes)))
            .join(name)
    }

    #[tokio::test]
    async fn every_accepted_event_is_written_in_order() {
        let path = temp_path("a.jsonl");
        let sink = JsonLinesAuditSink::open(&path).unwrap();
        let mut tasks = Vec::new();
        for i in 0..500 {
            let sink = sink.clone();
            tasks.push(tokio::spawn(async move {
                sink.record(AuditEvent::new("t", AuditDecision::Allow).resource(i.to_string()))
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        sink.flush().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut seen: Vec<u32> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<AuditEvent>(l)
                    .unwrap()
                    .resource
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..500).collect::<Vec<_>>());
        std::fs::remove_dir_all(path.parent().unwrap()).ok();
    }

    #[tokio::test]
    async fn reopening_appends() {
        let path = temp_path("b.jsonl");
        for who in ["first", "second"] {
            let sink = JsonLinesAuditSink::open(&path).unwrap();
            sink.record(AuditEvent::new("t", AuditDecision::Allow).actor(who))
                .await
                .unwrap();
            sink.flush().await.unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        std::fs::remove_dir_all(path.parent().unwrap()).ok();
    }

    #[test]
    fn an_unopenable_path_is_an_error_at_start() {
        assert!(JsonLinesAuditSink::open("/proc/kailash-cannot-create/audit.jsonl").is_err());
    }
}
