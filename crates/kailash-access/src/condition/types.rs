//! Attribute types and the schema.

use std::collections::BTreeMap;
use std::fmt;

/// The static type of an attribute or literal. In configuration it is
/// written in snake case (`string`, `classification`, `string_list`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Type {
    /// A string. Equality and `IN` only; strings have no order.
    String,
    /// An integer or decimal number.
    Number,
    /// `true` or `false`.
    Bool,
    /// A classification label, ordered `public < internal < confidential <
    /// secret`. At run time the value is a string holding one of the labels
    /// (ASCII case-insensitive).
    Classification,
    /// An IP address (only `request.client_ip`).
    Ip,
    /// A list of strings.
    StringList,
    /// Unknown until run time: any operator is accepted at load and the
    /// value is checked when evaluating (a mismatch denies).
    Any,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::String => "string",
            Type::Number => "number",
            Type::Bool => "bool",
            Type::Classification => "classification",
            Type::Ip => "ip",
            Type::StringList => "list of string",
            Type::Any => "any",
        })
    }
}

/// The roots a schema may open to undeclared attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// `user.*`: the principal's attributes.
    User,
    /// `data.*`: the resource's attributes, supplied by the route.
    Data,
}

/// Declares the `user.*` and `data.*` attributes a condition may read and
/// their types. Conditions are type-checked against it once, at load.
///
/// Built-in attributes need no declaration and cannot be redeclared:
/// `user.subject` and `user.tenant` (string), `user.roles` (list of
/// string), `current_time.{hour,minute,weekday,day,month,year}` (number)
/// and `request.client_ip` (ip). By default an undeclared `user.*` or
/// `data.*` attribute is a load error; [`Schema::allow_undeclared`] makes
/// it `any`-typed instead.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    attributes: BTreeMap<String, Type>,
    open_user: bool,
    open_data: bool,
}

impl Schema {
    /// An empty, strict schema.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares an attribute by its full path (`"user.clearance"`,
    /// `"data.location.country"`). Paths under other roots are ignored.
    #[must_use]
    pub fn attribute(mut self, path: impl Into<String>, ty: Type) -> Self {
        self.attributes.insert(path.into(), ty);
        self
    }

    /// Lets conditions read undeclared attributes under `root`, typed `any`.
    #[must_use]
    pub fn allow_undeclared(mut self, root: Root) -> Self {
        match root {
            Root::User => self.open_user = true,
            Root::Data => self.open_data = true,
        }
        self
    }

    pub(crate) fn lookup(&self, path: &str) -> Option<Type> {
        self.attributes.get(path).copied()
    }

    pub(crate) fn is_open(&self, root: Root) -> bool {
        match root {
            Root::User => self.open_user,
            Root::Data => self.open_data,
        }
    }
}
