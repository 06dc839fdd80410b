//! The reference tree-walking interpreter.

use super::Decision;
use super::check::{Ast, Node};
use super::value::{Const, Context, LABELS, Term, Val, compare, truthy};

/// Evaluates a checked condition by walking the tree: the reference
/// semantics that [`CompiledCondition::evaluate`](super::CompiledCondition::evaluate)
/// must agree with. Slower; meant for tests and tooling.
pub fn interpret(ast: &Ast, ctx: &Context<'_>) -> Decision {
    Decision::from_result(eval(&ast.root, ctx))
}

fn eval(node: &Node, ctx: &Context<'_>) -> Result<bool, String> {
    match node {
        Node::Or(items) => {
            for item in items {
                if eval(item, ctx)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Node::And(items) => {
            for item in items {
                if !eval(item, ctx)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Node::Not(inner) => Ok(!eval(inner, ctx)?),
        Node::Test {
            op,
            mode,
            lhs,
            rhs,
            loc,
        } => {
            let a = lhs.get(ctx)?;
            let b = rhs.get(ctx)?;
            compare(*op, *mode, a, b, loc)
        }
        Node::Cidr { lhs, nets, loc } => match lhs.get(ctx)? {
            Val::Ip(ip) => Ok(nets.iter().any(|n| n.contains(&ip))),
            other => Err(format!(
                "at {loc}: type mismatch: {} IN CIDR",
                other.type_name()
            )),
        },
        Node::Truthy { term, loc } => truthy(term.get(ctx)?, loc),
    }
}

/// One comparison of a condition, evaluated on its own (see [`clauses`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
pub struct Clause {
    /// Where it is in the condition (`line:column` of its operator, as
    /// evaluation errors give it).
    pub at: String,
    /// The comparison, e.g. `user.clearance >= data.classification`.
    pub test: String,
    /// The values it compared, e.g. `"confidential" >= "secret"` (absent
    /// when a value is missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<String>,
    /// `holds`, `fails`, or `cannot be evaluated: <why>`.
    pub outcome: String,
}

/// The longest rendering of one value in a [`Clause`]; longer values are cut.
const MAX_VALUE_SHOWN: usize = 120;

/// Every comparison of `ast`, each evaluated on its own against `ctx`,
/// in source order — without short-circuiting, so an explanation shows the
/// clause that failed *and* the ones that held. A comparison under `NOT`
/// or in an `OR` is shown as it evaluated by itself; the condition's
/// verdict is [`interpret`]'s.
pub fn clauses(ast: &Ast, ctx: &Context<'_>) -> Vec<Clause> {
    let mut out = Vec::new();
    collect(&ast.root, ctx, &mut out);
    out
}

fn collect(node: &Node, ctx: &Context<'_>, out: &mut Vec<Clause>) {
    match node {
        Node::Or(items) | Node::And(items) => {
            for item in items {
                collect(item, ctx, out);
            }
        }
        Node::Not(inner) => collect(inner, ctx, out),
        Node::Test {
            op,
            mode,
            lhs,
            rhs,
            loc,
        } => {
            let test = format!("{} {} {}", term_text(lhs), op.symbol(), term_text(rhs));
            let (values, result) = match (lhs.get(ctx), rhs.get(ctx)) {
                (Ok(a), Ok(b)) => (
                    Some(format!("{} {} {}", shown(a), op.symbol(), shown(b))),
                    compare(*op, *mode, a, b, loc),
                ),
                (Err(e), _) | (_, Err(e)) => (None, Err(e)),
            };
            out.push(clause(loc, test, values, result));
        }
        Node::Cidr { lhs, nets, loc } => {
            let shown_nets = list(nets.iter().map(|n| quoted(&n.to_string())));
            let test = format!("{} IN CIDR {shown_nets}", term_text(lhs));
            let (values, result) = match lhs.get(ctx) {
                Ok(Val::Ip(ip)) => (
                    Some(quoted(&ip.to_string())),
                    Ok(nets.iter().any(|n| n.contains(&ip))),
                ),
                Ok(other) => (
                    Some(shown(other)),
                    Err(format!(
                        "at {loc}: type mismatch: {} IN CIDR",
                        other.type_name()
                    )),
                ),
                Err(e) => (None, Err(e)),
            };
            out.push(clause(loc, test, values, result));
        }
        Node::Truthy { term, loc } => {
            let (values, result) = match term.get(ctx) {
                Ok(v) => (Some(shown(v)), truthy(v, loc)),
                Err(e) => (None, Err(e)),
            };
            out.push(clause(loc, term_text(term), values, result));
        }
    }
}

fn clause(loc: &str, test: String, values: Option<String>, result: Result<bool, String>) -> Clause {
    Clause {
        at: loc.to_owned(),
        test,
        values,
        outcome: match result {
            Ok(true) => "holds".to_owned(),
            Ok(false) => "fails".to_owned(),
            Err(e) => format!("cannot be evaluated: {e}"),
        },
    }
}

fn term_text(term: &Term) -> String {
    match term {
        Term::Attr(a) => a.name.clone(),
        Term::Const(c) => match c {
            Const::Bool(b) => b.to_string(),
            Const::Int(n) => n.to_string(),
            Const::Float(f) => f.to_string(),
            Const::Str(s) => quoted(s),
            Const::Class(r) => quoted(LABELS.get(usize::from(*r)).copied().unwrap_or("?")),
            Const::Ip(ip) => quoted(&ip.to_string()),
            Const::List(l) => list(l.iter().map(|s| quoted(s))),
        },
    }
}

fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_VALUE_SHOWN) + 2);
    out.push('\'');
    let mut cut = s.len().min(MAX_VALUE_SHOWN);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    out.push_str(&s[..cut]);
    if cut < s.len() {
        out.push('…');
    }
    out.push('\'');
    out
}

fn list(items: impl Iterator<Item = String>) -> String {
    let mut out = String::from("[");
    for (i, item) in items.enumerate() {
        if out.len() > MAX_VALUE_SHOWN {
            out.push_str(", …");
            break;
        }
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&item);
    }
    out.push(']');
    out
}

fn shown(v: Val<'_>) -> String {
    match v {
        Val::Bool(b) => b.to_string(),
        Val::Int(n) => n.to_string(),
        Val::Float(f) => f.to_string(),
        Val::Str(s) => quoted(s),
        Val::Class(r) => quoted(LABELS.get(usize::from(r)).copied().unwrap_or("?")),
        Val::Ip(ip) => quoted(&ip.to_string()),
        Val::Strs(l) => list(l.iter().map(|s| quoted(s))),
        Val::List(l) => list(l.iter().map(|e| match e {
            kailash_core::AttributeValue::String(s) => quoted(s),
            kailash_core::AttributeValue::Int(n) => n.to_string(),
            kailash_core::AttributeValue::Float(f) => f.to_string(),
            kailash_core::AttributeValue::Bool(b) => b.to_string(),
            _ => "…".to_owned(),
        })),
        Val::Map => "{…}".to_owned(),
    }
}
