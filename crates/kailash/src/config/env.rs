//! Environment overrides of config keys.

use std::collections::HashMap;

use super::ConfigError;

const PREFIX: &str = "KAILASH_";
const SHORTCUTS: [(&str, &str); 2] = [
    ("KAILASH_LISTEN", "server.listen"),
    ("KAILASH_REDIS_URL", "state.redis_url"),
];

/// Which environment variable set which dotted key.
#[derive(Debug, Default)]
pub(super) struct Overrides(HashMap<String, String>);

impl Overrides {
    /// The origin to name for an error at `key` (or inside it).
    pub(super) fn origin_of(&self, key: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| {
                key == k.as_str()
                    || key.starts_with(&format!("{k}."))
                    || key.starts_with(&format!("{k}["))
            })
            .map(|(_, var)| format!("environment variable {var}"))
    }
}

/// Applies `KAILASH_A__B=v` (and the shortcuts) to `table`.
pub(super) fn apply(
    table: &mut toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Overrides, ConfigError> {
    let mut overrides = Overrides::default();
    let mut vars: Vec<(String, String)> = vars.into_iter().collect();
    vars.sort();
    for (name, raw) in vars {
        let path: Vec<String> =
            if let Some((_, key)) = SHORTCUTS.iter().find(|(var, _)| *var == name) {
                key.split('.').map(str::to_owned).collect()
            } else if let Some(rest) = name.strip_prefix(PREFIX).filter(|r| r.contains("__")) {
                rest.split("__").map(str::to_ascii_lowercase).collect()
            } else {
                continue;
            };
        let dotted = path.join(".");
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::Invalid {
                origin: format!("environment variable {name}"),
                key: dotted,
                message: "empty key segment".into(),
            });
        }
        set(table, &path, &raw).map_err(|message| ConfigError::Invalid {
            origin: format!("environment variable {name}"),
            key: dotted.clone(),
            message,
        })?;
        overrides.0.insert(dotted, name);
    }
    Ok(overrides)
}

fn set(table: &mut toml::Table, path: &[String], raw: &str) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut current = table;
    for segment in parents {
        let entry = current
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{segment}` is not a section"))?;
    }
    let existing_is_string = matches!(current.get(last), Some(toml::Value::String(_)));
    let value = if existing_is_string {
        toml::Value::String(raw.to_owned())
    } else {
        parse_literal(raw).unwrap_or_else(|| toml::Value::String(raw.to_owned()))
    };
    current.insert(last.clone(), value);
    Ok(())
}

fn parse_literal(raw: &str) -> Option<toml::Value> {
    let doc: toml::Table = format!("v = {raw}").parse().ok()?;
    doc.get("v").cloned()
}
