//! The configuration form of an access policy: roles, ABAC policies, grants.
//!
//! An [`AccessSpec`] is what an operator writes (the gateway's `[access]`
//! section); [`AccessPolicy::load`](crate::AccessPolicy::load) checks and
//! compiles it once. Unknown fields are refused, so a misspelt key is an
//! error rather than a rule that silently does nothing.
//!
//! ```
//! use kailash_access::spec::AccessSpec;
//!
//! let spec: AccessSpec = serde_json::from_str(r#"{
//!     "strategy": "hybrid",
//!     "attributes": { "user.clearance": "classification", "data.classification": "classification" },
//!     "roles": [
//!         { "name": "reader", "permissions": ["data:read"], "max_executions_per_hour": 10 },
//!         { "name": "editor", "permissions": ["data:write"], "inherits": ["reader"] }
//!     ],
//!     "policies": [
//!         { "name": "clearance", "condition": "user.clearance >= data.classification", "applies_to": ["data:*"] }
//!     ]
//! }"#)?;
//! assert_eq!(spec.roles[1].inherits, ["reader"]);
//! assert!(serde_json::from_str::<AccessSpec>(r#"{ "rolez": [] }"#).is_err());
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::collections::BTreeMap;

use kailash_core::TenantId;
use serde::{Deserialize, Serialize};

use crate::condition::Type;
use crate::permission::Permission;

/// How RBAC and ABAC combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Roles alone decide; ABAC policies are compiled (and must be valid) but not consulted.
    Rbac,
    /// Policies alone decide: a permission is allowed when at least one
    /// `require` policy applies to it, every applicable `require` policy
    /// holds and no applicable `deny` policy holds. Roles are not consulted.
    Abac,
    /// A role must grant the permission, every applicable `require` policy
    /// must hold and no applicable `deny` policy may hold (the default).
    #[default]
    Hybrid,
}

/// What an ABAC policy does to the permissions it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The permission is allowed only while the condition holds (the default).
    #[default]
    Require,
    /// The permission is denied while the condition holds, whatever grants it.
    Deny,
}

/// A role: the permissions it grants (and denies), the roles it inherits,
/// and the resource limits of its holders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDefinition {
    /// The role's name, as it appears in tokens (1-64 of `[A-Za-z0-9_.-]`).
    pub name: String,
    /// What the role is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Granted permissions (`resource:action`, `resource:*`, `*:action`, `*`).
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// Denied permissions: a deny held through any role overrides every grant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<Permission>,
    /// Roles whose permissions (and denials) this role also has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherits: Vec<String>,
    /// Tenants in which the role's permissions apply; absent means every tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants: Option<Vec<TenantId>>,
    /// Workflows a holder may own at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_workflows: Option<u64>,
    /// Workflow executions a holder may start per hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_executions_per_hour: Option<u64>,
}

/// An ABAC policy: a condition bound to the permissions it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// The policy's name (in decisions, audit entries and errors).
    pub name: String,
    /// What the policy is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The condition, in the [condition language](crate::condition).
    pub condition: String,
    /// Permissions (or patterns) the policy applies to; at least one.
    pub applies_to: Vec<Permission>,
    /// `require` (default) or `deny`.
    #[serde(default)]
    pub effect: Effect,
}

/// Roles granted to one subject in one tenant, besides those in its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    /// The tenant the grant holds in.
    pub tenant: TenantId,
    /// The subject (a token's `sub`).
    pub subject: String,
    /// Roles granted.
    pub roles: Vec<String>,
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

/// A whole access policy as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessSpec {
    /// How roles and policies combine (default `hybrid`).
    #[serde(default)]
    pub strategy: Strategy,
    /// The zone `current_time.*` is read in (`UTC`, or an IANA name such as
    /// `Europe/London` from the system's zoneinfo). Default `UTC`.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Types of the `user.*` and `data.*` attributes conditions may read.
    #[serde(default)]
    pub attributes: BTreeMap<String, Type>,
    /// Roles.
    #[serde(default)]
    pub roles: Vec<RoleDefinition>,
    /// ABAC policies.
    #[serde(default)]
    pub policies: Vec<PolicySpec>,
    /// Per-tenant role grants to subjects.
    #[serde(default)]
    pub grants: Vec<GrantSpec>,
}

impl AccessSpec {
    /// Whether any role (grant or denial) or policy names a permission
    /// covering `permission` — `false` means no rule of this spec can ever
    /// say anything about it, which in a test table is almost always a typo.
    pub fn references(&self, permission: &Permission) -> bool {
        self.roles.iter().any(|r| {
            r.permissions
                .iter()
                .chain(&r.deny)
                .any(|p| p.covers(permission))
        }) || self
            .policies
            .iter()
            .any(|p| p.applies_to.iter().any(|a| a.covers(permission)))
    }
}

impl Default for AccessSpec {
    fn default() -> Self {
        Self {
            strategy: Strategy::default(),
            time_zone: default_time_zone(),
            attributes: BTreeMap::new(),
            roles: Vec::new(),
            policies: Vec::new(),
            grants: Vec::new(),
        }
    }
}
