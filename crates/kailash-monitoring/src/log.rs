//! A log writer that keeps the request path off the terminal and the disk.
//!
//! A per-request log line written straight to `stderr` costs one `write`
//! system call each (Rust's `stderr` is unbuffered): under load that is the
//! single most expensive thing the gateway does per request after the
//! socket itself. [`LogWriter`] appends each line to a shared in-memory
//! buffer instead, and a background thread hands the buffer to the real
//! output in one `write` every [`flush_interval`](LogWriterBuilder::flush_interval)
//! or as soon as it is half full.
//!
//! Lines are whole: a formatter that writes each event with one
//! `write_all` (as `tracing-subscriber`'s `fmt` layer does) never has its
//! lines interleaved. The buffer is bounded; when the output cannot keep up
//! and the buffer is full, new lines are **dropped and counted** rather than
//! blocking requests, and the next write reports how many were lost (see
//! [`LogWriter::dropped`]). This is for operational logs only: the audit
//! trail, which must never lose an event, has its own sink
//! (`kailash_core::audit`).
//!
//! Dropping the [`LogWriterGuard`] (at the end of `main`) writes what is
//! buffered and stops the thread; a crash loses at most one flush interval
//! of log lines.
//!
//! ```
//! use std::io::Write;
//! use kailash_monitoring::log::LogWriter;
//!
//! let (writer, guard) = LogWriter::builder()
//!     .flush_interval(std::time::Duration::from_millis(5))
//!     .spawn(std::io::sink())
//!     .unwrap();
//! // With tracing-subscriber: `fmt::layer().with_writer(move || writer.clone())`.
//! writer.clone().write_all(b"one line\n").unwrap();
//! drop(guard); // flushes
//! assert_eq!(writer.dropped(), 0);
//! ```

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Builds a [`LogWriter`].
#[derive(Debug, Clone)]
pub struct LogWriterBuilder {
    capacity: usize,
    flush_interval: Duration,
    #[cfg(feature = "pii")]
    redact: Option<kailash_core::pii::PiiDetector>,
}

impl Default for LogWriterBuilder {
    fn default() -> Self {
        Self {
            capacity: 1 << 20,
            flush_interval: Duration::from_millis(20),
            #[cfg(feature = "pii")]
            redact: None,
        }
    }
}

impl LogWriterBuilder {
    /// Bytes buffered at most before new lines are dropped (default 1 MiB,
    /// at least 4 KiB).
    #[must_use]
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes.max(4096);
        self
    }

    /// How long a line may wait in the buffer (default 20 ms; at least 1 ms).
    #[must_use]
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Redacts what `detector` finds (`[REDACTED:<kind>]`) in every line,
    /// on the writer thread: off the request path (feature `pii`).
    #[cfg(feature = "pii")]
    #[must_use]
    pub fn redact_pii(mut self, detector: kailash_core::pii::PiiDetector) -> Self {
        self.redact = Some(detector);
        self
    }

    /// Starts the writer thread, writing to `output`.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn spawn<W: Write + Send + 'static>(
        self,
        output: W,
    ) -> io::Result<(LogWriter, LogWriterGuard)> {
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Vec::with_capacity(self.capacity.min(64 * 1024))),
            wake: Condvar::new(),
            capacity: self.capacity,
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            notified: AtomicBool::new(false),
        });
        let thread_shared = shared.clone();
        let interval = self.flush_interval;
        #[cfg(feature = "pii")]
        let output = Redacting {
            output,
            detector: self.redact,
        };
        let thread = std::thread::Builder::new()
            .name("kailash-log".into())
            .spawn(move || run(&thread_shared, output, interval))?;
        Ok((
            LogWriter {
                shared: shared.clone(),
            },
            LogWriterGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }
}

