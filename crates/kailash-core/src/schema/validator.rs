//! The compiled validator: the subset of JSON Schema 2020-12 that utoipa
//! emits, enforced exactly, and nothing else accepted.

use std::collections::HashMap;
use std::fmt::Write as _;

use regex::Regex;
use serde_json::{Map, Number, Value};

/// The most violations one validation reports; the rest are dropped.
pub const MAX_VIOLATIONS: usize = 16;
/// How deep a validation may follow schemas and values.
const MAX_DEPTH: usize = 256;
/// The longest JSON pointer a violation carries (longer ones are cut).
const MAX_POINTER: usize = 256;

/// A schema that cannot be enforced as published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema at {at}: {reason}")]
pub struct SchemaError {
    /// Where in the schema (a JSON pointer into it, or a component name).
    pub at: String,
    /// What is wrong.
    pub reason: String,
}

impl SchemaError {
    fn new(at: &str, reason: impl Into<String>) -> Self {
        Self {
            at: at.to_owned(),
            reason: reason.into(),
        }
    }
}

/// One way a value does not match its schema.
///
/// The message never quotes the value (it may be a password); the pointer
/// names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// RFC 6901 JSON pointer to the offending value (`""` is the whole
    /// value; a missing field's pointer names where it should be).
    pub pointer: String,
    /// What is wrong, in words that never repeat the value.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Types(pub(crate) u8);

impl Types {
    pub(crate) const NULL: u8 = 1;
    pub(crate) const BOOLEAN: u8 = 2;
    pub(crate) const OBJECT: u8 = 4;
    pub(crate) const ARRAY: u8 = 8;
    pub(crate) const NUMBER: u8 = 16;
    pub(crate) const INTEGER: u8 = 32;
    pub(crate) const STRING: u8 = 64;

    fn parse(name: &str) -> Option<u8> {
        Some(match name {
            "null" => Self::NULL,
            "boolean" => Self::BOOLEAN,
            "object" => Self::OBJECT,
            "array" => Self::ARRAY,
            "number" => Self::NUMBER,
            "integer" => Self::INTEGER,
            "string" => Self::STRING,
            _ => return None,
        })
    }

    fn describe(self) -> String {
        let names = [
            (Self::OBJECT, "an object"),
            (Self::ARRAY, "an array"),
            (Self::STRING, "a string"),
            (Self::INTEGER, "an integer"),
            (Self::NUMBER, "a number"),
            (Self::BOOLEAN, "a boolean"),
            (Self::NULL, "null"),
        ];
        let list: Vec<&str> = names
            .iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|(_, n)| *n)
            .collect();
        list.join(" or ")
    }
}

#[derive(Debug)]
enum Node {
    /// `true` or `{}`.
    Any,
    /// `false`.
    Never,
    /// A `$ref` to a component, by index.
    Ref(usize),
    Rules(Box<Rules>),
}

#[derive(Debug, Default)]
struct Rules {
    types: Option<Types>,
    allowed: Option<Vec<Value>>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    pattern: Option<(Regex, String)>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: Option<f64>,
    exclusive_maximum: Option<f64>,
    multiple_of: Option<f64>,
    items: Option<Node>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    unique_items: bool,
    properties: Vec<(String, Node)>,
    required: Vec<String>,
    additional: Option<Node>,
    property_names: Option<Node>,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    all_of: Vec<Node>,
    any_of: Vec<Node>,
    one_of: Vec<Node>,
    not: Option<Node>,
}

/// Keywords that only annotate: they carry no constraint, so ignoring them
/// enforces the schema exactly. `format` is an annotation in JSON Schema
/// 2020-12 (and in OpenAPI 3.1); a constraint that matters is a `pattern`.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "example",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "format",
    "discriminator",
    "xml",
    "externalDocs",
    "contentMediaType",
    "contentEncoding",
    "$comment",
    "nullable",
];

/// A compiled JSON Schema: the published schema of a type, enforced.
///
/// It understands the subset of JSON Schema 2020-12 that utoipa emits —
/// `type`, `enum`, `const`, `properties`, `required`,
/// `additionalProperties`, `propertyNames`, `minProperties`/`maxProperties`,
/// `items`, `minItems`/`maxItems`, `uniqueItems`, `minLength`/`maxLength`
/// (in Unicode code points), `pattern`, `minimum`/`maximum` and their
/// exclusive forms, `multipleOf`, `allOf`/`anyOf`/`oneOf`/`not` and
/// `$ref` to `#/components/schemas/…` — and refuses to compile a schema with
/// any other assertion keyword, so a published constraint is never silently
/// unenforced. Annotation keywords (`description`, `format`, `example`, …)
/// are ignored, as the specification says.
#[derive(Debug)]
pub struct Validator {
    root: Node,
    components: Vec<Node>,
}

