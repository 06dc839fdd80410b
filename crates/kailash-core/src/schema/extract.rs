//! The axum extractors that enforce the published schemas.

// A rejection is a `Problem`, as everywhere in kailash; it is built once
// per refused request, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::any::type_name;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use http::request::Parts;
use http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};

use super::validator::Types;
use super::{Location, Validator, body_validator, invalid, params_validator};
use crate::json_limits::JsonLimits;
use crate::problem::Problem;

/// A JSON body that matched `T`'s published schema, deserialised.
///
/// | refusal | status |
/// |---|---|
/// | `Content-Type` is not `application/json` (or `application/*+json`) | 415 |
/// | the body is larger than the route's limit | 413 |
/// | the body is not JSON | 400 |
/// | the JSON is over a [`JsonLimits`] (the request's extension, or the defaults): too deep, a string, array, object or number too large | 422, with the pointer of the value |
/// | the JSON does not match the schema | 422, with a pointer per violation |
///
/// Every refusal is problem+json, and none quotes the body.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidJson<T>(pub T);

/// The query parameters, checked against `T`'s published parameter schemas
/// (its [`IntoParams`]) and deserialised. Values are read as the type their
/// schema names (`integer`, `number`, `boolean`, `array` of those, or
/// `string`); a violation is a 422 with a pointer per parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidQuery<T>(pub T);

/// The path parameters, checked like [`ValidQuery`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidPath<T>(pub T);

fn schema_bug<T>(error: &dyn std::fmt::Display) -> Problem {
    // The schema accepted what serde refused (or did not compile): a bug
    // in the type's schema attributes, never the client's fault, but it
    // must not pass unvalidated either.
    tracing::error!(
        r#type = type_name::<T>(),
        %error,
        "a request type's schema and its deserialisation disagree"
    );
    Problem::internal()
}

fn is_json(parts: &http::HeaderMap) -> bool {
    let Some(ct) = parts
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json")
            || sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// Validates `value` against `validator` and deserialises it as `T`.
fn finish<T: DeserializeOwned>(
    validator: &Validator,
    mut value: Value,
    location: Location,
) -> Result<T, Problem> {
    if let Err(violations) = validator.validate(&mut value) {
        return Err(invalid(location, &violations));
    }
    serde_json::from_value(value).map_err(|e| schema_bug::<T>(&e))
}

impl<S, T> FromRequest<S> for ValidJson<T>
where
    S: Send + Sync,
    T: ToSchema + DeserializeOwned + 'static,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported Media Type",
            )
            .with_detail("the body must be application/json"));
        }
        let limits = req
            .extensions()
            .get::<JsonLimits>()
            .copied()
            .unwrap_or_default();
        let bytes =
            Bytes::from_request(req, state)
                .await
                .map_err(|rejection: BytesRejection| {
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        Problem::from_status(StatusCode::PAYLOAD_TOO_LARGE)
                            .with_detail("the body is larger than this route accepts")
                    } else {
                        Problem::bad_request("the body could not be read")
                    }
                })?;
        // The shape's limits before the parser builds anything.
        limits.check(&bytes).map_err(|e| {
            invalid(
                Location::Body,
                &[super::Violation {
                    detail: e.detail(),
                    pointer: e.pointer,
                }],
            )
        })?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Problem::bad_request(format!(
                "the body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let validator = body_validator::<T>().map_err(|e| schema_bug::<T>(&e))?;
        finish(&validator, value, Location::Body).map(ValidJson)
    }
}

/// Parses `raw` as the type `types` names (bits of `Types`), for
/// parameters that arrive as text; a value that does not parse stays text,
/// for the validator to refuse with its type.
fn typed(raw: &str, types: u8) -> Value {
    if types & Types::STRING != 0 {
        return Value::String(raw.to_owned());
    }
    if types & Types::INTEGER != 0 {
        if let Ok(i) = raw.parse::<i64>() {
            return Value::from(i);
        }
        if let Ok(u) = raw.parse::<u64>() {
            return Value::from(u);
        }
    }
    if types & Types::NUMBER != 0
        && let Some(n) = raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
    {
        return Value::Number(n);
    }
    if types & Types::BOOLEAN != 0 {
        match raw {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
    }
    Value::String(raw.to_owned())
}

/// The parameters as a JSON object shaped by their compiled schemas.
fn params_object<'a>(
    validator: &Validator,
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<Value, Problem> {
    let mut object = Map::new();
    for (name, raw) in pairs {
        let Some(shape) = validator.param_shape(name) else {
            continue; // not ours: ignored, as documented
        };
        if shape.is_array() {
            let item = typed(raw, shape.item_types);
            if let Value::Array(a) = object
                .entry(name.to_owned())
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                a.push(item);
            }
        } else if object
            .insert(name.to_owned(), typed(raw, shape.types))
            .is_some()
        {
            return Err(Problem::bad_request("a parameter is given more than once"));
        }
    }
    Ok(Value::Object(object))
}

/// Checks `pairs` against `T`'s parameter schemas, compiled once per
/// extractor type `K` (`params` runs only then).
fn check_params<'a, K: 'static, T: DeserializeOwned>(
    params: impl FnOnce() -> Vec<Parameter>,
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
    location: Location,
) -> Result<T, Problem> {
    let validator = params_validator::<K>(params).map_err(|e| schema_bug::<T>(&e))?;
    let value = params_object(&validator, pairs)?;
    finish(&validator, value, location)
}

impl<S, T> FromRequestParts<S> for ValidQuery<T>
where
    S: Send + Sync,
    T: IntoParams + DeserializeOwned + 'static,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<_> = form_urlencoded::parse(query.as_bytes()).collect();
        check_params::<ValidQuery<T>, T>(
            || T::into_params(|| Some(ParameterIn::Query)),
            pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())),
            Location::Query,
        )
        .map(ValidQuery)
    }
}

impl<S, T> FromRequestParts<S> for ValidPath<T>
where
    S: Send + Sync,
    T: IntoParams + DeserializeOwned + 'static,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| Problem::bad_request("a path parameter is not UTF-8 text"))?;
        check_params::<ValidPath<T>, T>(
            || T::into_params(|| Some(ParameterIn::Path)),
            raw.iter(),
            Location::Path,
        )
        .map(ValidPath)
    }
}
