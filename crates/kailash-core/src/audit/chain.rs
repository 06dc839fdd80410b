//! Verifying the hash chain of audit files (what `kailash audit verify` runs).
//!
//! ```
//! use kailash_core::audit::{AuditDecision, AuditEvent, AuditSink, JsonLinesAuditSink, verify_dir};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = std::env::temp_dir().join(format!("kailash-chain-doc-{}", std::process::id()));
//! let sink = JsonLinesAuditSink::open(dir.join("audit.jsonl"))?;
//! sink.record(AuditEvent::new("auth.logout", AuditDecision::Success)).await.unwrap();
//! let report = verify_dir(&dir.join("audit.jsonl")).unwrap();
//! assert_eq!(report.entries, 1);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), std::io::Error>(())
//! # }).unwrap();
//! ```

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::entry::{ChainHash, GENESIS, MAX_LINE_BYTES, hash_matches, parse_line};
use super::files::Naming;

/// What a verification found when the chain holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Files read.
    pub files: usize,
    /// Entries verified (headers not counted).
    pub entries: u64,
    /// The sequence number the chain starts at (1 unless older files
    /// expired under retention, or were not given).
    pub first_seq: u64,
    /// The last entry's sequence number (`first_seq - 1` when there is none).
    pub last_seq: u64,
    /// The last hash: keep it elsewhere to detect a later truncation.
    pub last_hash: ChainHash,
    /// Whether the first file continues from the genesis hash (no file
    /// before it ever existed).
    pub from_genesis: bool,
    /// Whether the last file ended in an incomplete line (a write in
    /// progress or cut by a crash: never an accepted event).
    pub partial_tail: bool,
}

/// Where and how the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: line {line}: {problem}", file.display())]
pub struct ChainBreak {
    /// The file.
    pub file: PathBuf,
    /// The line (1-based).
    pub line: u64,
    /// What is wrong.
    pub problem: BreakKind,
}

/// What is wrong at a [`ChainBreak`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BreakKind {
    /// Not a chain line (not JSON, no `h`, longer than the limit).
    #[error("not an audit chain line")]
    Malformed,
    /// The file does not start with a header.
    #[error("the file does not start with a header")]
    MissingHeader,
    /// The line's hash is not that of its content and the line before:
    /// this entry (or the one before it) was altered.
    #[error("hash mismatch at entry {seq}: the entry or the one before it was altered")]
    HashMismatch {
        /// The entry's sequence number as written.
        seq: u64,
    },
    /// An entry is missing (deleted) or repeated.
    #[error("sequence gap: expected entry {expected}, found {found}")]
    SequenceGap {
        /// The sequence number that should come next.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// A file's header does not continue the previous file: a file is
    /// missing between them, or was altered.
    #[error(
        "the file does not continue the previous one (expected entry {expected}, header says {found}): a file is missing or altered"
    )]
    FileGap {
        /// The sequence number the previous file leads to.
        expected: u64,
        /// The one the header gives.
        found: u64,
    },
    /// An incomplete line that is not at the end of the last file.
    #[error("an incomplete line")]
    Truncated,
}

/// Why a verification could not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The chain is broken.
    #[error("{0}")]
    Broken(#[from] ChainBreak),
    /// Nothing to verify.
    #[error("no audit files found")]
    Empty,
}

/// Verifies the files of the sink whose active file is `active` (its
/// closed, possibly compressed, files beside it, then itself), in order.
pub fn verify_dir(active: &Path) -> Result<VerifyReport, VerifyError> {
    let naming = Naming::new(active);
    let mut paths: Vec<PathBuf> = naming
        .list_closed()
        .map_err(|source| VerifyError::Io {
            path: naming.dir().to_path_buf(),
            source,
        })?
        .into_iter()
        .map(|f| f.path)
        .collect();
    if active.exists() {
        paths.push(active.to_path_buf());
    }
    verify_files(&paths)
}

