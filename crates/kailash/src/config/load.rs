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
        let config: GatewayConfig = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = e.path().to_string();
                let origin = overrides
                    .origin_of(&key)
                    .unwrap_or_else(|| origin.to_owned());
                ConfigError::Invalid {
                    origin,
                    key,
                    message: e.into_inner().to_string(),
                }
            })?;
        config
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                origin: overrides
                    .origin_of(&key)
                    .unwrap_or_else(|| origin.to_owned()),
                key: key.into_owned(),
                message,
            })?;
        Ok(config)
    }
}
