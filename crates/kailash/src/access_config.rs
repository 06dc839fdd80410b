//! The `[access]` section: loading it, reloading it from the config file,
//! and saying where in the file a refused policy is.

use std::path::Path;
use std::sync::Arc;

use kailash_access::{AccessControl, AccessError, AccessPolicy};
use kailash_core::audit::AuditSink;
use kailash_core::clock::Clock;

use crate::config::{ConfigError, GatewayConfig};

/// Compiles `[access]` into an [`AccessControl`] auditing to `audit`.
pub(crate) async fn from_config(
    spec: &kailash_access::spec::AccessSpec,
    audit: Option<Arc<dyn AuditSink>>,
    clock: Arc<dyn Clock>,
) -> Result<AccessControl, AccessError> {
    let mut access = AccessControl::new(AccessPolicy::load(spec).await?).clock(clock);
    if let Some(audit) = audit {
        access = access.audit(audit);
    }
    Ok(access)
}

/// Why a reload of the access policy was refused. The policy in force stays.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The file does not load as a configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The file has no `[access]` section (a reload never removes access control).
    #[error("{0}: no [access] section; the policy in force stays")]
    Missing(String),
    /// The policy is refused; `message` says where in the file.
    #[error("{message}")]
    Policy {
        /// What and where (`file:line: …`).
        message: String,
        /// The underlying error.
        source: AccessError,
    },
}

/// Re-reads `path` (with the process environment's overrides) and puts its
/// `[access]` section in force. On any error the policy in force stays and
/// the error names the file and, for a refused policy, the line.
pub async fn reload_access(path: &Path, access: &AccessControl) -> Result<(), ReloadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let origin = path.display().to_string();
    let config = GatewayConfig::from_toml_with_env(&text, &origin, std::env::vars())?;
    let Some(spec) = config.access else {
        return Err(ReloadError::Missing(origin));
    };
    match AccessPolicy::load(&spec).await {
        Ok(policy) => {
            access.replace(policy);
            Ok(())
        }
        Err(source) => Err(ReloadError::Policy {
            message: locate(&text, &origin, &source),
            source,
        }),
    }
}

/// `origin:line: error` for an access error in config `text`: the line of
/// the refused condition (plus the line within it), or of the table that
/// names the role or policy. Without a match, `origin: error`.
pub fn locate(text: &str, origin: &str, error: &AccessError) -> String {
    let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
    // `name = "x"` at the start of a line (not `username = "x"`).
    let name_line = |name: &str| {
        ["\"", "'"].iter().find_map(|q| {
            let needle = format!("name = {q}{name}{q}");
            text.match_indices(&needle)
                .find(|(i, _)| {
                    text[..*i]
                        .rsplit('\n')
                        .next()
                        .is_some_and(|before| before.trim().is_empty())
                })
                .map(|(i, _)| line_of(i))
        })
    };
    let line = match error {
        AccessError::Condition { policy, error } => name_line(policy).and_then(|start| {
            // The first `condition = ` after the policy's name.
            let from = text
                .match_indices('\n')
                .nth(start.saturating_sub(2))
                .map_or(0, |(i, _)| i);
            text[from..]
                .find("condition")
                .map(|i| line_of(from + i) + error.line() - 1)
        }),
        AccessError::Policy { policy, .. } => name_line(policy),
        AccessError::Role { role, .. } => name_line(role),
        _ => None,
    };
    match line {
        Some(l) => format!("{origin}:{l}: access: {error}"),
        None => format!("{origin}: access: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_condition_is_located_in_the_file() {
        let text = "[auth]\nissuer = \"x\"\n\n[[access.policies]]\nname = \"geo\"\ncondition = \"user.country IN ['US'\"\napplies_to = [\"data:read\"]\n";
        let spec: kailash_access::spec::AccessSpec = toml::from_str::<toml::Table>(text)
            .unwrap()
            .get("access")
            .unwrap()
            .clone()
            .try_into()
            .unwrap();
        let err = AccessPolicy::load(&spec).await.unwrap_err();
        let message = locate(text, "gw.toml", &err);
        assert!(
            message.starts_with("gw.toml:6: access: policy `geo`"),
            "{message}"
        );
    }
}
