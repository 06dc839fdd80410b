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

/// Verifies the trail in the PostgreSQL database whose URL is in the
/// environment variable `var`, with the checkpoint keys in `keys`.
pub(crate) fn run_database(
    var: &str,
    keys: &[PathBuf],
    ca_file: Option<PathBuf>,
) -> Result<(), Failure> {
    use kailash_postgres::audit::{PgVerifyError, VerifyingKey, verify};
    use kailash_postgres::{Database, DbSettings};

    let url = std::env::var(var)
        .ok()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Failure::input(format!("the environment variable {var} is not set")))?;
    let mut public = Vec::with_capacity(keys.len());
    for path in keys {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::input(format!("{}: {e}", path.display())))?;
        public.push(
            VerifyingKey::from_pem(&text)
                .map_err(|e| Failure::input(format!("{}: {e}", path.display())))?,
        );
    }
    let mut settings = DbSettings::new(url);
    settings.ca_file = ca_file;
    // A long trail takes as long as it takes: no statement timeout.
    settings.statement_timeout = std::time::Duration::from_secs(24 * 3600);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::input(format!("could not start the runtime: {e}")))?;
    runtime.block_on(async {
        let db = Database::connect(&settings)
            .await
            .map_err(|e| Failure::input(e.to_string()))?;
        match verify(&db, &public).await {
            Ok(r) => {
                let mut hash = [0u8; 43];
                kailash::audit::entry::encode_hash(&r.last_hash, &mut hash);
                let start = if r.first_seq <= 1 {
                    "from the first entry".to_owned()
                } else {
                    format!("from entry {} (anchored by the checkpoint before it)", r.first_seq)
                };
                let signed = if public.is_empty() {
                    "checked against the chain only (no --public-key)"
                } else {
                    "signatures verified"
                };
                let newest = r
                    .latest_checkpoint
                    .map_or_else(String::new, |s| format!(", newest at entry {s}"));
                println!(
                    "ok: {} entries in the database {start}, up to entry {}; {} checkpoint(s){newest}, {signed}; last hash {}",
                    r.entries,
                    r.last_seq,
                    r.checkpoints,
                    String::from_utf8_lossy(&hash),
                );
                Ok(())
            }
            Err(PgVerifyError::Broken(brk)) => Err(Failure::refused(format!(
                "the audit trail is broken: {brk}"
            ))),
            Err(other) => Err(Failure::input(other.to_string())),
        }
    })
}
