//! Lowering a checked [`Ast`] into a tree of boxed closures.
//!
//! Names are resolved, literals are coerced (classification labels to
//! ranks, CIDRs to networks) and the comparison kind is chosen once, here;
//! evaluation only fetches values and compares them.

use super::ast::CmpOp;
use super::check::{Ast, Node};
use super::value::{Const, Context, Mode, Term, Val, apply_order, compare, num_cmp, rank, truthy};

pub(crate) type Pred = Box<dyn Fn(&Context<'_>) -> Result<bool, String> + Send + Sync>;

pub(crate) fn compile(ast: &Ast) -> Pred {
    node(&ast.root)
}

fn node(n: &Node) -> Pred {
    match n {
        Node::Or(items) => {
            let items: Vec<Pred> = items.iter().map(node).collect();
            Box::new(move |ctx| {
                for p in &items {
                    if p(ctx)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            })
        }
        Node::And(items) => {
            let items: Vec<Pred> = items.iter().map(node).collect();
            Box::new(move |ctx| {
                for p in &items {
                    if !p(ctx)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            })
        }
        Node::Not(inner) => {
            let inner = node(inner);
            Box::new(move |ctx| Ok(!inner(ctx)?))
        }
        Node::Cidr { lhs, nets, loc } => {
            let (lhs, nets, loc) = (lhs.clone(), nets.clone(), loc.clone());
            Box::new(move |ctx| match lhs.get(ctx)? {
                Val::Ip(ip) => Ok(nets.iter().any(|n| n.contains(&ip))),
                other => Err(format!(
                    "at {loc}: type mismatch: {} IN CIDR",
                    other.type_name()
                )),
            })
        }
        Node::Truthy { term, loc } => {
            let (term, loc) = (term.clone(), loc.clone());
            Box::new(move |ctx| truthy(term.get(ctx)?, &loc))
        }
        Node::Test {
            op,
            mode,
            lhs,
            rhs,
            loc,
        } => test(*op, *mode, lhs.clone(), rhs.clone(), loc.clone()),
    }
}

fn test(op: CmpOp, mode: Mode, lhs: Term, rhs: Term, loc: String) -> Pred {
    match (mode, op, &lhs, &rhs) {
        // Classification ordering: both sides to ranks.
        (Mode::Classification, CmpOp::In, _, _) => generic(op, mode, lhs, rhs, loc),
        (Mode::Classification, _, _, Term::Const(Const::Class(r))) => {
            let r = *r;
            Box::new(move |ctx| Ok(apply_order(op, rank(lhs.get(ctx)?, &loc)?.cmp(&r))))
        }
        (Mode::Classification, _, _, _) => Box::new(move |ctx| {
            let a = lhs.get(ctx)?;
            let b = rhs.get(ctx)?;
            Ok(apply_order(op, rank(a, &loc)?.cmp(&rank(b, &loc)?)))
        }),
        // Attribute against a number literal (the time policy).
        (
            Mode::Natural,
            CmpOp::Eq | CmpOp::Ne | CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge,
            Term::Attr(_),
            Term::Const(Const::Int(n)),
        ) => {
            let n = *n;
            Box::new(move |ctx| match lhs.get(ctx)? {
                Val::Int(x) => Ok(apply_order(op, x.cmp(&n))),
                other => match num_cmp(other, Val::Int(n)) {
                    Some(o) => Ok(apply_order(op, o)),
                    None => compare(op, mode, other, Val::Int(n), &loc),
                },
            })
        }
        // String equality against a literal.
        (Mode::Natural, CmpOp::Eq | CmpOp::Ne, Term::Attr(_), Term::Const(Const::Str(s))) => {
            let s = s.clone();
            let want = op == CmpOp::Eq;
            Box::new(move |ctx| match lhs.get(ctx)? {
                Val::Str(x) => Ok((x == s) == want),
                other => compare(op, mode, other, Val::Str(&s), &loc),
            })
        }
        // Membership in a literal list.
        (Mode::Natural, CmpOp::In, Term::Attr(_), Term::Const(Const::List(items))) => {
            let items = items.clone();
            Box::new(move |ctx| match lhs.get(ctx)? {
                Val::Str(x) => Ok(items.iter().any(|i| i == x)),
                other => compare(op, mode, other, Val::Strs(&items), &loc),
            })
        }
        _ => generic(op, mode, lhs, rhs, loc),
    }
}

fn generic(op: CmpOp, mode: Mode, lhs: Term, rhs: Term, loc: String) -> Pred {
    Box::new(move |ctx| {
        let a = lhs.get(ctx)?;
        let b = rhs.get(ctx)?;
        if let (Val::Str(x), Val::Str(y), Mode::Natural, CmpOp::Eq | CmpOp::Ne) = (a, b, mode, op) {
            return Ok((x == y) == (op == CmpOp::Eq));
        }
        if let (Val::Int(x), Val::Int(y), Mode::Natural) = (a, b, mode)
            && op.is_ordering()
        {
            return Ok(apply_order(op, x.cmp(&y)));
        }
        compare(op, mode, a, b, &loc)
    })
}
