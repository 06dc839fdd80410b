//! The built-in `transform` node: a [JMESPath] expression over the node's
//! input object, its value given on the output port `result`.
//!
//! JMESPath is a query language, not a programming language: no loops, no
//! recursion, no I/O, so an expression always terminates. What it can do is
//! copy: `[@, @] | []` doubles its input, and a chain of those would grow
//! it past any memory. So every expression is checked when the workflow is
//! validated, and compiled then, once:
//!
//! - at most [`MAX_EXPRESSION_BYTES`] long, brackets nested at most
//!   [`MAX_NESTING`] deep (the parser recurses on them);
//! - its *size bound* — `m × input + c` bytes, computed from the tree:
//!   multi-selects add up their parts (with their brackets, commas and
//!   keys), pipes compose, projections and `map` multiply per element
//!   (each element is at least one byte, so per-element constants become
//!   factors), `to_string` allows for escaping, `join` for its separator
//!   (which must not come from the input) — within [`MAX_EXPANSION`] for
//!   `m` and 1 MiB for `c`, for the result and every intermediate value.
//!
//! At run time the node refuses to start when the bound for its input
//! could pass what is left of the run's byte budget, and stops building
//! its result as soon as that result passes it.
//!
//! Config: `{"expression": "<jmespath>"}`; without a config (or without
//! `expression`) the node passes its input through (`@`).
//!
//! ```
//! use kailash_runtime::transform::TransformType;
//! use kailash_runtime::node::NodeType;
//! use serde_json::json;
//!
//! assert!(TransformType.build(&json!({"expression": "orders[?qty > `1`].id"})).is_ok());
//! // Refused at validation: a syntax error, a doubling chain.
//! assert!(TransformType.build(&json!({"expression": "orders[?"})).is_err());
//! let doubling = ["[@, @] | []"; 11].join(" | ");
//! let err = TransformType.build(&json!({ "expression": doubling })).err().map(|e| e.to_string());
//! assert!(err.is_some_and(|e| e.contains("expand")));
//! ```
//!
//! [JMESPath]: https://jmespath.org/specification.html

use std::sync::Arc;

use async_trait::async_trait;
use jmespath::ast::Ast;
use jmespath::{Expression, Rcvar, Variable};
use serde::Deserialize;
use serde_json::Value;

use crate::node::{ConfigError, Node, NodeContext, NodeError, NodeType, PortNames, Ports, Values};

/// The type name of the transform node.
pub const TRANSFORM: &str = "transform";
/// The transform node's only output port.
pub const RESULT: &str = "result";
/// The longest expression, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 1024;
/// The deepest nesting of `(`, `[` and `{` in an expression.
pub const MAX_NESTING: usize = 32;
/// The deepest parsed expression tree.
pub const MAX_DEPTH: usize = 128;
/// The largest factor `m` an expression's size bound may have (see the module doc).
pub const MAX_EXPANSION: u64 = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    expression: Option<String>,
}

/// The `transform` node type (built in; open to every tenant).
#[derive(Debug, Clone, Copy, Default)]
pub struct TransformType;

impl NodeType for TransformType {
    fn build(&self, config: &Value) -> Result<Arc<dyn Node>, ConfigError> {
        let expression = if config.is_null() {
            None
        } else {
            let c = Config::deserialize(config)
                .map_err(|e| ConfigError::new(format!("transform config: {e}")))?;
            c.expression
        };
        Ok(Arc::new(Transform::compile(
            expression.as_deref().unwrap_or("@"),
        )?))
    }
}

/// A compiled transform.
#[derive(Debug)]
pub struct Transform {
    expression: Expression<'static>,
    bound: Bound,
}