/// Verifies `paths` as consecutive files of one chain, oldest first
/// (`.gz` files are decompressed).
pub fn verify_files(paths: &[PathBuf]) -> Result<VerifyReport, VerifyError> {
    if paths.is_empty() {
        return Err(VerifyError::Empty);
    }
    let mut state = State::default();
    for (i, path) in paths.iter().enumerate() {
        let io = |source| VerifyError::Io {
            path: path.clone(),
            source,
        };
        // A closed file compressed between listing and reading: read the
        // compressed copy (renamed into place only once complete).
        let (file, path) = match File::open(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !is_gz(path) => {
                let mut gz = path.as_os_str().to_owned();
                gz.push(".gz");
                let gz = PathBuf::from(gz);
                (File::open(&gz).map_err(|_| io(e))?, gz)
            }
            other => (other.map_err(io)?, path.clone()),
        };
        let path = &path;
        let reader: Box<dyn Read> = if is_gz(path) {
            Box::new(flate2::read::MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        state.file(path, BufReader::new(reader), i + 1 == paths.len())?;
    }
    Ok(VerifyReport {
        files: paths.len(),
        entries: state.entries,
        first_seq: state.first_seq.unwrap_or(1),
        last_seq: state.next_seq.unwrap_or(1).saturating_sub(1),
        last_hash: state.last_hash.unwrap_or(GENESIS),
        from_genesis: state.from_genesis,
        partial_tail: state.partial_tail,
    })
}

#[derive(Default)]
struct State {
    next_seq: Option<u64>,
    last_hash: Option<ChainHash>,
    first_seq: Option<u64>,
    from_genesis: bool,
    entries: u64,
    partial_tail: bool,
}

impl State {
    fn file(
        &mut self,
        path: &Path,
        mut reader: impl BufRead,
        last: bool,
    ) -> Result<(), VerifyError> {
        let broken = |line: u64, problem: BreakKind| {
            VerifyError::Broken(ChainBreak {
                file: path.to_path_buf(),
                line,
                problem,
            })
        };
        let mut buf = Vec::with_capacity(512);
        let mut number = 0u64;
        loop {
            buf.clear();
            let read = (&mut reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(|source| VerifyError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
            if read == 0 {
                break;
            }
            number += 1;
            if buf.last() != Some(&b'\n') {
                if buf.len() > MAX_LINE_BYTES {
                    return Err(broken(number, BreakKind::Malformed));
                }
                if last && read_nothing_more(&mut reader) {
                    self.partial_tail = true;
                    break;
                }
                return Err(broken(number, BreakKind::Truncated));
            }
            let line = &buf[..buf.len() - 1];
            let parsed = parse_line(line).map_err(|_| broken(number, BreakKind::Malformed))?;
            match (number, parsed.header_prev) {
                (1, None) => return Err(broken(number, BreakKind::MissingHeader)),
                (1, Some(prev)) => {
                    match (self.next_seq, self.last_hash) {
                        (Some(expected), Some(last_hash)) => {
                            if parsed.seq != expected || prev != last_hash {
                                return Err(broken(
                                    number,
                                    BreakKind::FileGap {
                                        expected,
                                        found: parsed.seq,
                                    },
                                ));
                            }
                        }
                        _ => {
                            self.first_seq = Some(parsed.seq);
                            self.from_genesis = prev == GENESIS;
                        }
                    }
                    if !hash_matches(line, &prev, &parsed.hash) {
                        return Err(broken(number, BreakKind::HashMismatch { seq: parsed.seq }));
                    }
                    self.next_seq = Some(parsed.seq);
                }
                (_, Some(_)) => return Err(broken(number, BreakKind::Malformed)),
                (_, None) => {
                    let expected = self.next_seq.unwrap_or(parsed.seq);
                    if parsed.seq != expected {
                        return Err(broken(
                            number,
                            BreakKind::SequenceGap {
                                expected,
                                found: parsed.seq,
                            },
                        ));
                    }
                    let prev = self.last_hash.unwrap_or(GENESIS);
                    if !hash_matches(line, &prev, &parsed.hash) {
                        return Err(broken(number, BreakKind::HashMismatch { seq: parsed.seq }));
                    }
                    self.next_seq = Some(expected + 1);
                    self.entries += 1;
                }
            }
            self.last_hash = Some(parsed.hash);
        }
        if number == 0 {
            return Err(broken(1, BreakKind::MissingHeader));
        }
        Ok(())
    }
}

fn is_gz(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

fn read_nothing_more(reader: &mut impl BufRead) -> bool {
    reader.fill_buf().map(|b| b.is_empty()).unwrap_or(false)
}