struct Shared {
    buffer: Mutex<Vec<u8>>,
    wake: Condvar,
    capacity: usize,
    dropped: AtomicU64,
    closed: AtomicBool,
    /// The writer was woken early and has not run since (one wake per fill).
    notified: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while holding the lock leaves plain bytes: keep going.
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writing end: cheap to clone, one per formatter call. See the
/// [module docs](self).
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("capacity", &self.shared.capacity)
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl LogWriter {
    /// A builder with the defaults (1 MiB, 20 ms).
    pub fn builder() -> LogWriterBuilder {
        LogWriterBuilder::default()
    }

    /// Lines dropped so far because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let shared = &self.shared;
        if shared.closed.load(Ordering::Relaxed) {
            // After the guard is gone: write through, like plain stderr.
            return io::stderr().write(bytes);
        }
        let mut buffer = shared.lock();
        if buffer.len() + bytes.len() > shared.capacity {
            drop(buffer);
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            // Reported as written: a formatter must not retry or fail the request.
            return Ok(bytes.len());
        }
        buffer.extend_from_slice(bytes);
        let half_full = buffer.len() >= shared.capacity / 2;
        drop(buffer);
        if half_full && !shared.notified.swap(true, Ordering::AcqRel) {
            shared.wake.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Stops the writer thread when dropped, after writing what is buffered.
pub struct LogWriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LogWriterGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriterGuard").finish_non_exhaustive()
    }
}

impl Drop for LogWriterGuard {
    fn drop(&mut self) {
        {
            // Under the lock, so the thread cannot miss the wake-up.
            let _buffer = self.shared.lock();
            self.shared.closed.store(true, Ordering::Release);
            self.shared.wake.notify_one();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The output, redacting each batch of whole lines first.
#[cfg(feature = "pii")]
struct Redacting<W> {
    output: W,
    detector: Option<kailash_core::pii::PiiDetector>,
}

#[cfg(feature = "pii")]
impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.write_all(bytes).map(|()| bytes.len())
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(detector) = &self.detector else {
            return self.output.write_all(bytes);
        };
        let text = String::from_utf8_lossy(bytes);
        self.output.write_all(detector.redact(&text).as_bytes())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.output.flush()
    }
}

fn run<W: Write>(shared: &Shared, mut output: W, interval: Duration) {
    let mut spare = Vec::new();
    let mut reported = 0u64;
    loop {
        let closed = {
            // Sleep out the interval (so a steady stream is batched, not
            // written as it comes), unless the buffer filled or we stop.
            let buffer = shared.lock();
            let mut buffer = shared
                .wake
                .wait_timeout_while(buffer, interval, |_| {
                    !shared.notified.load(Ordering::Acquire)
                        && !shared.closed.load(Ordering::Acquire)
                })
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            std::mem::swap(&mut *buffer, &mut spare);
            shared.notified.store(false, Ordering::Release);
            shared.closed.load(Ordering::Acquire)
        };
        let dropped = shared.dropped.load(Ordering::Relaxed);
        if dropped > reported {
            let note = format!(
                "kailash-log: {} log line(s) dropped: the log output could not keep up\n",
                dropped - reported
            );
            reported = dropped;
            let _ = output.write_all(note.as_bytes());
        }
        if !spare.is_empty() {
            // A failing output (a closed pipe) loses log lines, never requests.
            let _ = output.write_all(&spare);
            let _ = output.flush();
            spare.clear();
            // Keep a burst's allocation, but not an outsized one.
            if spare.capacity() > shared.capacity {
                spare.shrink_to(64 * 1024);
            }
        }
        if closed {
            let rest = std::mem::take(&mut *shared.lock());
            let _ = output.write_all(&rest);
            let _ = output.flush();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "pii")]
    #[test]
    fn personal_data_is_redacted_on_the_writer_thread() {
        let out = Captured::default();
        let (mut writer, guard) = LogWriter::builder()
            .redact_pii(kailash_core::pii::PiiDetector::all())
            .spawn(out.clone())
            .unwrap();
        writer
            .write_all(
                b"login failed for ann@example.com from 203.0.113.9\nstatus=200 latency=1ms\n",
            )
            .unwrap();
        drop(guard);
        assert_eq!(
            String::from_utf8(out.bytes.lock().unwrap().clone()).unwrap(),
            "login failed for [REDACTED:email] from [REDACTED:ip_address]\nstatus=200 latency=1ms\n"
        );
    }

    /// An output the test can read, that can be made to stall.
    #[derive(Clone, Default)]
    struct Captured {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<AtomicU64>,
        stall: Arc<Mutex<()>>,
    }

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let _stall = self.stall.lock().unwrap();
            self.writes.fetch_add(1, Ordering::Relaxed);
            self.bytes.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_and_batched() {
        let out = Captured::default();
        let (writer, guard) = LogWriter::builder()
            .flush_interval(Duration::from_millis(50))
            .spawn(out.clone())
            .unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        w.write_all(format!("thread {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(out.bytes.lock().unwrap().clone()).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2000);
        assert!(lines.iter().all(|l| l.starts_with("thread ")));
        for t in 0..4 {
            let mine: Vec<_> = lines
                .iter()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            assert_eq!(mine.len(), 500, "every line of thread {t}, in order");
            assert!(mine[499].ends_with("line 499"));
        }
        assert!(
            out.writes.load(Ordering::Relaxed) < 200,
            "batched: {} writes for 2000 lines",
            out.writes.load(Ordering::Relaxed)
        );
        assert_eq!(writer.dropped(), 0);
    }

    #[test]
    fn a_stalled_output_drops_and_reports_instead_of_blocking() {
        let out = Captured::default();
        let stall = out.stall.clone();
        let held = stall.lock().unwrap();
        let (writer, guard) = LogWriter::builder()
            .capacity(4096)
            .flush_interval(Duration::from_millis(1))
            .spawn(out.clone())
            .unwrap();
        let mut w = writer.clone();
        let line = [b'x'; 99];
        let started = std::time::Instant::now();
        for _ in 0..1000 {
            w.write_all(&line).unwrap();
            w.write_all(b"\n").unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "writes never wait for the output"
        );
        assert!(writer.dropped() > 0);
        drop(held);
        drop(guard);
        let text = String::from_utf8(out.bytes.lock().unwrap().clone()).unwrap();
        assert!(text.contains("dropped: the log output could not keep up"));
    }

    #[test]
    fn a_trickle_is_written_within_the_interval() {
        let out = Captured::default();
        let (writer, _guard) = LogWriter::builder()
            .flush_interval(Duration::from_millis(5))
            .spawn(out.clone())
            .unwrap();
        writer.clone().write_all(b"hello\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while out.bytes.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(&out.bytes.lock().unwrap()[..], b"hello\n");
    }
}
