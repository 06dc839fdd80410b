//! The `http_request` node type.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::Deserialize;
use serde_json::Value;

use super::integrations::{Integration, Integrations, LlmKind};
use super::net::{self, Cap, check_path, encode_query_part};
use crate::node::{ConfigError, Node, NodeContext, NodeError, NodeType, Ports, Values};

/// The type name of the HTTP request node.
pub const HTTP_REQUEST: &str = "http_request";
/// The methods a node may use.
pub const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
/// The most headers a node's config may set.
pub const MAX_HEADERS: usize = 32;
/// The longest header value a config may set, in bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 4096;
/// The largest request body (serialized JSON), in bytes.
pub const MAX_REQUEST_BODY_BYTES: usize = 1 << 20;
/// The longest query string built from the `query` input, in bytes.
pub const MAX_QUERY_BYTES: usize = 8192;
/// The most response headers given on the `headers` output.
pub const MAX_OUTPUT_HEADERS: usize = 64;
/// The longest response header value given on the `headers` output
/// (longer values are left out).
pub const MAX_OUTPUT_HEADER_BYTES: usize = 4096;

/// Headers a config may not set: the connection's own (`Host`, the
/// hop-by-hop ones, the framing), the credentials the integration sends
/// (`Authorization`, `x-api-key`, `Proxy-Authorization`), and
/// `Accept-Encoding` (the response cap counts bytes as received and the
/// body is not decompressed).
pub const FORBIDDEN_HEADERS: [&str; 16] = [
    "host",
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "content-type",
    "expect",
    "accept-encoding",
    "user-agent",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    integration: String,
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
}

/// The `http_request` node type, over the integrations it was made with.
#[derive(Debug, Clone)]
pub struct HttpRequestType {
    integrations: Integrations,
}

impl HttpRequestType {
    /// The type, reaching only `integrations`.
    pub fn new(integrations: Integrations) -> Self {
        Self { integrations }
    }
}

impl NodeType for HttpRequestType {
    fn build(&self, config: &Value) -> Result<Arc<dyn Node>, ConfigError> {
        let c = Config::deserialize(config)
            .map_err(|e| ConfigError::new(format!("http_request config: {e}")))?;
        let integration = self
            .integrations
            .get(&c.integration)
            .ok_or_else(|| {
                ConfigError::new(format!("unknown integration {:?}", cut(&c.integration)))
            })?
            .clone();
        let method = if METHODS.contains(&c.method.as_str()) {
            Method::from_bytes(c.method.as_bytes())
                .map_err(|_| ConfigError::new("invalid method"))?
        } else {
            return Err(ConfigError::new(format!(
                "method {:?} is not one of {}",
                cut(&c.method),
                METHODS.join(", ")
            )));
        };
        check_path(&c.path).map_err(|e| ConfigError::new(format!("path {e}")))?;
        if c.headers.len() > MAX_HEADERS {
            return Err(ConfigError::new(format!(
                "at most {MAX_HEADERS} headers may be set"
            )));
        }
        let mut headers = Vec::with_capacity(c.headers.len());
        for (name, value) in &c.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ConfigError::new(format!("invalid header name {:?}", cut(name))))?;
            if FORBIDDEN_HEADERS.contains(&header.as_str()) {
                return Err(ConfigError::new(format!(
                    "header {:?} may not be set",
                    header.as_str()
                )));
            }
            if value.len() > MAX_HEADER_VALUE_BYTES {
                return Err(ConfigError::new(format!(
                    "header {:?} is longer than {MAX_HEADER_VALUE_BYTES} bytes",
                    header.as_str()
                )));
            }
            let value = HeaderValue::from_str(value).map_err(|_| {
                ConfigError::new(format!(
                    "header {:?} has a value with characters not allowed in a header",
                    header.as_str()
                ))
            })?;
            headers.push((header, value));
        }
        let body = match &c.body {
            None => None,
            Some(v) => Some(encode_body(v).map_err(ConfigError::new)?),
        };
        Ok(Arc::new(HttpRequest {
            integration,
            method,
            path: c.path,
            headers,
            body,
        }))
    }
}

