//! The input of an explanation, from JSON, checked and bounded: what
//! `POST /api/access/explain` (the [`http`](crate::http) module) and the
//! operator command's `kailash access explain` / `kailash access test`
//! read before asking [`AccessControl::explain`](crate::AccessControl::explain).
//!
//! Every size is bounded ([`MAX_ATTRIBUTES`], [`MAX_VALUES`], [`MAX_DEPTH`],
//! [`MAX_STRING_CHARS`], [`MAX_NAME_CHARS`], [`MAX_USERNAME_CHARS`]), and
//! every error names the
//! field it is about ([`InputError::field`]), so a client learns what to fix
//! without the server echoing the input back.
//!
//! ```
//! use kailash_access::explain::ExplainInput;
//! use serde_json::json;
//!
//! let input = ExplainInput::from_json(&json!({
//!     "user": "dave",
//!     "permission": "data:read",
//!     "resource": { "department": "engineering", "classification": "secret" },
//!     "context": { "time": "2026-12-07T10:00:00Z" }
//! }))?;
//! assert_eq!(input.user.as_deref(), Some("dave"));
//! assert_eq!(input.permission.as_str(), "data:read");
//! assert_eq!(input.resource.as_ref().map(|r| r.len()), Some(2));
//!
//! let err = ExplainInput::from_json(&json!({ "permission": "data" })).unwrap_err();
//! assert_eq!(err.field, "permission");
//! let err = ExplainInput::from_json(&json!({ "permission": "data:read", "resource": { "a": { "b": { "c": { "d": { "e": 1 } } } } } })).unwrap_err();
//! assert_eq!(err.field, "resource.a.b.c.d");
//! # Ok::<(), kailash_access::explain::InputError>(())
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;

use jiff::Timestamp;
use kailash_core::{AttributeValue, Principal, TenantId};
use serde_json::Value;

use crate::condition::Attributes;
use crate::permission::Permission;
use crate::policy::Explanation;

/// The most entries of one map, or items of one list, in an attribute map
/// (each level on its own: the published schema states it per level).
pub const MAX_ATTRIBUTES: usize = 64;
/// The most values (map entries and list items, at every level together)
/// in one attribute map: one per byte of the HTTP route's largest body, so
/// that over HTTP only the per-level [`MAX_ATTRIBUTES`] can refuse a map.
pub const MAX_VALUES: usize = 16 * 1024;
/// The deepest nesting of maps and lists in an attribute map (`location.country` is 2).
pub const MAX_DEPTH: usize = 4;
/// The longest attribute string value accepted, in characters.
pub const MAX_STRING_CHARS: usize = 1024;
/// The longest attribute name accepted, in characters (at least 1).
pub const MAX_NAME_CHARS: usize = 64;
/// The longest username accepted, in characters.
pub const MAX_USERNAME_CHARS: usize = 256;
/// The longest timestamp or IP address text accepted, in characters.
pub const MAX_CONTEXT_CHARS: usize = 64;

/// What is wrong with an explanation's input, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct InputError {
    /// The field, as a dotted path from the top of the input (`resource.department`).
    pub field: String,
    /// What is wrong with it (never its value).
    pub message: String,
}

impl InputError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One explanation's question: who (by username; `None`: the caller), what
/// permission, on what resource, when and from where.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainInput {
    /// The user to explain for; `None` means the caller.
    pub user: Option<String>,
    /// The permission asked about.
    pub permission: Permission,
    /// The resource's attributes (`data.*`); `None`: no resource, so
    /// conditions reading `data.*` cannot be evaluated and deny.
    pub resource: Option<Attributes>,
    /// When (`current_time.*`); `None`: now.
    pub time: Option<Timestamp>,
    /// From where (`request.client_ip`); `None`: the caller's address over
    /// HTTP, no address from the command line.
    pub client_ip: Option<IpAddr>,
}

