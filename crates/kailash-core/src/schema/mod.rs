//! One schema, published and enforced (feature `openapi`).
//!
//! The request types of every kailash route derive [`utoipa::ToSchema`]
//! (bodies) or [`utoipa::IntoParams`] (query and path parameters). That
//! derived schema is what `/openapi.json` publishes, and it is also what the
//! extractors here enforce, through a [`Validator`] compiled from it once per
//! type: a request the published schema allows is never refused for its
//! shape, and one it forbids always is — with `422` and a JSON pointer to
//! every offending field:
//!
//! ```json
//! {"type":"urn:kailash:problem:invalid-request","title":"Unprocessable Content","status":422,
//!  "detail":"the request does not match the schema of this operation",
//!  "errors":[{"in":"body","pointer":"/nodes/0/id","detail":"must be at least 1 characters long"}]}
//! ```
//!
//! The validator refuses to compile a schema that uses an assertion keyword
//! it does not enforce, so a constraint can never be published and silently
//! ignored. Messages never quote the offending value (it may be a password).
//!
//! With the `axum` feature too, the extractors are [`ValidJson`],
//! [`ValidQuery`] and [`ValidPath`]:
//!
//! ```
//! use axum::{Router, routing::post};
//! use kailash_core::schema::ValidJson;
//! use serde::Deserialize;
//! use utoipa::ToSchema;
//!
//! #[derive(Deserialize, ToSchema)]
//! #[serde(deny_unknown_fields)]
//! struct NewNote {
//!     #[schema(min_length = 1, max_length = 200)]
//!     title: String,
//!     #[schema(max_items = 8)]
//!     tags: Vec<String>,
//! }
//!
//! async fn create(ValidJson(note): ValidJson<NewNote>) -> String {
//!     format!("{} ({} tags)", note.title, note.tags.len())
//! }
//!
//! let app: Router = Router::new().route("/notes", post(create));
//! ```

mod validator;

#[cfg(feature = "axum")]
mod extract;

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use http::StatusCode;
use serde_json::{Map, Value};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{RefOr, path::Parameter};
use utoipa::{PartialSchema, ToSchema};

#[cfg(feature = "axum")]
pub use extract::{ValidJson, ValidPath, ValidQuery};
pub use validator::{MAX_VIOLATIONS, SchemaError, Validator, Violation};

use crate::problem::Problem;

/// The problem type slug of a request that does not match its schema.
pub const INVALID_REQUEST: &str = "invalid-request";

/// Which part of the request a violation is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// The JSON body.
    Body,
    /// The query string.
    Query,
    /// The path parameters.
    Path,
}

impl Location {
    fn as_str(self) -> &'static str {
        match self {
            Self::Body => "body",
            Self::Query => "query",
            Self::Path => "path",
        }
    }
}

/// The `422` problem for `violations` in `location`: `errors` lists each
/// one as `{in, pointer, detail}`.
pub fn invalid(location: Location, violations: &[Violation]) -> Problem {
    let errors: Vec<Value> = violations
        .iter()
        .map(|v| {
            serde_json::json!({ "in": location.as_str(), "pointer": v.pointer, "detail": v.detail })
        })
        .collect();
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        INVALID_REQUEST,
        "Unprocessable Content",
    )
    .with_detail("the request does not match the schema of this operation")
    .with_extension("errors", Value::Array(errors))
}

/// The JSON of a utoipa schema (they always serialise).
fn to_value<T: serde::Serialize>(s: &T) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

/// The component schemas `T` references, as the `components.schemas` map.
fn components_of<T: ToSchema>() -> Map<String, Value> {
    let mut list = Vec::new();
    T::schemas(&mut list);
    list.into_iter().map(|(k, v)| (k, to_value(&v))).collect()
}

type Cache = RwLock<HashMap<TypeId, Arc<Validator>>>;

fn cached(
    id: TypeId,
    build: impl FnOnce() -> Result<Validator, SchemaError>,
) -> Result<Arc<Validator>, SchemaError> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Cache::default);
    if let Some(v) = cache.read().ok().and_then(|m| m.get(&id).cloned()) {
        return Ok(v);
    }
    let v = Arc::new(build()?);
    if let Ok(mut m) = cache.write() {
        m.entry(id).or_insert_with(|| v.clone());
    }
    Ok(v)
}

/// The validator of `T`'s published body schema, compiled once per type.
///
/// # Errors
///
/// [`SchemaError`] when the schema uses a keyword the validator does not
/// enforce. A test of every route's types (see the crates' tests) keeps
/// this from reaching a request.
pub fn body_validator<T: ToSchema + 'static>() -> Result<Arc<Validator>, SchemaError> {
    cached(TypeId::of::<T>(), || {
        Validator::compile(&to_value(&T::schema()), &components_of::<T>())
    })
}