struct Compiler<'a> {
    source: &'a Map<String, Value>,
    index: HashMap<String, usize>,
    /// Components referenced so far (only those are compiled: a response
    /// type's schema need not be enforceable).
    wanted: Vec<usize>,
}

const REF_PREFIX: &str = "#/components/schemas/";

impl<'a> Compiler<'a> {
    fn new(source: &'a Map<String, Value>) -> Self {
        let index = source
            .keys()
            .enumerate()
            .map(|(i, k)| (k.clone(), i))
            .collect();
        Self {
            source,
            index,
            wanted: Vec::new(),
        }
    }

    fn compile(&mut self, schema: &Value, at: &str) -> Result<Node, SchemaError> {
        let map = match schema {
            Value::Bool(true) => return Ok(Node::Any),
            Value::Bool(false) => return Ok(Node::Never),
            Value::Object(m) => m,
            _ => {
                return Err(SchemaError::new(
                    at,
                    "a schema must be an object or a boolean",
                ));
            }
        };
        if let Some(reference) = map.get("$ref") {
            let Some(name) = reference.as_str().and_then(|r| r.strip_prefix(REF_PREFIX)) else {
                return Err(SchemaError::new(
                    at,
                    "only #/components/schemas/ references are supported",
                ));
            };
            let Some(&i) = self.index.get(name) else {
                return Err(SchemaError::new(at, format!("unknown component {name}")));
            };
            // Siblings of `$ref` other than annotations would be assertions.
            for key in map.keys() {
                if key != "$ref" && !ANNOTATIONS.contains(&key.as_str()) {
                    return Err(SchemaError::new(at, format!("keyword {key} beside $ref")));
                }
            }
            if !self.wanted.contains(&i) {
                self.wanted.push(i);
            }
            return Ok(Node::Ref(i));
        }
        let mut r = Rules::default();
        for (key, v) in map {
            let here = format!("{at}/{key}");
            match key.as_str() {
                "type" => {
                    let mut bits = 0u8;
                    let names: Vec<&Value> = match v {
                        Value::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    for n in names {
                        let bit = n
                            .as_str()
                            .and_then(Types::parse)
                            .ok_or_else(|| SchemaError::new(&here, "unknown type"))?;
                        bits |= bit;
                    }
                    r.types = Some(Types(bits));
                }
                "enum" => {
                    let a = v
                        .as_array()
                        .ok_or_else(|| SchemaError::new(&here, "enum must be an array"))?;
                    r.allowed = Some(a.clone());
                }
                "const" => r.allowed = Some(vec![v.clone()]),
                "minLength" => r.min_length = Some(count(v, &here)?),
                "maxLength" => r.max_length = Some(count(v, &here)?),
                "pattern" => {
                    let p = v
                        .as_str()
                        .ok_or_else(|| SchemaError::new(&here, "pattern must be a string"))?;
                    portable_pattern(p).map_err(|reason| SchemaError::new(&here, reason))?;
                    let re = Regex::new(p)
                        .map_err(|e| SchemaError::new(&here, format!("bad pattern: {e}")))?;
                    r.pattern = Some((re, p.to_owned()));
                }
                "minimum" => r.minimum = Some(number(v, &here)?),
                "maximum" => r.maximum = Some(number(v, &here)?),
                "exclusiveMinimum" => r.exclusive_minimum = Some(number(v, &here)?),
                "exclusiveMaximum" => r.exclusive_maximum = Some(number(v, &here)?),
                "multipleOf" => {
                    let m = number(v, &here)?;
                    if m <= 0.0 {
                        return Err(SchemaError::new(&here, "multipleOf must be positive"));
                    }
                    r.multiple_of = Some(m);
                }
                "items" => r.items = Some(self.compile(v, &here)?),
                "minItems" => r.min_items = Some(count(v, &here)?),
                "maxItems" => r.max_items = Some(count(v, &here)?),
                "uniqueItems" => r.unique_items = v.as_bool().unwrap_or(false),
                "properties" => {
                    let props = v
                        .as_object()
                        .ok_or_else(|| SchemaError::new(&here, "properties must be an object"))?;
                    for (name, s) in props {
                        let node = self.compile(s, &format!("{here}/{name}"))?;
                        r.properties.push((name.clone(), node));
                    }
                }
                "required" => {
                    let a = v
                        .as_array()
                        .ok_or_else(|| SchemaError::new(&here, "required must be an array"))?;
                    for n in a {
                        let n = n
                            .as_str()
                            .ok_or_else(|| SchemaError::new(&here, "required names are strings"))?;
                        r.required.push(n.to_owned());
                    }
                }
                "additionalProperties" => r.additional = Some(self.compile(v, &here)?),
                "propertyNames" => r.property_names = Some(self.compile(v, &here)?),
                "minProperties" => r.min_properties = Some(count(v, &here)?),
                "maxProperties" => r.max_properties = Some(count(v, &here)?),
                "allOf" => r.all_of = self.compile_list(v, &here)?,
                "anyOf" => r.any_of = self.compile_list(v, &here)?,
                "oneOf" => r.one_of = self.compile_list(v, &here)?,
                "not" => r.not = Some(self.compile(v, &here)?),
                k if ANNOTATIONS.contains(&k) => {}
                other => {
                    return Err(SchemaError::new(
                        at,
                        format!("keyword {other} is not enforced by the validator"),
                    ));
                }
            }
        }
        if let Some(t) = r.types
            && t.0 & Types::INTEGER != 0
            && (r.minimum.is_none() && r.exclusive_minimum.is_none()
                || r.maximum.is_none() && r.exclusive_maximum.is_none())
        {
            // The Rust type's range is not in the schema: without both
            // bounds a schema-valid number could overflow it.
            return Err(SchemaError::new(
                at,
                "an integer needs a minimum and a maximum (the Rust type's range)",
            ));
        }
        Ok(Node::Rules(Box::new(r)))
    }

    fn compile_list(&mut self, v: &Value, at: &str) -> Result<Vec<Node>, SchemaError> {
        let a = v
            .as_array()
            .ok_or_else(|| SchemaError::new(at, "must be an array of schemas"))?;
        a.iter()
            .enumerate()
            .map(|(i, s)| self.compile(s, &format!("{at}/{i}")))
            .collect()
    }

    fn finish(mut self, root: &Value) -> Result<Validator, SchemaError> {
        let root = self.compile(root, "#")?;
        let source = self.source;
        let mut components: Vec<Node> = (0..source.len()).map(|_| Node::Any).collect();
        let mut done = 0;
        while done < self.wanted.len() {
            let i = self.wanted[done];
            done += 1;
            if let Some((name, schema)) = source.iter().nth(i) {
                components[i] = self.compile(schema, &format!("{REF_PREFIX}{name}"))?;
            }
        }
        Ok(Validator { root, components })
    }
}

/// Refuses the pattern constructs whose meaning differs between ECMA 262
/// (JSON Schema's dialect, and what clients such as schemathesis read)
/// and the `regex` crate: the Unicode-aware `\d`, `\w`, `\s`, `\b` and
/// `.` (which ECMA stops at more line terminators). Spell classes out.
fn portable_pattern(p: &str) -> Result<(), String> {
    let mut in_class = false;
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(e) = chars.next()
                    && "dDwWsSbB".contains(e)
                {
                    return Err(format!(
                        "\\{e} differs between regex dialects; spell the class out"
                    ));
                }
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '.' if !in_class => {
                return Err("`.` differs between regex dialects; use a class".into());
            }
            _ => {}
        }
    }
    Ok(())
}

