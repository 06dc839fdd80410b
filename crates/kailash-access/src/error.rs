//! Why an access policy could not be loaded.

use crate::condition::ConditionError;

/// A policy was refused at load. The previous policy (if any) stays in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// A role definition is invalid (bad name, duplicate, unknown or cyclic inheritance).
    #[error("role `{role}`: {message}")]
    Role {
        /// The role.
        role: String,
        /// What is wrong.
        message: String,
    },
    /// A policy's condition does not parse or type-check.
    #[error(
        "policy `{policy}`: condition line {}, column {}: {}",
        error.line(),
        error.column(),
        error.message()
    )]
    Condition {
        /// The policy.
        policy: String,
        /// Where and why.
        error: ConditionError,
    },
    /// A policy is invalid otherwise (duplicate name, no permissions).
    #[error("policy `{policy}`: {message}")]
    Policy {
        /// The policy.
        policy: String,
        /// What is wrong.
        message: String,
    },
    /// A grant names an unknown role or an empty subject.
    #[error("grant to `{subject}` in tenant `{tenant}`: {message}")]
    Grant {
        /// The tenant.
        tenant: String,
        /// The subject.
        subject: String,
        /// What is wrong.
        message: String,
    },
    /// An attribute declaration is invalid.
    #[error("attribute `{path}`: {message}")]
    Attribute {
        /// The declared path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The time zone is unknown.
    #[error(
        "time_zone {0:?} is not a known time zone (UTC, or an IANA name in the system zoneinfo)"
    )]
    TimeZone(String),
    /// casbin refused the model or a policy line.
    #[error("casbin: {0}")]
    Casbin(String),
}
