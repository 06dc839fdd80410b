//! The tenant model: who a tenant is, its quotas and its configuration, and
//! the config-file form ([`TenantSpec`]) it is parsed from.
//!
//! A [`TenantSpec`] is what an operator writes (one `[[tenants]]` table);
//! [`Tenant::try_from`] validates it once, so everything downstream works
//! with checked values (byte counts instead of fractional gigabytes,
//! lowercase DNS names, non-empty node types).

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use kailash_core::TenantId;
use serde::{Deserialize, Serialize};

/// Bytes in one gigabyte as `max_storage_gb` counts it (a binary gigabyte, GiB).
pub const BYTES_PER_GB: u64 = 1 << 30;

/// The longest DNS name accepted as a custom domain.
const MAX_DOMAIN_LEN: usize = 253;

/// A tenant: its identity, whether it may be served, and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// The tenant's id.
    pub id: TenantId,
    /// A human-readable name (the id when the spec gave none).
    pub name: String,
    /// Whether requests for this tenant are served.
    pub active: bool,
    /// The plan name (`"standard"` unless configured).
    pub plan: String,
    /// Usage quotas.
    pub quotas: TenantQuotas,
    /// Features, integrations and workflow limits.
    pub config: TenantConfig,
    /// Custom domains mapped to this tenant (lowercase DNS names).
    pub domains: Vec<String>,
}

/// Usage quotas of a tenant; `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TenantQuotas {
    /// API calls per UTC calendar day.
    pub max_api_calls_per_day: Option<u64>,
    /// Workflows that may exist (or run) at once.
    pub max_workflows: Option<u64>,
    /// Stored bytes.
    pub max_storage_bytes: Option<u64>,
}

/// Per-tenant configuration: enabled features, integrations and workflow limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TenantConfig {
    /// Enabled feature flags.
    pub features: BTreeSet<String>,
    /// Integrations the tenant may use.
    pub allowed_integrations: BTreeSet<String>,
    /// The most nodes one workflow may have; `None` means unlimited.
    pub max_workflow_nodes: Option<u32>,
    /// The longest a workflow may run; `None` means unlimited.
    pub max_execution_time: Option<Duration>,
    /// The memory a workflow may use, in MiB; `None` means unlimited.
    pub max_memory_mb: Option<u64>,
    /// Node types a workflow may use; `None` means any.
    pub allowed_node_types: Option<BTreeSet<String>>,
}

impl TenantConfig {
    /// Whether feature `f` is enabled.
    pub fn has_feature(&self, f: &str) -> bool {
        self.features.contains(f)
    }

    /// Whether integration `i` is allowed.
    pub fn allows_integration(&self, i: &str) -> bool {
        self.allowed_integrations.contains(i)
    }

    /// Whether a workflow node of type `t` is allowed.
    pub fn allows_node_type(&self, t: &str) -> bool {
        self.allowed_node_types
            .as_ref()
            .is_none_or(|types| types.contains(t))
    }
}

