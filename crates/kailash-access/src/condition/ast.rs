//! The syntax tree produced by the parser (untyped).

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    InCidr,
}

impl CmpOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::In => "IN",
            CmpOp::InCidr => "IN CIDR",
        }
    }

    pub(crate) fn is_ordering(self) -> bool {
        matches!(self, CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<(String, usize)>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    /// Dotted path; `at` is the byte offset of its first segment.
    Path {
        segments: Vec<String>,
        at: usize,
    },
    Lit {
        lit: Lit,
        at: usize,
    },
}

impl Operand {
    pub(crate) fn at(&self) -> usize {
        match self {
            Operand::Path { at, .. } | Operand::Lit { at, .. } => *at,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Cmp {
        op: CmpOp,
        lhs: Operand,
        rhs: Operand,
        at: usize,
    },
    /// A bare operand used as a condition (must be boolean).
    Truthy(Operand),
}