impl ExplainInput {
    /// Reads `{ "user"?, "permission", "resource"?, "context"? { "time"?, "client_ip"? } }`;
    /// unknown fields are refused.
    pub fn from_json(value: &Value) -> Result<Self, InputError> {
        let Value::Object(fields) = value else {
            return Err(InputError::new("", "the body must be a JSON object"));
        };
        for key in fields.keys() {
            if !matches!(key.as_str(), "user" | "permission" | "resource" | "context") {
                return Err(unknown_field("", key));
            }
        }
        let user = match fields.get("user") {
            None | Some(Value::Null) => None,
            Some(v) => Some(username(v, "user")?),
        };
        let permission = match fields.get("permission") {
            None => return Err(InputError::new("permission", "is required")),
            Some(v) => permission(v, "permission")?,
        };
        let resource = match fields.get("resource") {
            None | Some(Value::Null) => None,
            Some(v) => Some(attributes(v, "resource")?),
        };
        let (mut time, mut client_ip) = (None, None);
        match fields.get("context") {
            None | Some(Value::Null) => {}
            Some(Value::Object(ctx)) => {
                for (key, v) in ctx {
                    match key.as_str() {
                        "time" => time = Some(timestamp(v, "context.time")?),
                        "client_ip" => client_ip = Some(ip(v, "context.client_ip")?),
                        _ => return Err(unknown_field("context", key)),
                    }
                }
            }
            Some(_) => {
                return Err(InputError::new(
                    "context",
                    "must be an object with `time` and/or `client_ip`",
                ));
            }
        }
        Ok(Self {
            user,
            permission,
            resource,
            time,
            client_ip,
        })
    }
}

fn unknown_field(parent: &str, key: &str) -> InputError {
    let field = if key.len() > 64 {
        // Never echo an unbounded key back.
        format!("{parent}{}…", if parent.is_empty() { "" } else { "." })
    } else if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    };
    InputError::new(field, "unknown field")
}

