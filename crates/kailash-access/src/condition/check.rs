//! Name resolution and type checking: syntax tree to the typed [`Ast`].

use ipnet::IpNet;

use super::ast::{CmpOp, Expr, Lit, Operand};
use super::error::{ConditionError, ErrorKind, line_col};
use super::types::{Root, Schema, Type};
use super::value::{Attr, AttrKind, Const, Mode, TIME_FIELDS, Term, label_rank};

/// A parsed, name-resolved and type-checked condition: the input of both
/// the compiler and the reference interpreter
/// ([`interpret`](super::interpret)).
#[derive(Debug, Clone, PartialEq)]
pub struct Ast {
    pub(crate) root: Node,
}

impl Ast {
    /// Whether the condition reads any `data.*` attribute, i.e. needs the
    /// resource to be evaluated.
    pub fn reads_data(&self) -> bool {
        self.root.reads_data()
    }
}

impl Node {
    fn reads_data(&self) -> bool {
        let term = |t: &Term| {
            matches!(
                t,
                Term::Attr(Attr {
                    kind: AttrKind::Data { .. },
                    ..
                })
            )
        };
        match self {
            Node::Or(items) | Node::And(items) => items.iter().any(Node::reads_data),
            Node::Not(inner) => inner.reads_data(),
            Node::Test { lhs, rhs, .. } => term(lhs) || term(rhs),
            Node::Cidr { lhs, .. } => term(lhs),
            Node::Truthy { term: t, .. } => term(t),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Or(Vec<Node>),
    And(Vec<Node>),
    Not(Box<Node>),
    Test {
        op: CmpOp,
        mode: Mode,
        lhs: Term,
        rhs: Term,
        loc: String,
    },
    Cidr {
        lhs: Term,
        nets: Vec<IpNet>,
        loc: String,
    },
    Truthy {
        term: Term,
        loc: String,
    },
}

pub(crate) fn check(src: &str, expr: &Expr, schema: &Schema) -> Result<Ast, ConditionError> {
    let c = Checker { src, schema };
    Ok(Ast {
        root: c.expr(expr)?,
    })
}

struct Checker<'s> {
    src: &'s str,
    schema: &'s Schema,
}

impl Checker<'_> {
    fn err(&self, kind: ErrorKind, at: usize, message: String) -> ConditionError {
        ConditionError::new(kind, self.src, at, message)
    }

    fn loc(&self, at: usize) -> String {
        let (l, c) = line_col(self.src, at);
        format!("{l}:{c}")
    }