impl Transform {
    /// Checks and compiles `expression` (see the module doc for the bounds).
    pub fn compile(expression: &str) -> Result<Self, ConfigError> {
        if expression.len() > MAX_EXPRESSION_BYTES {
            return Err(ConfigError::new(format!(
                "the expression is {} bytes; at most {MAX_EXPRESSION_BYTES} are allowed",
                expression.len()
            )));
        }
        // Counted without regard to quoting, so never less than the parser sees.
        let mut depth = 0usize;
        for b in expression.bytes() {
            match b {
                b'(' | b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Err(ConfigError::new(format!(
                            "the expression nests brackets more than {MAX_NESTING} deep"
                        )));
                    }
                }
                b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        let compiled = jmespath::compile(expression)
            .map_err(|e| ConfigError::new(format!("invalid expression: {e}")))?;
        let shape = shape(compiled.as_ast(), 1).map_err(|why| {
            ConfigError::new(match why {
                "nested" => format!("the expression is nested more than {MAX_DEPTH} deep"),
                other => other.to_owned(),
            })
        })?;
        let worst = shape.peak.max(shape.size);
        if worst.m > MAX_EXPANSION || worst.c > MAX_CONSTANT {
            return Err(ConfigError::new(format!(
                "the expression may expand its input more than {MAX_EXPANSION} times"
            )));
        }
        Ok(Self {
            expression: compiled,
            bound: worst,
        })
    }

    /// The expression's expansion bound (see the module doc).
    pub fn expansion(&self) -> u64 {
        self.bound.m
    }

    /// The most bytes evaluating on an input of `input_bytes` can produce
    /// (serialized), by the expression's bound.
    pub fn worst_case(&self, input_bytes: u64) -> u64 {
        self.bound.at(input_bytes)
    }

    /// Evaluates the expression on `input`, building a result of at most
    /// `max_bytes` (estimated serialized size).
    pub fn evaluate(&self, input: Value, max_bytes: u64) -> Result<Value, NodeError> {
        let found = self
            .expression
            .search(input)
            .map_err(|e| NodeError::new(format!("the expression failed: {e}")))?;
        let mut left = max_bytes;
        to_json(&found, &mut left).ok_or_else(|| {
            NodeError::new(format!(
                "the result is larger than the {max_bytes} bytes left in the run's budget"
            ))
        })
    }
}

#[async_trait]
impl Node for Transform {
    fn ports(&self) -> Ports {
        Ports {
            inputs: PortNames::Any,
            outputs: PortNames::Only(vec![RESULT.to_owned()]),
        }
    }

    async fn run(&self, ctx: &NodeContext<'_>, input: Values) -> Result<Values, NodeError> {
        let worst = self.worst_case(ctx.input_bytes);
        if worst > ctx.budget_remaining {
            return Err(NodeError::new(format!(
                "the expression may turn its {}-byte input into {worst} bytes, past the {} bytes left in the run's budget",
                ctx.input_bytes, ctx.budget_remaining
            )));
        }
        let result = self.evaluate(Value::Object(input), ctx.budget_remaining)?;
        Ok(Values::from_iter([(RESULT.to_owned(), result)]))
    }
}

/// An upper bound on a value's serialized size: `m` times the size of
/// what the expression is evaluated on, plus `c` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bound {
    m: u64,
    c: u64,
}

impl Bound {
    const fn new(m: u64, c: u64) -> Self {
        Self { m, c }
    }

    fn add(self, o: Self) -> Self {
        Self::new(self.m.saturating_add(o.m), self.c.saturating_add(o.c))
    }

    fn max(self, o: Self) -> Self {
        Self::new(self.m.max(o.m), self.c.max(o.c))
    }

    /// `self` applied once to a value bounded by `inner`.
    fn after(self, inner: Self) -> Self {
        Self::new(
            self.m.saturating_mul(inner.m),
            self.m.saturating_mul(inner.c).saturating_add(self.c),
        )
    }

    /// `self` applied to each element of an array bounded by `array`, the
    /// results collected in an array. Every element takes at least one
    /// byte of the array, so the bytes `self` adds per element are at most
    /// `c` times the element: the constant turns into a factor.
    fn each(self, array: Self) -> Self {
        let k = self.m.saturating_add(self.c);
        Self::new(
            k.saturating_mul(array.m),
            k.saturating_mul(array.c).saturating_add(2),
        )
    }