fn count(v: &Value, at: &str) -> Result<u64, SchemaError> {
    v.as_u64()
        .ok_or_else(|| SchemaError::new(at, "must be a non-negative integer"))
}

fn number(v: &Value, at: &str) -> Result<f64, SchemaError> {
    v.as_f64()
        .ok_or_else(|| SchemaError::new(at, "must be a number"))
}

/// How a parameter's text is read: the JSON types its schema names, and,
/// when it is an array (the parameter repeats), its items' types. (Only
/// the axum extractors read parameters.)
#[cfg(feature = "axum")]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ParamShape {
    /// The types of the value (bits of `Types`).
    pub(crate) types: u8,
    /// The types of an array's items.
    pub(crate) item_types: u8,
}

#[cfg(feature = "axum")]
impl ParamShape {
    pub(crate) fn is_array(self) -> bool {
        self.types & Types::ARRAY != 0
    }
}

impl Validator {
    /// The shape of the root object's property `name` (a parameter's),
    /// read from the compiled schema: no per-request schema walk.
    #[cfg(feature = "axum")]
    pub(crate) fn param_shape(&self, name: &str) -> Option<ParamShape> {
        let Node::Rules(root) = &self.root else {
            return None;
        };
        let (_, node) = root.properties.iter().find(|(n, _)| n == name)?;
        let types = |node: &Node| {
            self.rules_of(node, 0)
                .and_then(|r| r.types)
                .map_or(0, |t| t.0)
        };
        let rules = self.rules_of(node, 0);
        let item_types = rules.and_then(|r| r.items.as_ref()).map_or(0, types);
        Some(ParamShape {
            types: types(node),
            item_types,
        })
    }