    fn expr(&self, e: &Expr) -> Result<Node, ConditionError> {
        Ok(match e {
            Expr::Or(items) => Node::Or(
                items
                    .iter()
                    .map(|i| self.expr(i))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::And(items) => Node::And(
                items
                    .iter()
                    .map(|i| self.expr(i))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Not(inner) => Node::Not(Box::new(self.expr(inner)?)),
            Expr::Truthy(op) => {
                let (term, ty) = self.operand(op)?;
                if !matches!(ty, Type::Bool | Type::Any) {
                    return Err(self.err(
                        ErrorKind::TypeMismatch,
                        op.at(),
                        format!("expected a bool condition, found {ty}"),
                    ));
                }
                Node::Truthy {
                    term,
                    loc: self.loc(op.at()),
                }
            }
            Expr::Cmp { op, lhs, rhs, at } => self.cmp(*op, lhs, rhs, *at)?,
        })
    }

    fn cmp(
        &self,
        op: CmpOp,
        lhs: &Operand,
        rhs: &Operand,
        at: usize,
    ) -> Result<Node, ConditionError> {
        let loc = self.loc(at);
        let (lterm, lt) = self.operand(lhs)?;
        if op == CmpOp::InCidr {
            if !matches!(lt, Type::Ip | Type::Any) {
                return Err(self.err(
                    ErrorKind::TypeMismatch,
                    at,
                    format!("type mismatch: {lt} IN CIDR (needs an ip)"),
                ));
            }
            let strings: Vec<(&str, usize)> = match rhs {
                Operand::Lit {
                    lit: Lit::Str(s),
                    at,
                } => vec![(s.as_str(), *at)],
                Operand::Lit {
                    lit: Lit::List(items),
                    ..
                } => items.iter().map(|(s, at)| (s.as_str(), *at)).collect(),
                other => {
                    return Err(self.err(
                        ErrorKind::UnexpectedToken,
                        other.at(),
                        "`IN CIDR` takes a string literal or a list of string literals".to_owned(),
                    ));
                }
            };
            let nets = strings
                .into_iter()
                .map(|(s, at)| {
                    s.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| {
                        self.err(ErrorKind::InvalidLiteral, at, format!("invalid CIDR `{s}`"))
                    })
                })
                .collect::<Result<_, _>>()?;
            return Ok(Node::Cidr {
                lhs: lterm,
                nets,
                loc,
            });
        }
        let (rterm, rt) = self.operand(rhs)?;
        // Coerce string literals next to a classification or an ip.
        let (lterm, lt) = self.coerce(lterm, lt, rt, lhs.at())?;
        let (rterm, rt) = self.coerce(rterm, rt, lt, rhs.at())?;
        let sym = op.symbol();
        let mismatch = || {
            self.err(
                ErrorKind::TypeMismatch,
                at,
                format!("type mismatch: {lt} {sym} {rt}"),
            )
        };
        let mode = if lt == Type::Classification || rt == Type::Classification {
            Mode::Classification
        } else {
            Mode::Natural
        };
        match op {
            CmpOp::Eq | CmpOp::Ne => {
                if lt == Type::StringList || rt == Type::StringList {
                    return Err(self.err(
                        ErrorKind::TypeMismatch,
                        at,
                        format!("type mismatch: `{sym}` does not compare lists ({lt} {sym} {rt})"),
                    ));
                }
                if !(lt == rt || lt == Type::Any || rt == Type::Any) {
                    return Err(mismatch());
                }
            }
            CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => {
                if lt != rt && lt != Type::Any && rt != Type::Any {
                    return Err(mismatch());
                }
                for t in [lt, rt] {
                    if !matches!(t, Type::Number | Type::Classification | Type::Any) {
                        return Err(self.err(
                            ErrorKind::NotOrderable,
                            at,
                            format!("`{sym}` needs ordered operands; {t} values have no order"),
                        ));
                    }
                }
            }
            CmpOp::In => {
                let ok = match rt {
                    Type::StringList => {
                        matches!(lt, Type::String | Type::Classification | Type::Any)
                    }
                    Type::Any => matches!(
                        lt,
                        Type::String | Type::Classification | Type::Number | Type::Any
                    ),
                    _ => false,
                };
                if !ok {
                    return Err(mismatch());
                }
                return Ok(Node::Test {
                    op,
                    mode: Mode::Natural,
                    lhs: lterm,
                    rhs: rterm,
                    loc,
                });
            }
            CmpOp::InCidr => return Err(mismatch()),
        }
        Ok(Node::Test {
            op,
            mode,
            lhs: lterm,
            rhs: rterm,
            loc,
        })
    }

    fn coerce(
        &self,
        term: Term,
        ty: Type,
        other: Type,
        at: usize,
    ) -> Result<(Term, Type), ConditionError> {
        match (&term, other) {
            (Term::Const(Const::Str(s)), Type::Classification) => match label_rank(s) {
                Some(r) => Ok((Term::Const(Const::Class(r)), Type::Classification)),
                None => Err(self.err(
                    ErrorKind::InvalidLiteral,
                    at,
                    format!(
                        "`{s}` is not a classification label (public, internal, confidential, secret)"
                    ),
                )),
            },
            (Term::Const(Const::Str(s)), Type::Ip) => match s.parse() {
                Ok(ip) => Ok((Term::Const(Const::Ip(ip)), Type::Ip)),
                Err(_) => Err(self.err(
                    ErrorKind::InvalidLiteral,
                    at,
                    format!("`{s}` is not an IP address"),
                )),
            },
            _ => Ok((term, ty)),
        }
    }

    fn operand(&self, op: &Operand) -> Result<(Term, Type), ConditionError> {
        match op {
            Operand::Lit { lit, .. } => Ok(match lit {
                Lit::Str(s) => (Term::Const(Const::Str(s.clone())), Type::String),
                Lit::Int(n) => (Term::Const(Const::Int(*n)), Type::Number),
                Lit::Float(f) => (Term::Const(Const::Float(*f)), Type::Number),
                Lit::Bool(b) => (Term::Const(Const::Bool(*b)), Type::Bool),
                Lit::List(items) => (
                    Term::Const(Const::List(items.iter().map(|(s, _)| s.clone()).collect())),
                    Type::StringList,
                ),
            }),
            Operand::Path { segments, at } => {
                let (attr, ty) = self.resolve(segments, *at)?;
                Ok((Term::Attr(attr), ty))
            }
        }
    }

    fn resolve(&self, segments: &[String], at: usize) -> Result<(Attr, Type), ConditionError> {
        let name = segments.join(".");
        let (root, rest) = match segments.split_first() {
            Some((root, rest)) => (root.as_str(), rest),
            None => ("", &[][..]),
        };
        let unknown = |what: &str| {
            self.err(
                ErrorKind::UnknownAttribute,
                at,
                format!("unknown attribute `{name}`{what}"),
            )
        };
        let attr = |kind| Attr {
            kind,
            name: name.clone(),
            parse_ip: false,
        };
        let rest_strs: Vec<&str> = rest.iter().map(String::as_str).collect();
        match root {
            "user" | "data" => {
                let builtin = match (root, rest_strs.as_slice()) {
                    ("user", ["subject"]) => Some((AttrKind::Subject, Type::String)),
                    ("user", ["tenant"]) => Some((AttrKind::Tenant, Type::String)),
                    ("user", ["roles"]) => Some((AttrKind::Roles, Type::StringList)),
                    _ => None,
                };
                if let Some((kind, ty)) = builtin {
                    return Ok((attr(kind), ty));
                }
                let Some((head, tail)) = rest.split_first() else {
                    return Err(unknown(" (a root needs an attribute name)"));
                };
                let r = if root == "user" { Root::User } else { Root::Data };
                let ty = match self.schema.lookup(&name) {
                    Some(ty) => ty,
                    None if self.schema.is_open(r) => Type::Any,
                    None => return Err(unknown(" (not declared in the schema)")),
                };
                let (head, rest) = (head.clone(), tail.to_vec());
                let kind = if r == Root::User {
                    AttrKind::User { head, rest }
                } else {
                    AttrKind::Data { head, rest }
                };
                let mut a = attr(kind);
                a.parse_ip = ty == Type::Ip;
                Ok((a, ty))
            }
            "current_time" => match rest_strs.as_slice() {
                [field] => match TIME_FIELDS.iter().position(|f| f == field) {
                    Some(i) => Ok((attr(AttrKind::Time(i)), Type::Number)),
                    None => Err(unknown(
                        " (current_time has hour, minute, weekday, day, month, year)",
                    )),
                },
                _ => Err(unknown(
                    " (current_time has hour, minute, weekday, day, month, year)",
                )),
            },
            "request" => match rest_strs.as_slice() {
                ["client_ip"] => Ok((attr(AttrKind::ClientIp), Type::Ip)),
                _ => Err(unknown(" (request has client_ip)")),
            },
            _ => Err(self.err(
                ErrorKind::UnknownRoot,
                at,
                format!(
                    "unknown root `{root}` in `{name}` (expected user, data, current_time or request)"
                ),
            )),
        }
    }
}
