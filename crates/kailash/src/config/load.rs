//! Reading a configuration: TOML text, environment overrides, then the
//! checks of [`validate`](super::validate).

use std::path::Path;

use super::{ConfigError, GatewayConfig, env};

impl GatewayConfig {
    /// Reads `path`, applies the process environment's overrides and validates.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_with_env(&text, &path.display().to_string(), std::env::vars())
    }

    /// Parses TOML text (no environment overrides) and validates.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        Self::from_toml_with_env(text, origin, std::iter::empty())
    }

    /// Parses TOML text, applies overrides from `vars` and validates.
    pub fn from_toml_with_env(
        text: &str,
        origin: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    origin: origin.to_owned(),
                    message: e.to_string().trim_end().to_owned(),
                })?;
        let overrides = env::apply(&mut table, vars)?;
        // A key set in the file is named with its line: `file:12`.
        let located = |key: &str| match line_of_key(text, key) {
            Some(line) => format!("{origin}:{line}"),
            None => origin.to_owned(),
        };
        let config: GatewayConfig = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = e.path().to_string();
                let origin = overrides.origin_of(&key).unwrap_or_else(|| located(&key));
                ConfigError::Invalid {
                    origin,
                    key,
                    message: e.into_inner().to_string(),
                }
            })?;
        config
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                origin: overrides.origin_of(&key).unwrap_or_else(|| located(&key)),
                key: key.into_owned(),
                message,
            })?;
        Ok(config)
    }
}

/// The line in `text` where `key` (`alerting.rules[2].condition`, as
/// errors name keys) is set: the key's own line, else the closest
/// enclosing table's. `None` when the text does not parse or never
/// mentions the key's first part.
pub(crate) fn line_of_key(text: &str, key: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut segments = Vec::new();
    for part in key.split('.') {
        let (name, rest) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() {
            segments.push((Some(name), None));
        }
        for index in rest.split('[') {
            if let Ok(i) = index.trim_end_matches(']').parse::<usize>() {
                segments.push((None, Some(i)));
            }
        }
    }
    let mut offset = None;
    let mut value: Option<&DeValue<'_>> = None;
    let mut table = Some(root.get_ref());
    for (name, index) in segments {
        let next = match (name, index, table, value) {
            (Some(name), _, Some(t), _) => t
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == name)
                .map(|(k, v)| (k.span().start, v)),
            (None, Some(i), _, Some(DeValue::Array(items))) => {
                items.get(i).map(|v| (v.span().start, v))
            }
            _ => None,
        };
        let Some((start, v)) = next else { break };
        offset = Some(start);
        value = Some(v.get_ref());
        table = match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    offset.map(|o| text.get(..o).map_or(1, |t| t.matches('\n').count() + 1))
}
