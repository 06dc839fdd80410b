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
//! - its *expansion* — an upper bound on how many times the size of its
//!   input (or of a 1 KiB literal, whichever is larger) any part of it can
//!   produce, summed over multi-selects and multiplied along pipes,
//!   projections and `map` — at most [`MAX_EXPANSION`].
//!
//! At run time the node refuses to start when expansion × input size could
//! pass what is left of the run's byte budget, and stops building its
//! result as soon as that result passes it.
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
/// The largest expansion an expression may have (see the module doc).
pub const MAX_EXPANSION: u64 = 1024;
/// The input size expansion is counted against when the input is smaller:
/// literals in the expression are at most this large.
const MIN_UNIT: u64 = MAX_EXPRESSION_BYTES as u64;

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
    expansion: u64,
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
        let shape = shape(compiled.as_ast(), 1).ok_or_else(|| {
            ConfigError::new(format!(
                "the expression is nested more than {MAX_DEPTH} deep"
            ))
        })?;
        if shape.peak > MAX_EXPANSION {
            return Err(ConfigError::new(format!(
                "the expression may expand its input more than {MAX_EXPANSION} times"
            )));
        }
        Ok(Self {
            expression: compiled,
            expansion: shape.peak.max(1),
        })
    }

    /// The expression's expansion bound (see the module doc).
    pub fn expansion(&self) -> u64 {
        self.expansion
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
        let worst = self.expansion.saturating_mul(ctx.input_bytes.max(MIN_UNIT));
        if worst > ctx.budget_remaining {
            return Err(NodeError::new(format!(
                "the expression may expand its {}-byte input up to {} times, past the {} bytes left in the run's budget",
                ctx.input_bytes, self.expansion, ctx.budget_remaining
            )));
        }
        let result = self.evaluate(Value::Object(input), ctx.budget_remaining)?;
        Ok(Values::from_iter([(RESULT.to_owned(), result)]))
    }
}

/// How large (relative to the input) a node's value and its largest
/// sub-value can get.
struct Shape {
    /// This node's value.
    size: u64,
    /// The largest of any node in the tree (what evaluation may hold).
    peak: u64,
}

fn shape(ast: &Ast, depth: usize) -> Option<Shape> {
    if depth > MAX_DEPTH {
        return None;
    }
    let d = depth + 1;
    let leaf = Shape { size: 1, peak: 1 };
    let both = |a: Shape, b: Shape, size: u64| Shape {
        size,
        peak: a.peak.max(b.peak).max(size),
    };
    Some(match ast {
        Ast::Identity { .. }
        | Ast::Field { .. }
        | Ast::Index { .. }
        | Ast::Literal { .. }
        | Ast::Slice { .. } => leaf,
        Ast::Comparison { lhs, rhs, .. } => {
            let (a, b) = (shape(lhs, d)?, shape(rhs, d)?);
            both(a, b, 1)
        }
        Ast::And { lhs, rhs, .. } | Ast::Or { lhs, rhs, .. } => {
            let (a, b) = (shape(lhs, d)?, shape(rhs, d)?);
            let size = a.size.max(b.size);
            both(a, b, size)
        }
        Ast::Condition {
            predicate, then, ..
        } => {
            let (p, t) = (shape(predicate, d)?, shape(then, d)?);
            let size = t.size;
            both(p, t, size)
        }
        Ast::Subexpr { lhs, rhs, .. } | Ast::Projection { lhs, rhs, .. } => {
            let (a, b) = (shape(lhs, d)?, shape(rhs, d)?);
            let size = a.size.saturating_mul(b.size);
            // The right side runs on parts of the left's value.
            let peak = a.peak.max(a.size.saturating_mul(b.peak)).max(size);
            Shape { size, peak }
        }
        Ast::Not { node, .. } => {
            let s = shape(node, d)?;
            Shape {
                size: 1,
                peak: s.peak,
            }
        }
        Ast::Flatten { node, .. }
        | Ast::ObjectValues { node, .. }
        | Ast::Expref { ast: node, .. } => shape(node, d)?,
        Ast::MultiList { elements, .. } => sum(elements.iter(), d)?,
        Ast::MultiHash { elements, .. } => sum(elements.iter().map(|kv| &kv.value), d)?,
        Ast::Function { args, .. } => {
            // Plain arguments add up (join, merge, to_string); expression
            // arguments (map, sort_by) run on each element, so multiply.
            let mut plain = Shape { size: 0, peak: 1 };
            let mut per_element = 1u64;
            for arg in args {
                let s = shape(arg, d)?;
                if matches!(arg, Ast::Expref { .. }) {
                    per_element = per_element.saturating_mul(s.size);
                    plain.peak = plain.peak.max(s.peak);
                } else {
                    plain.size = plain.size.saturating_add(s.size);
                    plain.peak = plain.peak.max(s.peak);
                }
            }
            let size = plain.size.max(1).saturating_mul(per_element);
            Shape {
                size,
                peak: plain.peak.saturating_mul(per_element).max(size),
            }
        }
    })
}

fn sum<'a>(elements: impl Iterator<Item = &'a Ast>, depth: usize) -> Option<Shape> {
    let mut total = Shape { size: 0, peak: 1 };
    for e in elements {
        let s = shape(e, depth)?;
        total.size = total.size.saturating_add(s.size);
        total.peak = total.peak.max(s.peak);
    }
    total.peak = total.peak.max(total.size);
    total.size = total.size.max(1);
    Some(total)
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
    fn config_shapes() {
        assert!(TransformType.build(&Value::Null).is_ok());
        assert!(TransformType.build(&json!({})).is_ok());
        assert!(TransformType.build(&json!({"expresion": "a"})).is_err());
        assert!(TransformType.build(&json!({"expression": 3})).is_err());
        assert!(TransformType.build(&json!("a")).is_err());
    }
}