    #[cfg(feature = "axum")]
    fn rules_of<'a>(&'a self, node: &'a Node, depth: usize) -> Option<&'a Rules> {
        match node {
            Node::Rules(r) => Some(r),
            Node::Ref(i) if depth < MAX_DEPTH => self
                .components
                .get(*i)
                .and_then(|n| self.rules_of(n, depth + 1)),
            _ => None,
        }
    }

    /// Compiles `root`, resolving `$ref`s against `components` (the
    /// `components.schemas` map of an OpenAPI document).
    ///
    /// # Errors
    ///
    /// [`SchemaError`] when a schema uses a keyword the validator does not
    /// enforce, a malformed keyword, or an unresolvable reference.
    pub fn compile(root: &Value, components: &Map<String, Value>) -> Result<Self, SchemaError> {
        Compiler::new(components).finish(root)
    }

    /// Validates `value`, and normalises it for deserialisation: a number
    /// with no fraction where the schema asks for an integer (`1.0`, which
    /// JSON Schema counts as an integer) becomes an integer.
    ///
    /// # Errors
    ///
    /// Up to [`MAX_VIOLATIONS`] violations.
    pub fn validate(&self, value: &mut Value) -> Result<(), Vec<Violation>> {
        let mut out = Vec::new();
        let mut pointer = String::new();
        self.check(&self.root, value, &mut pointer, 0, &mut out);
        if out.is_empty() { Ok(()) } else { Err(out) }
    }

    /// Whether `value` matches, without collecting violations or
    /// normalising (used for `anyOf`/`oneOf`/`not` branches).
    fn matches(&self, node: &Node, value: &Value, depth: usize) -> bool {
        let mut scratch = value.clone();
        let mut out = Vec::new();
        let mut pointer = String::new();
        self.check(node, &mut scratch, &mut pointer, depth, &mut out);
        out.is_empty()
    }

    fn check(
        &self,
        node: &Node,
        value: &mut Value,
        pointer: &mut String,
        depth: usize,
        out: &mut Vec<Violation>,
    ) {
        if out.len() >= MAX_VIOLATIONS {
            return;
        }
        if depth > MAX_DEPTH {
            push(out, pointer, "is nested too deeply".into());
            return;
        }
        let rules = match node {
            Node::Any => return,
            Node::Never => {
                push(out, pointer, "is not allowed here".into());
                return;
            }
            Node::Ref(i) => {
                if let Some(target) = self.components.get(*i) {
                    self.check(target, value, pointer, depth + 1, out);
                }
                return;
            }
            Node::Rules(r) => r,
        };
        if let Some(types) = rules.types {
            if !type_matches(types, value) {
                push(out, pointer, format!("must be {}", types.describe()));
                return;
            }
            if types.0 & Types::INTEGER != 0 && types.0 & Types::NUMBER == 0 {
                normalise_integer(value);
            }
        }
        if let Some(allowed) = &rules.allowed
            && !allowed.iter().any(|a| json_equal(a, value))
        {
            let detail = if allowed.len() == 1 {
                format!("must be {}", allowed[0])
            } else {
                let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
                format!("must be one of {}", list.join(", "))
            };
            push(out, pointer, detail);
        }
        match value {
            Value::String(s) => check_string(rules, s, pointer, out),
            Value::Number(n) => check_number(rules, n, pointer, out),
            Value::Array(items) => self.check_array(rules, items, pointer, depth, out),
            Value::Object(map) => self.check_object(rules, map, pointer, depth, out),
            Value::Null | Value::Bool(_) => {}
        }
        for sub in &rules.all_of {
            self.check(sub, value, pointer, depth + 1, out);
        }
        if !rules.any_of.is_empty() {
            match rules
                .any_of
                .iter()
                .position(|s| self.matches(s, value, depth + 1))
            {
                // Re-run the matching branch for its normalisation.
                Some(i) => self.check(&rules.any_of[i], value, pointer, depth + 1, out),
                None => push(
                    out,
                    pointer,
                    "does not match any of the allowed shapes".into(),
                ),
            }
        }
        if !rules.one_of.is_empty() {
            let matching: Vec<usize> = (0..rules.one_of.len())
                .filter(|&i| self.matches(&rules.one_of[i], value, depth + 1))
                .collect();
            match matching.as_slice() {
                [i] => self.check(&rules.one_of[*i], value, pointer, depth + 1, out),
                [] => push(
                    out,
                    pointer,
                    "does not match any of the allowed shapes".into(),
                ),
                _ => push(
                    out,
                    pointer,
                    "matches more than one of the allowed shapes".into(),
                ),
            }
        }
        if let Some(not) = &rules.not
            && self.matches(not, value, depth + 1)
        {
            push(out, pointer, "matches a shape that is not allowed".into());
        }
    }

