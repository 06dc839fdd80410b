//! The ABAC condition language: parsed, type-checked and compiled once at
//! load, evaluated per request without failing or panicking.
//!
//! ```
//! use std::collections::BTreeMap;
//! use jiff::{Timestamp, tz::TimeZone};
//! use kailash_access::condition::{Attributes, Context, Policy, Schema, Type};
//! use kailash_core::Principal;
//!
//! let schema = Schema::new()
//!     .attribute("user.department", Type::String)
//!     .attribute("user.clearance", Type::Classification)
//!     .attribute("data.department", Type::String)
//!     .attribute("data.classification", Type::Classification);
//! let policy = Policy::compile(
//!     "user.department == data.department AND user.clearance >= data.classification",
//!     &schema,
//! )?;
//!
//! let dave = Principal::builder("dave")
//!     .attribute("department", "engineering")
//!     .attribute("clearance", "confidential")
//!     .build();
//! let mut doc = Attributes::new();
//! doc.insert("department".into(), "engineering".into());
//! doc.insert("classification".into(), "confidential".into());
//! let ctx = Context::new(&dave, &doc, Timestamp::UNIX_EPOCH, &TimeZone::UTC);
//! assert!(policy.evaluate(&ctx).allowed);
//!
//! doc.insert("classification".into(), "secret".into());
//! let ctx = Context::new(&dave, &doc, Timestamp::UNIX_EPOCH, &TimeZone::UTC);
//! assert!(!policy.evaluate(&ctx).allowed);
//! # Ok::<(), kailash_access::condition::ConditionError>(())
//! ```
//!
//! # Grammar
//!
//! ```text
//! condition  = or_expr EOF ;
//! or_expr    = and_expr { "OR" and_expr } ;
//! and_expr   = not_expr { "AND" not_expr } ;
//! not_expr   = "NOT" not_expr | atom ;
//! atom       = "(" or_expr ")"
//!            | operand [ cmp_op operand
//!                      | "IN" operand
//!                      | "IN" "CIDR" ( string | list ) ] ;
//! cmp_op     = "==" | "!=" | "<" | "<=" | ">" | ">=" ;
//! operand    = path | string | number | "true" | "false" | list ;
//! path       = ident { "." ident } ;
//! list       = "[" [ string { "," string } ] "]" ;
//! string     = "'" { char | "\'" | "\\" } "'" | '"' { char | '\"' | "\\" } '"' ;
//! number     = [ "-" ] digit { digit } [ "." digit { digit } ] ;
//! ident      = ( letter | "_" ) { letter | digit | "_" } ;
//! ```
//!
//! Keywords (`AND OR NOT IN CIDR true false`) are ASCII case-insensitive and
//! cannot start a path. Precedence, tightest first: comparisons, `NOT`,
//! `AND`, `OR`. A bare operand (`data.public`) is a condition when it is
//! boolean. Sources longer than [`MAX_SOURCE_LEN`] bytes and nesting
//! (parentheses and `NOT`) deeper than [`MAX_DEPTH`] are refused.
//!
//! # Attributes
//!
//! | path | type | from |
//! |------|------|------|
//! | `user.subject`, `user.tenant` | string | the [`Principal`](kailash_core::Principal) |
//! | `user.roles` | list of string | the principal |
//! | `user.<name>[.<name>…]` | from the [`Schema`] | the principal's attributes |
//! | `data.<name>[.<name>…]` | from the [`Schema`] | the route's [`Attributes`] |
//! | `current_time.{hour,minute,weekday,day,month,year}` | number | the [`Context`]'s time and zone; `weekday` is 0 = Monday … 6 = Sunday |
//! | `request.client_ip` | ip | [`RequestContext`](kailash_core::context::RequestContext) |
//!
//! The built-in `user.*` names shadow principal attributes of the same name.
//! Undeclared `user.*`/`data.*` attributes are a load error unless the
//! schema [allows them](Schema::allow_undeclared), in which case they are
//! typed `any` and checked at run time.
//!
//! # Types and operators
//!
//! * `==`, `!=`: both sides of the same type, or either side `any`; lists
//!   cannot be compared.
//! * `< <= > >=`: numbers, or classifications. A comparison uses the
//!   classification order `public < internal < confidential < secret` when
//!   **either** side is declared [`Type::Classification`] in the schema; a
//!   string literal next to it must be a label and is converted at load
//!   (`user.clearance >= 'internal'`). Strings, bools, ips and lists have
//!   no order (`NotOrderable`); `string >= number` is a `TypeMismatch`.
//! * `x IN list`: string (or classification) membership in a list of
//!   strings — a literal list, `user.roles`, or a list attribute.
//! * `ip IN CIDR '10.0.0.0/8'` or `ip IN CIDR ['10.0.0.0/8', 'fd00::/8']`:
//!   CIDR membership for IPv4 and IPv6; the networks are parsed at load.
//!   A string literal compared with an ip is parsed as an address at load.
//!
//! # Evaluation
//!
//! Evaluation goes left to right with short-circuiting `AND`/`OR`. A
//! missing attribute or a value of the wrong type at run time aborts the
//! whole evaluation with a deny and a reason — even under `NOT` or on the
//! left of an `OR` — so an absent attribute can never grant access.