/// One tenant as written in a config file (a `[[tenants]]` table).
///
/// Unknown fields are refused, so a misspelt limit is an error rather than
/// silently unlimited.
///
/// ```
/// use kailash_tenancy::model::{Tenant, TenantSpec};
///
/// let spec: TenantSpec = serde_json::from_str(r#"{
///     "id": "globex", "max_api_calls_per_day": 1000, "max_storage_gb": 1,
///     "allowed_node_types": ["http_request", "transform"]
/// }"#)?;
/// let tenant = Tenant::try_from(spec)?;
/// assert_eq!(tenant.quotas.max_storage_bytes, Some(1 << 30));
/// assert!(!tenant.config.allows_node_type("llm"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    /// The tenant's id.
    pub id: TenantId,
    /// A human-readable name; defaults to the id.
    #[serde(default)]
    pub name: Option<String>,
    /// Whether the tenant is served (default `true`).
    #[serde(default = "default_active")]
    pub active: bool,
    /// The plan name (default `"standard"`).
    #[serde(default = "default_plan")]
    pub plan: String,
    /// API calls per UTC day.
    #[serde(default)]
    pub max_api_calls_per_day: Option<u64>,
    /// Workflows at once.
    #[serde(default)]
    pub max_workflows_per_tenant: Option<u64>,
    /// Storage in gigabytes ([`BYTES_PER_GB`] bytes each); may be fractional.
    #[serde(default)]
    pub max_storage_gb: Option<f64>,
    /// The most nodes one workflow may have.
    #[serde(default)]
    pub max_workflow_nodes: Option<u32>,
    /// The longest a workflow may run, in seconds.
    #[serde(default)]
    pub max_execution_time_secs: Option<u64>,
    /// Memory per workflow in MiB.
    #[serde(default)]
    pub max_memory_mb: Option<u64>,
    /// Node types a workflow may use; absent means any.
    #[serde(default)]
    pub allowed_node_types: Option<Vec<String>>,
    /// Enabled feature flags.
    #[serde(default)]
    pub features: Vec<String>,
    /// Integrations the tenant may use.
    #[serde(default)]
    pub allowed_integrations: Vec<String>,
    /// Custom domains (lowercase DNS names, no port).
    #[serde(default)]
    pub domains: Vec<String>,
}

fn default_active() -> bool {
    true
}

/// The most bytes a merge patch may have when serialised, and the deepest
/// it may nest (a spec is two levels deep).
const MAX_PATCH_BYTES: usize = 64 * 1024;
const MAX_PATCH_DEPTH: usize = 4;

impl TenantSpec {
    /// This spec with a JSON merge patch (RFC 7386) applied: members set
    /// to `null` return to their defaults, objects merge, everything else
    /// replaces. The id cannot change. The result is parsed as a spec
    /// (unknown fields refused); validate it as a [`Tenant`] before use.
    ///
    /// ```
    /// use kailash_tenancy::model::TenantSpec;
    /// let spec: TenantSpec = serde_json::from_str(r#"{"id": "acme", "plan": "enterprise"}"#)?;
    /// let patched = spec.merge_patch(&serde_json::json!({"active": false, "plan": null}))?;
    /// assert!(!patched.active);
    /// assert_eq!(patched.plan, "standard");
    /// assert!(spec.merge_patch(&serde_json::json!({"id": "globex"})).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn merge_patch(&self, patch: &serde_json::Value) -> Result<TenantSpec, PatchError> {
        let serde_json::Value::Object(members) = patch else {
            return Err(PatchError("a merge patch is a JSON object".into()));
        };
        if depth(patch) > MAX_PATCH_DEPTH || patch.to_string().len() > MAX_PATCH_BYTES {
            return Err(PatchError("the merge patch is too large".into()));
        }
        if let Some(id) = members.get("id")
            && id.as_str() != Some(self.id.as_str())
        {
            return Err(PatchError("`id` cannot change".into()));
        }
        let mut doc = serde_json::to_value(self).map_err(|e| PatchError(e.to_string()))?;
        merge(&mut doc, patch);
        serde_json::from_value(doc).map_err(|e| PatchError(e.to_string()))
    }
}

/// Why a merge patch does not apply to a [`TenantSpec`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid patch: {0}")]
pub struct PatchError(pub String);

fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// RFC 7386.
fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(serde_json::Map::new());
    }
    if let serde_json::Value::Object(t) = target {
        for (k, v) in patch {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
    }
}

fn default_plan() -> String {
    "standard".to_owned()
}

/// Why a [`TenantSpec`] is not a valid [`Tenant`]; names the tenant and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant `{tenant}`: field `{field}`: {reason}")]
pub struct SpecError {
    /// The tenant whose spec is invalid.
    pub tenant: TenantId,
    /// The offending field, as spelt in the spec.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl TryFrom<TenantSpec> for Tenant {
    type Error = SpecError;

