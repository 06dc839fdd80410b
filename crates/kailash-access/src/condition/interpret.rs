//! The reference tree-walking interpreter.

use super::Decision;
use super::check::{Ast, Node};
use super::value::{Context, Val, compare, truthy};

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