/// The object schema that a list of parameters stands for: each parameter
/// a property, the required ones required. Other parameters are ignored,
/// as HTTP intermediaries add some.
pub fn parameters_schema(params: &[Parameter]) -> RefOr<Schema> {
    let mut object = ObjectBuilder::new().schema_type(Type::Object);
    for p in params {
        let schema = p
            .schema
            .clone()
            .unwrap_or_else(|| ObjectBuilder::new().into());
        object = object.property(p.name.clone(), schema);
        if matches!(p.required, utoipa::openapi::Required::True) {
            object = object.required(p.name.clone());
        }
    }
    object.into()
}

/// The validator of a parameter list, compiled once per type `K`.
///
/// # Errors
///
/// As [`body_validator`].
pub fn params_validator<K: 'static>(
    params: impl FnOnce() -> Vec<Parameter>,
) -> Result<Arc<Validator>, SchemaError> {
    cached(TypeId::of::<K>(), || {
        Validator::compile(&to_value(&parameters_schema(&params())), &Map::new())
    })
}

/// Checks that every request body and parameter schema of an OpenAPI
/// document is one the [`Validator`] enforces exactly. A gateway's test
/// calls this on its merged document.
///
/// # Errors
///
/// The first schema that cannot be enforced, named by operation.
pub fn check_document(doc: &utoipa::openapi::OpenApi) -> Result<(), SchemaError> {
    check_document_json(&to_value(doc))
}

/// [`check_document`] on a document's JSON (as `GET /openapi.json` serves
/// it).
///
/// # Errors
///
/// As [`check_document`].
pub fn check_document_json(doc: &Value) -> Result<(), SchemaError> {
    let components = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let paths = doc.get("paths").and_then(Value::as_object);
    for (path, item) in paths.into_iter().flatten() {
        let Some(item) = item.as_object() else {
            continue;
        };
        for (method, op) in item {
            let at = |what: &str, e: SchemaError| SchemaError {
                at: format!("{} {path} {what} {}", method.to_uppercase(), e.at),
                reason: e.reason,
            };
            let bodies = op
                .pointer("/requestBody/content")
                .and_then(Value::as_object);
            for (media, content) in bodies.into_iter().flatten() {
                if let Some(schema) = content.get("schema") {
                    Validator::compile(schema, &components)
                        .map_err(|e| at(&format!("body ({media})"), e))?;
                }
            }
            let params = op.get("parameters").and_then(Value::as_array);
            for p in params.into_iter().flatten() {
                if let Some(schema) = p.get("schema") {
                    let name = p.get("name").and_then(Value::as_str).unwrap_or("?");
                    Validator::compile(schema, &components)
                        .map_err(|e| at(&format!("parameter {name}"), e))?;
                }
            }
        }
    }
    Ok(())
}

impl PartialSchema for Problem {
    fn schema() -> RefOr<Schema> {
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let error = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("One way the request does not match its schema"))
            .property("in", string().enum_values(Some(["body", "query", "path"])))
            .property(
                "pointer",
                string().description(Some("RFC 6901 JSON pointer to the offending value")),
            )
            .property("detail", string())
            .required("in")
            .required("pointer")
            .required("detail");
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("RFC 9457 problem details"))
            .property(
                "type",
                string().description(Some("urn:kailash:problem:<slug>")),
            )
            .property("title", string())
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(400))
                    .maximum(Some(599)),
            )
            .property("detail", string())
            .property(
                "retry_after",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .description(Some("Seconds to wait before retrying (also `Retry-After`)")),
            )
            .property(
                "errors",
                ArrayBuilder::new()
                    .items(error)
                    .description(Some("422: every schema violation found (at most 16)")),
            )
            .required("type")
            .required("title")
            .required("status")
            .into()
    }
}

impl ToSchema for Problem {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Problem")
    }
}

/// A tenant id: what [`TenantId::new`](crate::TenantId::new) accepts.
impl PartialSchema for crate::TenantId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(crate::tenant::MAX_TENANT_ID_LEN))
            .pattern(Some("^[a-z0-9][a-z0-9_-]*$"))
            .description(Some("A tenant id: lowercase ASCII letters, digits, `-` and `_`, not starting with `-` or `_`"))
            .into()
    }
}

impl ToSchema for crate::TenantId {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("TenantId")
    }
}

#[cfg(test)]
mod tests;