    fn try_from(spec: TenantSpec) -> Result<Self, Self::Error> {
        let err = |field: &'static str, reason: String| SpecError {
            tenant: spec.id.clone(),
            field,
            reason,
        };
        let max_storage_bytes = match spec.max_storage_gb {
            None => None,
            Some(gb) => {
                Some(gb_to_bytes(gb).map_err(|reason| err("max_storage_gb", reason.to_owned()))?)
            }
        };
        for (i, d) in spec.domains.iter().enumerate() {
            check_domain(d)
                .map_err(|reason| err("domains", format!("entry {i} {d:?}: {reason}")))?;
        }
        let mut domains: Vec<String> = Vec::with_capacity(spec.domains.len());
        for d in &spec.domains {
            if domains.contains(d) {
                return Err(err("domains", format!("{d:?} is listed twice")));
            }
            domains.push(d.clone());
        }
        let allowed_node_types = match &spec.allowed_node_types {
            None => None,
            Some(types) => {
                for (i, t) in types.iter().enumerate() {
                    check_word(t).map_err(|reason| {
                        err("allowed_node_types", format!("entry {i} {t:?}: {reason}"))
                    })?;
                }
                Some(types.iter().cloned().collect())
            }
        };
        for (i, f) in spec.features.iter().enumerate() {
            check_word(f)
                .map_err(|reason| err("features", format!("entry {i} {f:?}: {reason}")))?;
        }
        for (i, f) in spec.allowed_integrations.iter().enumerate() {
            check_word(f).map_err(|reason| {
                err("allowed_integrations", format!("entry {i} {f:?}: {reason}"))
            })?;
        }
        if let Some(name) = &spec.name
            && name.trim().is_empty()
        {
            return Err(err("name", "must not be empty".to_owned()));
        }
        if spec.plan.trim().is_empty() {
            return Err(err("plan", "must not be empty".to_owned()));
        }
        Ok(Tenant {
            name: spec.name.clone().unwrap_or_else(|| spec.id.to_string()),
            active: spec.active,
            plan: spec.plan.clone(),
            quotas: TenantQuotas {
                max_api_calls_per_day: spec.max_api_calls_per_day,
                max_workflows: spec.max_workflows_per_tenant,
                max_storage_bytes,
            },
            config: TenantConfig {
                features: spec.features.iter().cloned().collect(),
                allowed_integrations: spec.allowed_integrations.iter().cloned().collect(),
                max_workflow_nodes: spec.max_workflow_nodes,
                max_execution_time: spec.max_execution_time_secs.map(Duration::from_secs),
                max_memory_mb: spec.max_memory_mb,
                allowed_node_types,
            },
            domains,
            id: spec.id,
        })
    }
}

fn gb_to_bytes(gb: f64) -> Result<u64, &'static str> {
    if !gb.is_finite() {
        return Err("must be a finite number");
    }
    if gb < 0.0 {
        return Err("must not be negative");
    }
    let bytes = (gb * BYTES_PER_GB as f64).round();
    // u64::MAX as f64 rounds up to 2^64, which no u64 holds.
    if bytes >= u64::MAX as f64 {
        return Err("is too large");
    }
    Ok(bytes as u64)
}

/// A feature, integration or node type name: non-empty, no whitespace or control characters.
fn check_word(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("must not be empty");
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters");
    }
    Ok(())
}

/// A lowercase DNS name without a port or trailing dot.
fn check_domain(d: &str) -> Result<(), &'static str> {
    if d.is_empty() {
        return Err("must not be empty");
    }
    if d.len() > MAX_DOMAIN_LEN {
        return Err("is longer than 253 characters");
    }
    for label in d.split('.') {
        if label.is_empty() {
            return Err("has an empty label");
        }
        if label.len() > 63 {
            return Err("has a label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("must be a lowercase DNS name ([a-z0-9-] labels, no port)");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("has a label starting or ending with '-'");
        }
    }
    Ok(())
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id, self.name)
    }
}
