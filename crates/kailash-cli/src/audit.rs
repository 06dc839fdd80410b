//! `kailash audit verify`: checks the hash chain of the audit files.

use std::path::{Path, PathBuf};

use kailash::audit::{VerifyError, VerifyReport, verify_dir, verify_files};

use crate::Failure;

/// Verifies `files` in the order given, or, without files, the chain of
/// `DIR/audit.jsonl` (its closed and compressed files, then itself).
pub(crate) fn run(data_dir: &Path, files: &[PathBuf]) -> Result<(), Failure> {
    let result = if files.is_empty() {
        verify_dir(&data_dir.join("audit.jsonl"))
    } else {
        verify_files(files)
    };
    match result {
        Ok(report) => {
            println!("{}", summary(&report));
            Ok(())
        }
        Err(VerifyError::Broken(brk)) => Err(Failure::refused(format!(
            "the audit chain is broken: {brk}"
        ))),
        Err(other) => Err(Failure::input(other.to_string())),
    }
}

fn summary(r: &VerifyReport) -> String {
    let start = if r.from_genesis {
        "from the first entry".to_owned()
    } else {
        format!(
            "from entry {} (earlier files expired or were not given)",
            r.first_seq
        )
    };
    let tail = if r.partial_tail {
        "; the last line is incomplete (a write in progress or cut by a crash, never an accepted event)"
    } else {
        ""
    };
    let mut hash = [0u8; 43];
    kailash::audit::entry::encode_hash(&r.last_hash, &mut hash);
    format!(
        "ok: {} entries in {} file(s) {start}, up to entry {}; last hash {}{tail}",
        r.entries,
        r.files,
        r.last_seq,
        String::from_utf8_lossy(&hash),
    )
}