    fn check_array(
        &self,
        rules: &Rules,
        items: &mut [Value],
        pointer: &mut String,
        depth: usize,
        out: &mut Vec<Violation>,
    ) {
        let n = items.len() as u64;
        if let Some(min) = rules.min_items
            && n < min
        {
            push(out, pointer, format!("must have at least {min} items"));
        }
        if let Some(max) = rules.max_items
            && n > max
        {
            push(out, pointer, format!("must have at most {max} items"));
            // Do not walk an oversized array item by item.
            return;
        }
        if rules.unique_items {
            for i in 1..items.len() {
                if items[..i]
                    .iter()
                    .any(|earlier| json_equal(earlier, &items[i]))
                {
                    push(out, pointer, "must not repeat an item".into());
                    break;
                }
            }
        }
        if let Some(item) = &rules.items {
            for (i, v) in items.iter_mut().enumerate() {
                let len = pointer.len();
                let _ = write!(pointer, "/{i}");
                self.check(item, v, pointer, depth + 1, out);
                pointer.truncate(len);
                if out.len() >= MAX_VIOLATIONS {
                    return;
                }
            }
        }
    }

    fn check_object(
        &self,
        rules: &Rules,
        map: &mut Map<String, Value>,
        pointer: &mut String,
        depth: usize,
        out: &mut Vec<Violation>,
    ) {
        let n = map.len() as u64;
        if let Some(min) = rules.min_properties
            && n < min
        {
            push(out, pointer, format!("must have at least {min} properties"));
        }
        if let Some(max) = rules.max_properties
            && n > max
        {
            push(out, pointer, format!("must have at most {max} properties"));
            return;
        }
        for name in &rules.required {
            if !map.contains_key(name) {
                let len = pointer.len();
                push_segment(pointer, name);
                push(out, pointer, "is required".into());
                pointer.truncate(len);
            }
        }
        for (key, v) in map.iter_mut() {
            if out.len() >= MAX_VIOLATIONS {
                return;
            }
            let len = pointer.len();
            push_segment(pointer, key);
            if let Some(names) = &rules.property_names {
                let mut k = Value::String(key.clone());
                let mut sub = Vec::new();
                self.check(names, &mut k, pointer, depth + 1, &mut sub);
                if !sub.is_empty() {
                    push(out, pointer, "is not an allowed property name".into());
                }
            }
            match rules.properties.iter().find(|(name, _)| name == key) {
                Some((_, schema)) => self.check(schema, v, pointer, depth + 1, out),
                None => match &rules.additional {
                    Some(Node::Never) => push(out, pointer, "is not a known field".into()),
                    Some(schema) => self.check(schema, v, pointer, depth + 1, out),
                    None => {}
                },
            }
            pointer.truncate(len);
        }
    }
}

