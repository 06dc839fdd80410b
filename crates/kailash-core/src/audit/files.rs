//! The names of an audit sink's files: the active file as configured
//! (`audit.jsonl`), closed ones beside it named by their first sequence
//! number (`audit-00000000000000000001.jsonl`, then `….jsonl.gz` once
//! compressed).

use std::path::{Path, PathBuf};

/// A closed file of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClosedFile {
    pub(crate) seq: u64,
    pub(crate) path: PathBuf,
    pub(crate) compressed: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Naming {
    dir: PathBuf,
    active: PathBuf,
    stem: String,
    ext: String,
}

impl Naming {
    pub(crate) fn new(active: &Path) -> Self {
        let dir = match active.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let stem = active
            .file_stem()
            .map_or_else(|| "audit".to_owned(), |s| s.to_string_lossy().into_owned());
        let ext = active
            .extension()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        Self {
            dir,
            active: active.to_path_buf(),
            stem,
            ext,
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn active(&self) -> &Path {
        &self.active
    }

    fn suffix(&self) -> String {
        if self.ext.is_empty() {
            String::new()
        } else {
            format!(".{}", self.ext)
        }
    }

    pub(crate) fn closed(&self, seq: u64) -> PathBuf {
        self.dir
            .join(format!("{}-{seq:020}{}", self.stem, self.suffix()))
    }

    #[cfg(test)]
    pub(crate) fn compressed(&self, seq: u64) -> PathBuf {
        self.dir
            .join(format!("{}-{seq:020}{}.gz", self.stem, self.suffix()))
    }

    pub(crate) fn legacy(&self, millis: i64) -> PathBuf {
        self.dir
            .join(format!("{}-legacy-{millis}{}", self.stem, self.suffix()))
    }

    /// What a file name is to this sink.
    pub(crate) fn classify(&self, name: &str) -> Option<Kind> {
        let rest = name.strip_prefix(self.stem.as_str())?.strip_prefix('-')?;
        if rest.ends_with(".tmp") {
            return Some(Kind::Temporary);
        }
        if rest.starts_with("legacy-") {
            return Some(Kind::Legacy);
        }
        let suffix = self.suffix();
        let (digits, compressed) = if let Some(d) = rest.strip_suffix(&format!("{suffix}.gz")) {
            (d, true)
        } else {
            (rest.strip_suffix(suffix.as_str())?, false)
        };
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Kind::Closed {
            seq: digits.parse().ok()?,
            compressed,
        })
    }

    /// Closed files, oldest first; a file present both plain and
    /// compressed (a crash during compression) is listed once, compressed.
    pub(crate) fn list_closed(&self) -> std::io::Result<Vec<ClosedFile>> {
        let mut files: Vec<ClosedFile> = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(Kind::Closed { seq, compressed }) = self.classify(&name.to_string_lossy())
            else {
                continue;
            };
            files.push(ClosedFile {
                seq,
                path: entry.path(),
                compressed,
            });
        }
        files.sort_by_key(|f| (f.seq, !f.compressed));
        files.dedup_by_key(|f| f.seq);
        Ok(files)
    }
}

/// A file beside the active one that belongs to the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Closed { seq: u64, compressed: bool },
    Legacy,
    Temporary,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let n = Naming::new(Path::new("/data/audit.jsonl"));
        let closed = n.closed(42);
        assert_eq!(closed, Path::new("/data/audit-00000000000000000042.jsonl"));
        let name = n
            .compressed(42)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(
            n.classify(&name),
            Some(Kind::Closed {
                seq: 42,
                compressed: true
            })
        );
        assert_eq!(n.classify("audit.jsonl"), None);
        assert_eq!(n.classify("audit-legacy-1.jsonl"), Some(Kind::Legacy));
        assert_eq!(
            n.classify("audit-00000000000000000042.jsonl.gz.tmp"),
            Some(Kind::Temporary)
        );
        assert_eq!(n.classify("other-00000000000000000042.jsonl"), None);
    }
}