    /// The bound for an input of `n` bytes.
    fn at(self, n: u64) -> u64 {
        self.m.saturating_mul(n).saturating_add(self.c)
    }
}

/// A node's value, and the largest value anything in its tree holds.
#[derive(Debug, Clone, Copy)]
struct Shape {
    size: Bound,
    peak: Bound,
}

impl Shape {
    fn of(size: Bound) -> Self {
        Self { size, peak: size }
    }

    fn with(size: Bound, parts: &[Shape]) -> Self {
        let peak = parts.iter().fold(size, |p, s| p.max(s.peak));
        Self { size, peak }
    }
}

/// `null`, which a missing field or a type mismatch gives.
const NULL: Bound = Bound::new(0, 4);
/// `true`/`false`.
const BOOL: Bound = Bound::new(0, 5);
/// JSON escapes make a string at most six times longer.
const ESCAPED: u64 = 6;
/// The longest number a function returns, in bytes.
const NUMBER: u64 = 24;
/// The largest constant part of a bound, in bytes.
const MAX_CONSTANT: u64 = 1 << 20;

fn shape(ast: &Ast, depth: usize) -> Result<Shape, &'static str> {
    if depth > MAX_DEPTH {
        return Err("nested");
    }
    let d = depth + 1;
    Ok(match ast {
        Ast::Identity { .. } => Shape::of(Bound::new(1, 0)),
        // A part of the input, or null.
        Ast::Field { .. } | Ast::Index { .. } | Ast::Slice { .. } => {
            Shape::of(Bound::new(1, 0).max(NULL))
        }
        Ast::Literal { value, .. } => {
            let len = serde_json::to_vec(&**value).map_or(u64::MAX, |v| v.len() as u64);
            Shape::of(Bound::new(0, len))
        }
        Ast::Comparison { lhs, rhs, .. } => Shape::with(BOOL, &[shape(lhs, d)?, shape(rhs, d)?]),
        Ast::Not { node, .. } => Shape::with(BOOL, &[shape(node, d)?]),
        Ast::And { lhs, rhs, .. } | Ast::Or { lhs, rhs, .. } => {
            let (a, b) = (shape(lhs, d)?, shape(rhs, d)?);
            Shape::with(a.size.max(b.size), &[a, b])
        }
        Ast::Condition {
            predicate, then, ..
        } => {
            let (p, t) = (shape(predicate, d)?, shape(then, d)?);
            Shape::with(t.size.max(NULL), &[p, t])
        }
        Ast::Subexpr { lhs, rhs, .. } => {
            let (a, b) = (shape(lhs, d)?, shape(rhs, d)?);
            Shape {
                size: b.size.after(a.size),
                peak: a.peak.max(b.peak.after(a.size)),
            }
        }
        Ast::Projection { lhs, rhs, .. } => {
            let (a, b) = (shape(lhs, d)?, shape(rhs, d)?);
            Shape {
                size: b.size.each(a.size),
                peak: a.peak.max(b.peak.each(a.size)),
            }
        }
        Ast::Flatten { node, .. } | Ast::ObjectValues { node, .. } => {
            let s = shape(node, d)?;
            Shape::with(s.size.add(NULL), &[s])
        }
        Ast::Expref { ast, .. } => shape(ast, d)?,
        Ast::MultiList { elements, .. } => {
            let mut parts = Vec::with_capacity(elements.len());
            let mut size = Bound::new(0, elements.len() as u64 + 1);
            for e in elements {
                let s = shape(e, d)?;
                size = size.add(s.size);
                parts.push(s);
            }
            Shape::with(size, &parts)
        }
        Ast::MultiHash { elements, .. } => {
            let mut parts = Vec::with_capacity(elements.len());
            let mut size = Bound::new(0, 1);
            for kv in elements {
                let s = shape(&kv.value, d)?;
                let key = (kv.key.len() as u64)
                    .saturating_mul(ESCAPED)
                    .saturating_add(4);
                size = size.add(s.size).add(Bound::new(0, key));
                parts.push(s);
            }
            Shape::with(size, &parts)
        }
        Ast::Function { name, args, .. } => {
            // Plain arguments add up (merge, not_null, sort); expression
            // arguments (map, sort_by) run on each element of them.
            let mut plain = Vec::with_capacity(args.len());
            let mut per_element: Option<Shape> = None;
            for arg in args {
                let s = shape(arg, d)?;
                if matches!(arg, Ast::Expref { .. }) {
                    per_element = Some(match per_element {
                        None => s,
                        Some(p) => Shape::with(p.size.add(s.size), &[p, s]),
                    });
                } else {
                    plain.push(s);
                }
            }
            let sum = plain
                .iter()
                .fold(Bound::new(0, 0), |acc, s| acc.add(s.size));
            let size = match (name.as_str(), plain.as_slice()) {
                // Every character escaped, plus quotes.
                ("to_string", [arg]) => Bound::new(
                    arg.size.m.saturating_mul(ESCAPED + 1),
                    arg.size.c.saturating_mul(ESCAPED + 1).saturating_add(2),
                ),
                // The separator once per element of the array: it must not
                // grow with the input, or the result grows with its square.
                ("join", [sep, array]) => {
                    if sep.size.m > 0 {
                        return Err("join's separator must not depend on the input");
                    }
                    Bound::new(1, 0)
                        .each(array.size)
                        .add(sep.size.each(array.size))
                }
                _ => sum.add(Bound::new(0, NUMBER)),
            };
            match per_element {
                None => Shape::with(size, &plain),
                Some(e) => {
                    let mut parts = plain.clone();
                    parts.push(Shape::of(e.peak.each(sum)));
                    Shape::with(e.size.each(size), &parts)
                }
            }
        }
    })
}