fn check_string(rules: &Rules, s: &str, pointer: &str, out: &mut Vec<Violation>) {
    if rules.min_length.is_some() || rules.max_length.is_some() {
        let len = s.chars().count() as u64;
        if let Some(min) = rules.min_length
            && len < min
        {
            push(
                out,
                pointer,
                format!("must be at least {min} characters long"),
            );
        }
        if let Some(max) = rules.max_length
            && len > max
        {
            push(
                out,
                pointer,
                format!("must be at most {max} characters long"),
            );
        }
    }
    if let Some((re, source)) = &rules.pattern
        && !re.is_match(s)
    {
        push(out, pointer, format!("must match the pattern {source}"));
    }
}

fn check_number(rules: &Rules, n: &Number, pointer: &str, out: &mut Vec<Violation>) {
    let bound = |limit: f64, below: bool, inclusive: bool| -> bool {
        // Exact for integers that fit i64/u64; f64 otherwise.
        let ord = if let Some(i) = n.as_i64() {
            cmp_int_f64(i128::from(i), limit)
        } else if let Some(u) = n.as_u64() {
            cmp_int_f64(i128::from(u), limit)
        } else {
            n.as_f64()
                .and_then(|f| f.partial_cmp(&limit))
                .unwrap_or(std::cmp::Ordering::Equal)
        };
        use std::cmp::Ordering::*;
        matches!(
            (below, inclusive, ord),
            (true, true, Less | Equal)
                | (true, false, Less)
                | (false, true, Greater | Equal)
                | (false, false, Greater)
        )
    };
    if let Some(m) = rules.minimum
        && !bound(m, false, true)
    {
        push(out, pointer, format!("must be at least {}", show(m)));
    }
    if let Some(m) = rules.maximum
        && !bound(m, true, true)
    {
        push(out, pointer, format!("must be at most {}", show(m)));
    }
    if let Some(m) = rules.exclusive_minimum
        && !bound(m, false, false)
    {
        push(out, pointer, format!("must be greater than {}", show(m)));
    }
    if let Some(m) = rules.exclusive_maximum
        && !bound(m, true, false)
    {
        push(out, pointer, format!("must be less than {}", show(m)));
    }
    if let Some(m) = rules.multiple_of {
        let ok = match (n.as_i64(), m.fract() == 0.0) {
            (Some(i), true) => (i128::from(i) % (m as i128)) == 0,
            _ => n.as_f64().is_some_and(|f| {
                let q = f / m;
                q.is_finite() && (q - q.round()).abs() < 1e-9
            }),
        };
        if !ok {
            push(out, pointer, format!("must be a multiple of {}", show(m)));
        }
    }
}

fn cmp_int_f64(i: i128, limit: f64) -> std::cmp::Ordering {
    if limit.fract() == 0.0 && limit.abs() < 1.7e38 {
        i.cmp(&(limit as i128))
    } else {
        (i as f64)
            .partial_cmp(&limit)
            .unwrap_or(std::cmp::Ordering::Equal)
    }
}

fn show(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

fn type_matches(types: Types, value: &Value) -> bool {
    let bits = types.0;
    match value {
        Value::Null => bits & Types::NULL != 0,
        Value::Bool(_) => bits & Types::BOOLEAN != 0,
        Value::Object(_) => bits & Types::OBJECT != 0,
        Value::Array(_) => bits & Types::ARRAY != 0,
        Value::String(_) => bits & Types::STRING != 0,
        Value::Number(n) => {
            bits & Types::NUMBER != 0 || (bits & Types::INTEGER != 0 && is_integral(n))
        }
    }
}

fn is_integral(n: &Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

/// `1.0` → `1` (within i64/u64), so serde's integer types accept what the
/// schema accepted.
fn normalise_integer(value: &mut Value) {
    if let Value::Number(n) = value
        && !n.is_i64()
        && !n.is_u64()
        && let Some(f) = n.as_f64()
        && f.fract() == 0.0
    {
        if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
            *value = Value::Number(Number::from(f as u64));
        } else if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
            *value = Value::Number(Number::from(f as i64));
        }
    }
}

/// JSON equality, with numbers compared by value (`1` equals `1.0`).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn push_segment(pointer: &mut String, key: &str) {
    pointer.push('/');
    for c in key.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

fn push(out: &mut Vec<Violation>, pointer: &str, detail: String) {
    if out.len() >= MAX_VIOLATIONS {
        return;
    }
    let pointer = if pointer.len() > MAX_POINTER {
        let mut end = MAX_POINTER;
        while !pointer.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &pointer[..end])
    } else {
        pointer.to_owned()
    };
    out.push(Violation { pointer, detail });
}