fn cut(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn encode_body(v: &Value) -> Result<Bytes, String> {
    let bytes = serde_json::to_vec(v).map_err(|e| format!("body: {e}"))?;
    if bytes.len() > MAX_REQUEST_BODY_BYTES {
        return Err(format!(
            "the request body is {} bytes; at most {MAX_REQUEST_BODY_BYTES} are allowed",
            bytes.len()
        ));
    }
    Ok(Bytes::from(bytes))
}

/// A configured `http_request` node.
#[derive(Debug)]
pub struct HttpRequest {
    integration: Arc<Integration>,
    method: Method,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<Bytes>,
}

/// The header carrying `integration`'s key: `x-api-key` for an Anthropic
/// integration, `Authorization: Bearer` otherwise.
pub(crate) fn auth_header(integration: &Integration) -> Option<(HeaderName, HeaderValue)> {
    let key = integration.key()?;
    match integration.kind() {
        Some(LlmKind::Anthropic) => Some((HeaderName::from_static("x-api-key"), key.header("")?)),
        _ => Some((AUTHORIZATION, key.header("Bearer ")?)),
    }
}

/// Refuses a run in a tenant that does not allow `integration`.
pub(crate) fn tenant_allows(
    ctx: &NodeContext<'_>,
    integration: &Integration,
) -> Result<(), NodeError> {
    if let Some(var) = integration.missing_key() {
        return Err(NodeError::new(format!(
            "integration {:?} has no API key: the environment variable {var} was unset when the gateway started",
            integration.name()
        )));
    }
    if ctx.run.tenant.config.allows_integration(integration.name()) {
        Ok(())
    } else {
        Err(NodeError::new(format!(
            "tenant {:?} may not use integration {:?}",
            ctx.run.tenant.id.as_str(),
            integration.name()
        )))
    }
}

fn query_string(query: &Value) -> Result<String, NodeError> {
    let Value::Object(pairs) = query else {
        return Err(NodeError::new("input `query` must be an object"));
    };
    let mut out = String::new();
    let mut add = |key: &str, value: &Value| -> Result<(), NodeError> {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(NodeError::new(format!(
                    "input `query`: {:?} must be a string, number, boolean or an array of those",
                    cut(key)
                )));
            }
        };
        if !out.is_empty() {
            out.push('&');
        }
        encode_query_part(key, &mut out);
        out.push('=');
        encode_query_part(&text, &mut out);
        if out.len() > MAX_QUERY_BYTES {
            return Err(NodeError::new(format!(
                "the query string is longer than {MAX_QUERY_BYTES} bytes"
            )));
        }
        Ok(())
    };
    for (key, value) in pairs {
        match value {
            Value::Array(items) => {
                for item in items {
                    add(key, item)?;
                }
            }
            other => add(key, other)?,
        }
    }
    Ok(out)
}

/// The bounded `headers` output: lowercase names, repeated headers joined
/// with `, `, values that are not visible ASCII or longer than
/// [`MAX_OUTPUT_HEADER_BYTES`] left out, at most [`MAX_OUTPUT_HEADERS`].
fn output_headers(headers: &HeaderMap) -> Value {
    let mut out = serde_json::Map::new();
    for name in headers.keys() {
        if out.len() >= MAX_OUTPUT_HEADERS {
            break;
        }
        let mut joined = String::new();
        for value in headers.get_all(name) {
            let Ok(v) = value.to_str() else { continue };
            if !joined.is_empty() {
                joined.push_str(", ");
            }
            joined.push_str(v);
        }
        if joined.len() <= MAX_OUTPUT_HEADER_BYTES {
            out.insert(name.as_str().to_owned(), Value::String(joined));
        }
    }
    Value::Object(out)
}

/// Whether a content type is JSON (`application/json`, `…+json`).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|t| {
            t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
        })
}

#[async_trait]
impl Node for HttpRequest {
    fn ports(&self) -> Ports {
        Ports::named(&["body", "query"], &["status", "headers", "body"])
    }

    async fn run(&self, ctx: &NodeContext<'_>, input: Values) -> Result<Values, NodeError> {
        tenant_allows(ctx, &self.integration)?;
        let body = match input.get("body") {
            Some(v) => Some(encode_body(v).map_err(NodeError::new)?),
            None => self.body.clone(),
        };
        let mut path_and_query = self.path.clone();
        if let Some(query) = input.get("query") {
            let q = query_string(query)?;
            if !q.is_empty() {
                path_and_query.push('?');
                path_and_query.push_str(&q);
            }
        }
        let mut headers = self.headers.clone();
        if let Some(auth) = auth_header(&self.integration) {
            headers.push(auth);
        }
        let request = net::Request {
            method: self.method.clone(),
            path_and_query,
            headers,
            body: body.map(|b| (b, HeaderValue::from_static("application/json"))),
        };
        let cap = Cap::of(&self.integration, ctx.budget_remaining);
        let response = net::send(&self.integration, request, cap).await?;
        let body = if self.method == Method::HEAD {
            Value::Null
        } else if is_json(&response.headers) && !response.body.is_empty() {
            // Not JSON after all: given as text.
            serde_json::from_slice(&response.body).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&response.body).into_owned())
            })
        } else {
            Value::String(String::from_utf8_lossy(&response.body).into_owned())
        };
        Ok(Values::from_iter([
            ("status".to_owned(), Value::from(response.status.as_u16())),
            ("headers".to_owned(), output_headers(&response.headers)),
            ("body".to_owned(), body),
        ]))
    }
}