/// Converts a search result to JSON, charging its estimated serialized
/// size against `left`; `None` once that runs out.
fn to_json(v: &Rcvar, left: &mut u64) -> Option<Value> {
    fn charge(left: &mut u64, n: usize) -> Option<()> {
        *left = left.checked_sub(u64::try_from(n).ok()?)?;
        Some(())
    }
    Some(match &**v {
        Variable::Null => {
            charge(left, 4)?;
            Value::Null
        }
        Variable::Bool(b) => {
            charge(left, 5)?;
            Value::Bool(*b)
        }
        Variable::Number(n) => {
            charge(left, 24)?;
            Value::Number(n.clone())
        }
        Variable::String(s) => {
            charge(left, s.len() + 2)?;
            Value::String(s.clone())
        }
        Variable::Array(items) => {
            charge(left, 2)?;
            let mut out = Vec::with_capacity(items.len().min(1024));
            for item in items {
                charge(left, 1)?;
                out.push(to_json(item, left)?);
            }
            Value::Array(out)
        }
        Variable::Object(map) => {
            charge(left, 2)?;
            let mut out = serde_json::Map::new();
            for (k, item) in map {
                charge(left, k.len() + 4)?;
                out.insert(k.clone(), to_json(item, left)?);
            }
            Value::Object(out)
        }
        // A bare `&expr` outside a function has no JSON form.
        Variable::Expref(_) => {
            charge(left, 4)?;
            Value::Null
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(expr: &str, input: Value) -> Value {
        Transform::compile(expr)
            .unwrap()
            .evaluate(input, u64::MAX)
            .unwrap()
    }

    #[test]
    fn evaluates_jmespath() {
        let input = json!({"a": {"b": [1, 2, 3]}, "c": "x"});
        assert_eq!(run("a.b[1]", input.clone()), json!(2));
        assert_eq!(
            run("{n: length(a.b), c: c}", input.clone()),
            json!({"n": 3, "c": "x"})
        );
        assert_eq!(run("@", input.clone()), input);
        assert_eq!(run("missing", input), Value::Null);
    }

    #[test]
    fn refuses_bad_and_unbounded_expressions() {
        for (expr, why) in [
            ("a.[", "invalid expression"),
            ("", "invalid expression"),
            (&"a".repeat(MAX_EXPRESSION_BYTES + 1), "bytes"),
            (&format!("{}a{}", "(".repeat(40), ")".repeat(40)), "nests"),
            (&["[@, @] | []"; 11].join(" | "), "expand"),
            (&["join('', [@, @])"; 11].join(" | "), "expand"),
            (
                &format!("map(&[@,@,@,@], {})", "[@,@,@,@,@,@,@,@,@,@]"),
                "ok",
            ),
        ] {
            let got = Transform::compile(expr);
            if why == "ok" {
                assert!(got.is_ok(), "{expr}: {got:?}");
                continue;
            }
            let err = got.unwrap_err().to_string();
            assert!(err.contains(why), "{expr}: {err}");
        }
        // Ten doublings (1024) are still allowed; eleven are not (above).
        let ten = ["[@, @] | []"; 10].join(" | ");
        assert_eq!(Transform::compile(&ten).unwrap().expansion(), 1024);
    }

    #[test]
    fn a_long_chain_compiles_or_is_refused_without_overflowing() {
        // 511 dots: a tree as deep as the expression is long.
        let chain = ["a"; 512].join(".");
        let err = Transform::compile(&chain).unwrap_err().to_string();
        assert!(err.contains("nested"), "{err}");
        let ok = ["a"; 100].join(".");
        assert!(Transform::compile(&ok).is_ok());
    }

    #[test]
    fn result_is_cut_off_at_the_budget() {
        let t = Transform::compile("[@, @, @, @]").unwrap();
        let input = json!("x".repeat(1000));
        assert!(t.evaluate(input.clone(), 100_000).is_ok());
        let err = t.evaluate(input, 3000).unwrap_err().to_string();
        assert!(err.contains("budget"), "{err}");
    }

    #[test]
    fn results_stay_within_the_expression_bound() {
        let input = json!({
            "s": "x\u{1}".repeat(1500),
            "a": ["p".repeat(500), "q".repeat(500), "r".repeat(500)],
            "n": [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0],
            "o": {"k": "v".repeat(700), "m": ["w".repeat(300)]}
        });
        let input_bytes = serde_json::to_vec(&input).unwrap().len() as u64;
        for expr in [
            "@",
            "[@, @, @]",
            "[@, @] | [] | [@, @] | []",
            "{a: a, b: [a, a], c: o}",
            "a[*].[@, @, @]",
            "n[*].[@, @, @]",
            "n[*].{long_key_name: @, other: @}",
            "n[*].missing",
            "n[*].[missing, missing]",
            "map(&[@, @], a)",
            "map(&{k: @}, n)",
            "join('', [s, s, s])",
            "join(', ', n[*].to_string(@))",
            "to_string([@, @])",
            "to_string(to_string(s))",
            "merge(o, o, {z: s})",
            "a[?length(@) > `1`] | [@, @][]",
            "values(o) | [@, @, @, @][][]",
            "sort_by(a[*].{v: @}, &v)",
            "n[*].[`\"a literal string\"`]",
        ] {
            let t = Transform::compile(expr).unwrap();
            let out = t.evaluate(input.clone(), u64::MAX).unwrap();
            let size = serde_json::to_vec(&out).unwrap().len() as u64;
            let bound = t.worst_case(input_bytes);
            assert!(size <= bound, "{expr}: {size} > {bound}");
        }
        // A separator taken from the input would grow with its square.
        assert!(Transform::compile("join(s, n[*].to_string(@))").is_err());
    }

    #[test]
    fn config_shapes() {
        assert!(TransformType.build(&Value::Null).is_ok());
        assert!(TransformType.build(&json!({})).is_ok());
        assert!(TransformType.build(&json!({"expresion": "a"})).is_err());
        assert!(TransformType.build(&json!({"expression": 3})).is_err());
        assert!(TransformType.build(&json!("a")).is_err());
    }
}
