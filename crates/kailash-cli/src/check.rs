//! `kailash config check`: validate a config as the gateway does at start.
//!
//! The gateway's start runs, in order: loading (TOML, environment
//! overrides, [`GatewayConfig`]'s own validation), compiling `[access]`,
//! building the tenant registry, reading the signing keys, and composing
//! the stack (CORS, TLS files, rate limits). This runs the same steps
//! without their side effects: no audit file is opened, no key generated
//! and no backend contacted (a Redis URL is checked, not dialled).

use std::path::Path;
use std::sync::Arc;

use kailash::GatewayBuilder;
use kailash::auth::jwt::{Algorithm, SigningKey};
use kailash::auth::spec::AuthSpec;
use kailash::clock::SystemClock;
use kailash::config::{GatewayConfig, locate_access_error};
use kailash::state::SharedState;

use crate::{Failure, mask};

pub(crate) fn run(file: &Path, data_dir: &Path) -> Result<(), Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::input(format!("cannot read config file {}: {e}", file.display())))?;
    let origin = file.display().to_string();
    let config = GatewayConfig::from_toml_with_env(&text, &origin, std::env::vars())
        .map_err(|e| Failure::refused(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::input(format!("cannot start a runtime: {e}")))?;
    runtime.block_on(check(&config, &text, &origin, data_dir))?;
    print!("{}", effective(&config)?);
    eprintln!("{origin}: valid");
    Ok(())
}

async fn check(
    config: &GatewayConfig,
    text: &str,
    origin: &str,
    data_dir: &Path,
) -> Result<(), Failure> {
    if let Some(url) = &config.state.redis_url {
        // The error names the key, never the URL (it may carry a password).
        kailash::redis::check_url(url).map_err(|_| {
            Failure::refused(format!(
                "{origin}: key `state.redis_url`: invalid Redis URL"
            ))
        })?;
    }
    if let Some(spec) = &config.access {
        kailash::access::AccessPolicy::load(spec)
            .await
            .map_err(|e| Failure::refused(locate_access_error(text, origin, &e)))?;
    }
    if !config.tenants.is_empty() {
        let state = SharedState::memory(Arc::new(SystemClock));
        kailash::tenancy::registry::StaticTenantRegistry::new(config.tenants.clone(), state)
            .map_err(|e| Failure::refused(format!("{origin}: tenants: {e}")))?;
    }
    if let Some(auth) = &config.auth {
        signing_keys(auth, data_dir).map_err(|e| Failure::refused(format!("{origin}: {e}")))?;
    }
    let mut builder = GatewayBuilder::from_config(config)
        .map_err(|e| Failure::refused(format!("{origin}: {e}")))?;
    if config.auth.is_some() {
        // Stands in for the authentication the gateway adds from [auth]
        // (checked above), so per-user limits compose as they do there.
        builder = builder.principal_layer(tower::layer::util::Identity::new());
    }
    // Stand in for the checks the gateway adds with its backends (the audit
    // file, the data directory's disk, the runtime's failure rate, the
    // sessions' count), so alert rules over their signals are checked as
    // they are at start.
    let mut backend_signals = vec!["audit_health", "disk_usage", "disk_usage_health"];
    if config.runtime.is_some() && config.access.is_some() {
        backend_signals.extend(["workflow_failure_rate", "workflow_failure_rate_health"]);
    }
    if config.auth.is_some() {
        backend_signals.extend(["active_sessions", "active_sessions_health"]);
    }
    if config.database.primary.is_some() {
        backend_signals.push("database_health");
    }
    if config.database.replica.is_some() {
        backend_signals.push("database_replica_health");
    }
    // The checkpoint key reads as at start (the database itself is not
    // contacted: a config check works offline).
    if let Some(path) = &config.audit.checkpoint_key_file {
        let path = if path.is_absolute() {
            path.clone()
        } else {
            data_dir.join(path)
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Failure::refused(format!(
                "{origin}: audit.checkpoint_key_file: {}: {}",
                path.display(),
                e.kind()
            ))
        })?;
        kailash_postgres::audit::CheckpointKey::from_pem(&text).map_err(|e| {
            Failure::refused(format!(
                "{origin}: audit.checkpoint_key_file: {}: {e}",
                path.display()
            ))
        })?;
    }
    // Anomaly detection: its signals, and the geo file read as at start
    // (a line that does not parse is named).
    let anomaly = &config.security.anomaly;
    if anomaly.enabled {
        backend_signals.extend(kailash::anomaly::AnomalySignals::NAMES);
        if let Some(file) = &anomaly.geoip_file {
            let path = if file.is_absolute() {
                file.clone()
            } else {
                data_dir.join(file)
            };
            kailash::anomaly::CidrGeoFile::load(&path).map_err(|e| {
                Failure::refused(format!(
                    "{origin}: security.anomaly.geoip_file: {}: {e}",
                    path.display()
                ))
            })?;
        }
    }
    builder = builder.alert_signals(&backend_signals, |_: &mut kailash::signal::Signals| {});
    builder
        .build()
        .map(drop)
        .map_err(|e| Failure::refused(format!("{origin}: {e}")))
}

/// Reads the signing key and the previous keys as the gateway does; a
/// missing default key is fine (the gateway generates it at first start).
fn signing_keys(auth: &AuthSpec, data_dir: &Path) -> Result<(), String> {
    let alg = Algorithm::from_name(&auth.algorithm)
        .ok_or_else(|| format!("key `auth.algorithm`: unsupported {}", auth.algorithm))?;
    let under = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            data_dir.join(p)
        }
    };
    let current = match &auth.signing_key {
        Some(p) => Some(under(p)),
        None => {
            let default = crate::keys::default_key_path(data_dir, alg);
            default.exists().then_some(default)
        }
    };
    if let Some(path) = current {
        let pem = std::fs::read(&path).map_err(|e| {
            format!(
                "key `auth.signing_key`: cannot read {}: {e}",
                path.display()
            )
        })?;
        SigningKey::from_pkcs8_pem(alg, "check", &pem).map_err(|_| {
            format!(
                "key `auth.signing_key`: {} is not a PKCS#8 {} private key",
                path.display(),
                alg.as_str()
            )
        })?;
    }
    for p in &auth.previous_signing_keys {
        let path = under(p);
        let pem = std::fs::read(&path).map_err(|e| {
            format!(
                "key `auth.previous_signing_keys`: cannot read {}: {e}",
                path.display()
            )
        })?;
        [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
            .into_iter()
            .find_map(|alg| SigningKey::from_pkcs8_pem(alg, "check", &pem).ok())
            .ok_or_else(|| {
                format!(
                    "key `auth.previous_signing_keys`: {} is not a PKCS#8 RS256, ES256 or EdDSA private key",
                    path.display()
                )
            })?;
    }
    Ok(())
}

/// The effective configuration as TOML, secrets masked, in the order of
/// the reference (`[server]` first).
fn effective(config: &GatewayConfig) -> Result<String, Failure> {
    let mut shown = config.clone();
    mask::secrets(&mut shown);
    toml::to_string_pretty(&shown)
        .map_err(|e| Failure::refused(format!("cannot print the configuration: {e}")))
}
