//! `kailash keys rotate`: a new signing key, and the `[auth]` lines that
//! put it in force.
//!
//! Rotation without downtime: the new key signs, the old ones stay in
//! `previous_signing_keys` so tokens they signed keep verifying until they
//! expire (the refresh-token lifetime); then drop them from the list.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use kailash::auth::jwt::{Algorithm, SigningKey};
use kailash::config::GatewayConfig;

use crate::Failure;

/// Where the gateway generates its key at first start, when `[auth]` names none.
pub(crate) fn default_key_path(data_dir: &Path, alg: Algorithm) -> PathBuf {
    data_dir.join(default_key_name(alg))
}

fn default_key_name(alg: Algorithm) -> PathBuf {
    Path::new("keys").join(format!("signing-{}.pem", alg.as_str().to_ascii_lowercase()))
}

/// Creates `path` readable by its owner only; fails if it exists. A write
/// that fails part-way removes the file, so no truncated key is left for a
/// later `signing_key` line to point at.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let written = file
        .write_all(contents.as_bytes())
        .and_then(|()| file.sync_all());
    if written.is_err() {
        drop(file);
        let _ = std::fs::remove_file(path);
    }
    written
}

/// A TOML string literal (quoted and escaped).
fn literal(path: &Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}

pub(crate) fn run(config: &Path, data_dir: &Path) -> Result<(), Failure> {
    let loaded = GatewayConfig::load(config).map_err(|e| Failure::refused(e.to_string()))?;
    let auth = loaded.auth.ok_or_else(|| {
        Failure::refused(format!(
            "{}: no [auth] section, so no signing key to rotate",
            config.display()
        ))
    })?;
    let alg = Algorithm::from_name(&auth.algorithm)
        .ok_or_else(|| Failure::refused(format!("unsupported algorithm {}", auth.algorithm)))?;

    // The gateway's own generation, so the new key is what a first start makes.
    let key = SigningKey::generate(alg, "generated")
        .map_err(|e| Failure::refused(format!("cannot generate a signing key: {e}")))?;
    let pem = key
        .to_pkcs8_pem()
        .ok_or_else(|| Failure::refused("the generated key has no PEM form"))?;

    // Relative to the data directory, as the gateway reads `signing_key`.
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let stem = format!("signing-{}-{stamp}", alg.as_str().to_ascii_lowercase());
    let mut written = None;
    for n in 1..=100u32 {
        let name = if n == 1 {
            format!("{stem}.pem")
        } else {
            format!("{stem}-{n}.pem")
        };
        let relative = Path::new("keys").join(name);
        match write_private(&data_dir.join(&relative), pem.expose()) {
            Ok(()) => {
                written = Some(relative);
                break;
            }
            // Never overwrite: take the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(Failure::refused(format!(
                    "cannot write {}: {e}",
                    data_dir.join(&relative).display()
                )));
            }
        }
    }
    let new = written.ok_or_else(|| {
        Failure::refused(format!(
            "{}: every name for this second's key exists; run it again",
            data_dir.join("keys").display()
        ))
    })?;

    // The key in force now becomes the first previous key.
    let mut previous = Vec::new();
    match &auth.signing_key {
        Some(current) => previous.push(current.clone()),
        None if default_key_path(data_dir, alg).exists() => previous.push(default_key_name(alg)),
        None => {}
    }
    for p in auth.previous_signing_keys {
        if !previous.contains(&p) {
            previous.push(p);
        }
    }
    let list: Vec<String> = previous.iter().map(|p| literal(p)).collect();

    eprintln!(
        "# wrote {} (mode 0600); set these lines in [auth] of {} on every instance, then restart.\n# Drop a previous key once the tokens it signed have expired ({}).",
        data_dir.join(&new).display(),
        config.display(),
        auth.refresh_token_ttl,
    );
    println!("signing_key = {}", literal(&new));
    println!("previous_signing_keys = [{}]", list.join(", "));
    Ok(())
}