mod ast;
mod check;
mod compile;
mod error;
mod interpret;
mod lexer;
mod parser;
mod types;
mod value;

use std::fmt;

pub use check::Ast;
pub use error::{ConditionError, ErrorKind};
pub use interpret::{Clause, clauses, interpret};
pub use types::{Root, Schema, Type};
pub use value::{Attributes, Context};

/// The longest condition source accepted, in bytes.
pub const MAX_SOURCE_LEN: usize = 4096;

/// The deepest nesting of parentheses and `NOT` accepted.
pub const MAX_DEPTH: usize = 64;

/// The outcome of evaluating a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether access is allowed.
    pub allowed: bool,
    /// Why access was denied (`None` when allowed).
    pub reason: Option<String>,
}

impl Decision {
    fn from_result(r: Result<bool, String>) -> Self {
        match r {
            Ok(true) => Self {
                allowed: true,
                reason: None,
            },
            Ok(false) => Self {
                allowed: false,
                reason: Some("condition not satisfied".to_owned()),
            },
            Err(reason) => Self {
                allowed: false,
                reason: Some(reason),
            },
        }
    }
}

/// Entry points for loading conditions.
#[derive(Debug, Clone, Copy)]
pub struct Policy;

impl Policy {
    /// Parses and type-checks `source` against `schema`, without compiling.
    pub fn check(source: &str, schema: &Schema) -> Result<Ast, ConditionError> {
        let expr = parser::parse(source)?;
        check::check(source, &expr, schema)
    }

    /// Parses, type-checks and compiles `source` against `schema`.
    pub fn compile(source: &str, schema: &Schema) -> Result<CompiledCondition, ConditionError> {
        let ast = Self::check(source, schema)?;
        let pred = compile::compile(&ast);
        Ok(CompiledCondition {
            source: source.to_owned(),
            ast,
            pred,
        })
    }
}

/// A condition ready to evaluate: a tree of closures built at load.
pub struct CompiledCondition {
    source: String,
    ast: Ast,
    pred: compile::Pred,
}

impl CompiledCondition {
    /// Evaluates the condition. Never fails and never panics: a missing
    /// attribute or a run-time type mismatch denies, with a reason.
    pub fn evaluate(&self, ctx: &Context<'_>) -> Decision {
        Decision::from_result((self.pred)(ctx))
    }

    /// Evaluates the condition: `Ok(holds)`, or `Err(reason)` when it could
    /// not be evaluated (a missing attribute, a run-time type mismatch).
    /// Never panics.
    pub fn test(&self, ctx: &Context<'_>) -> Result<bool, String> {
        (self.pred)(ctx)
    }

    /// The source the condition was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The checked tree (for [`interpret`]).
    pub fn ast(&self) -> &Ast {
        &self.ast
    }
}

impl fmt::Debug for CompiledCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledCondition")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}
