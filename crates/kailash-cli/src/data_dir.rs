//! The data directory, chosen as the reference gateway chooses it.

use std::path::PathBuf;

/// `--data-dir`, else `$KAILASH_DATA_DIR`, else `./data`: relative key
/// paths in a config mean the same files here as in the gateway.
pub(crate) fn resolve(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("KAILASH_DATA_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("data"))
}