fn string<'v>(v: &'v Value, field: &str, max: usize) -> Result<&'v str, InputError> {
    let Value::String(s) = v else {
        return Err(InputError::new(field, "must be a string"));
    };
    if s.chars().count() > max {
        return Err(InputError::new(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    Ok(s)
}

/// A username: 1 to [`MAX_USERNAME_CHARS`] characters. (One no user has,
/// such as a blank one, is an unknown user, not a malformed input.)
pub fn username(v: &Value, field: &str) -> Result<String, InputError> {
    let s = string(v, field, MAX_USERNAME_CHARS)?;
    if s.is_empty() {
        return Err(InputError::new(field, "must not be empty"));
    }
    Ok(s.to_owned())
}

/// A `resource:action` permission.
pub fn permission(v: &Value, field: &str) -> Result<Permission, InputError> {
    let s = string(v, field, crate::permission::MAX_PERMISSION_LEN)?;
    Permission::parse(s)
        .map_err(|_| InputError::new(field, "must be a permission `resource:action`"))
}

/// An RFC 3339 timestamp (`2026-12-07T10:00:00Z`).
pub fn timestamp(v: &Value, field: &str) -> Result<Timestamp, InputError> {
    string(v, field, MAX_CONTEXT_CHARS)?.parse().map_err(|_| {
        InputError::new(
            field,
            "must be an RFC 3339 timestamp with an offset, e.g. 2026-12-07T10:00:00Z",
        )
    })
}

/// An IPv4 or IPv6 address.
pub fn ip(v: &Value, field: &str) -> Result<IpAddr, InputError> {
    string(v, field, MAX_CONTEXT_CHARS)?
        .parse()
        .map_err(|_| InputError::new(field, "must be an IP address"))
}

/// An attribute map (`data.*`) from a JSON object: strings, numbers,
/// booleans, lists and nested objects, within [`MAX_ATTRIBUTES`] values per
/// map or list, [`MAX_VALUES`] in all, [`MAX_DEPTH`] levels, names of 1 to
/// [`MAX_NAME_CHARS`] and values of [`MAX_STRING_CHARS`] characters.
/// `null` is refused (an attribute is present or absent).
pub fn attributes(v: &Value, field: &str) -> Result<Attributes, InputError> {
    let mut budget = MAX_VALUES;
    match v {
        Value::Object(_) => match value(v, field, 1, &mut budget)? {
            AttributeValue::Map(m) => Ok(m),
            _ => Err(InputError::new(field, "must be an object")),
        },
        _ => Err(InputError::new(field, "must be an object")),
    }
}

fn value(
    v: &Value,
    field: &str,
    depth: usize,
    budget: &mut usize,
) -> Result<AttributeValue, InputError> {
    Ok(match v {
        Value::Null => return Err(InputError::new(field, "null is not an attribute value")),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => AttributeValue::Int(i),
            (None, Some(f)) if f.is_finite() => AttributeValue::Float(f),
            _ => return Err(InputError::new(field, "number out of range")),
        },
        Value::String(s) => {
            if s.chars().count() > MAX_STRING_CHARS {
                return Err(InputError::new(
                    field,
                    format!("is longer than {MAX_STRING_CHARS} characters"),
                ));
            }
            AttributeValue::String(s.clone())
        }
        Value::Array(items) => {
            if depth > MAX_DEPTH {
                return Err(InputError::new(
                    field,
                    format!("nested deeper than {MAX_DEPTH} levels"),
                ));
            }
            if items.len() > MAX_ATTRIBUTES {
                return Err(too_many(field));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                take(budget, field)?;
                out.push(value(item, &format!("{field}[{i}]"), depth + 1, budget)?);
            }
            AttributeValue::List(out)
        }
        Value::Object(map) => {
            if depth > MAX_DEPTH {
                return Err(InputError::new(
                    field,
                    format!("nested deeper than {MAX_DEPTH} levels"),
                ));
            }
            if map.len() > MAX_ATTRIBUTES {
                return Err(too_many(field));
            }
            let mut out = BTreeMap::new();
            for (key, item) in map {
                take(budget, field)?;
                let chars = key.chars().count();
                if chars == 0 || chars > MAX_NAME_CHARS {
                    return Err(InputError::new(
                        field,
                        format!("attribute names are 1 to {MAX_NAME_CHARS} characters"),
                    ));
                }
                let child = format!("{field}.{key}");
                out.insert(key.clone(), value(item, &child, depth + 1, budget)?);
            }
            AttributeValue::Map(out)
        }
    })
}

fn too_many(field: &str) -> InputError {
    InputError::new(
        field,
        format!("more than {MAX_ATTRIBUTES} entries in one map or list"),
    )
}

fn take(budget: &mut usize, field: &str) -> Result<(), InputError> {
    *budget = budget.checked_sub(1).ok_or_else(|| {
        InputError::new(field, format!("more than {MAX_VALUES} attribute values"))
    })?;
    Ok(())
}

/// The explanation as `POST /api/access/explain` answers it and
/// `kailash access explain --json` prints it: who, what, when, the
/// verdict, `reason` (the rule exactly as the audit trail records it for
/// this decision) and the steps.
pub fn report(
    principal: &Principal,
    permission: &Permission,
    at: Timestamp,
    explanation: &Explanation,
) -> Value {
    serde_json::to_value(Report::new(principal, permission, at, explanation)).unwrap_or(Value::Null)
}

/// The explanation as [`report`] renders it, typed (its schema is the
/// `200` body of `POST /api/access/explain`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "axum", schema(as = Explanation))]
pub struct Report {
    /// The user explained.
    pub user: String,
    /// The user's tenant (`null`: none).
    pub tenant: Option<String>,
    /// The user's roles.
    pub roles: Vec<String>,
    /// The permission asked about, `resource:action`.
    pub permission: String,
    /// When the decision was taken (RFC 3339).
    #[cfg_attr(feature = "axum", schema(format = DateTime))]
    pub at: String,
    /// The verdict.
    pub allowed: bool,
    /// The rule, exactly as the audit trail records it for this decision.
    pub reason: String,
    /// The strategy in force.
    pub strategy: crate::spec::Strategy,
    /// What each role and policy said, every one evaluated.
    pub steps: Vec<crate::policy::ExplainStep>,
}

impl Report {
    /// The report of `explanation`, for `principal` asking `permission` at `at`.
    pub fn new(
        principal: &Principal,
        permission: &Permission,
        at: Timestamp,
        explanation: &Explanation,
    ) -> Self {
        Self {
            user: principal.subject().to_owned(),
            tenant: principal.tenant().map(|t| TenantId::as_str(t).to_owned()),
            roles: principal.roles().to_vec(),
            permission: permission.as_str().to_owned(),
            at: at.to_string(),
            allowed: explanation.decision.allowed,
            reason: explanation.decision.rule.clone(),
            strategy: explanation.strategy,
            steps: explanation.steps.clone(),
        }
    }
}
