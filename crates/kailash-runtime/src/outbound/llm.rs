//! The `llm` node type.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::ACCEPT;
use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http_request::{auth_header, tenant_allows};
use super::integrations::{Integration, Integrations, LlmKind};
use super::net::{self, Cap};
use crate::node::{ConfigError, Node, NodeContext, NodeError, NodeType, Ports, Values};

/// The type name of the LLM node.
pub const LLM: &str = "llm";
/// The tenant feature the `llm` node type needs.
pub const AI_ENABLED: &str = "ai_enabled";
/// The `anthropic-version` header sent to Anthropic integrations.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// `max_tokens` when the config sets none (Anthropic requires one; it is
/// sent to OpenAI-compatible integrations only when configured).
pub const DEFAULT_MAX_TOKENS: u32 = 1024;
/// The largest `max_tokens` a config may set.
pub const MAX_MAX_TOKENS: u32 = 1_000_000;
/// The most messages one run may send.
pub const MAX_MESSAGES: usize = 1000;
/// The largest request body (prompt, messages and system prompt as JSON), in bytes.
pub const MAX_PROMPT_BYTES: usize = 1 << 20;
/// The longest model name, in bytes.
pub const MAX_MODEL_BYTES: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    integration: String,
    model: String,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f64>,
}

/// The `llm` node type, over the integrations it was made with (each
/// node's integration must have a `kind`).
#[derive(Debug, Clone)]
pub struct LlmType {
    integrations: Integrations,
}

impl LlmType {
    /// The type, reaching only `integrations`.
    pub fn new(integrations: Integrations) -> Self {
        Self { integrations }
    }
}

fn cut(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl NodeType for LlmType {
    fn build(&self, config: &Value) -> Result<Arc<dyn Node>, ConfigError> {
        let c = Config::deserialize(config)
            .map_err(|e| ConfigError::new(format!("llm config: {e}")))?;
        let integration = self
            .integrations
            .get(&c.integration)
            .ok_or_else(|| {
                ConfigError::new(format!("unknown integration {:?}", cut(&c.integration)))
            })?
            .clone();
        let kind = integration.kind().ok_or_else(|| {
            ConfigError::new(format!(
                "integration {:?} has no `kind` (openai or anthropic)",
                integration.name()
            ))
        })?;
        if c.model.is_empty()
            || c.model.len() > MAX_MODEL_BYTES
            || c.model.chars().any(char::is_control)
        {
            return Err(ConfigError::new(format!(
                "`model` must be 1-{MAX_MODEL_BYTES} bytes without control characters"
            )));
        }
        if let Some(system) = &c.system
            && system.len() > MAX_PROMPT_BYTES
        {
            return Err(ConfigError::new(format!(
                "`system` is longer than {MAX_PROMPT_BYTES} bytes"
            )));
        }
        if let Some(n) = c.max_tokens
            && !(1..=MAX_MAX_TOKENS).contains(&n)
        {
            return Err(ConfigError::new(format!(
                "`max_tokens` must be 1-{MAX_MAX_TOKENS}"
            )));
        }
        let max_temperature = match kind {
            LlmKind::Anthropic => 1.0,
            _ => 2.0,
        };
        if let Some(t) = c.temperature
            && !(0.0..=max_temperature).contains(&t)
        {
            return Err(ConfigError::new(format!(
                "`temperature` must be 0-{max_temperature} for a {} integration",
                kind.as_str()
            )));
        }
        Ok(Arc::new(Llm {
            integration,
            kind,
            model: c.model,
            system: c.system,
            max_tokens: c.max_tokens,
            temperature: c.temperature,
        }))
    }
}

/// A configured `llm` node.
#[derive(Debug)]
pub struct Llm {
    integration: Arc<Integration>,
    kind: LlmKind,
    model: String,
    system: Option<String>,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
}

/// The conversation from the input: `prompt` (one user message) or
/// `messages` (`[{role: user|assistant, content: string}]`).
fn conversation(input: &Values) -> Result<Vec<Value>, NodeError> {
    match (input.get("prompt"), input.get("messages")) {
        (Some(_), Some(_)) => Err(NodeError::new(
            "give either input `prompt` or input `messages`, not both",
        )),
        (Some(Value::String(p)), None) => Ok(vec![json!({"role": "user", "content": p})]),
        (Some(_), None) => Err(NodeError::new("input `prompt` must be a string")),
        (None, Some(Value::Array(messages))) => {
            if messages.is_empty() || messages.len() > MAX_MESSAGES {
                return Err(NodeError::new(format!(
                    "input `messages` must hold 1-{MAX_MESSAGES} messages"
                )));
            }
            messages
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let role = m.get("role").and_then(Value::as_str);
                    let content = m.get("content").and_then(Value::as_str);
                    match (role, content) {
                        (Some(role @ ("user" | "assistant")), Some(content))
                            if m.as_object().is_some_and(|o| o.len() == 2) =>
                        {
                            Ok(json!({"role": role, "content": content}))
                        }
                        _ => Err(NodeError::new(format!(
                            "input `messages`[{i}] must be {{\"role\": \"user\" or \"assistant\", \"content\": <string>}}"
                        ))),
                    }
                })
                .collect()
        }
        (None, Some(_)) => Err(NodeError::new("input `messages` must be an array")),
        (None, None) => Err(NodeError::new("input `prompt` or `messages` is required")),
    }
}

fn usage_number(v: Option<&Value>) -> Value {
    v.and_then(Value::as_u64).map_or(Value::Null, Value::from)
}

impl Llm {
    fn request_body(&self, messages: Vec<Value>) -> Value {
        match self.kind {
            LlmKind::Anthropic => {
                let mut body = json!({
                    "model": self.model,
                    "max_tokens": self.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
                    "messages": messages,
                });
                if let Some(system) = &self.system {
                    body["system"] = Value::String(system.clone());
                }
                if let Some(t) = self.temperature {
                    body["temperature"] = json!(t);
                }
                body
            }
            _ => {
                let mut all = Vec::with_capacity(messages.len() + 1);
                if let Some(system) = &self.system {
                    all.push(json!({"role": "system", "content": system}));
                }
                all.extend(messages);
                let mut body = json!({"model": self.model, "messages": all});
                if let Some(n) = self.max_tokens {
                    body["max_tokens"] = json!(n);
                }
                if let Some(t) = self.temperature {
                    body["temperature"] = json!(t);
                }
                body
            }
        }
    }

    /// The outputs from a 2xx answer.
    fn outputs(&self, answer: &Value) -> Result<Values, NodeError> {
        let bad = |what: &str| {
            NodeError::new(format!(
                "integration {:?} answered without {what}",
                self.integration.name()
            ))
        };
        let (text, finish, input_tokens, output_tokens) = match self.kind {
            LlmKind::Anthropic => {
                let blocks = answer
                    .get("content")
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("`content`"))?;
                let text: String = blocks
                    .iter()
                    .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect();
                let usage = answer.get("usage");
                (
                    text,
                    answer.get("stop_reason").cloned().unwrap_or(Value::Null),
                    usage_number(usage.and_then(|u| u.get("input_tokens"))),
                    usage_number(usage.and_then(|u| u.get("output_tokens"))),
                )
            }
            _ => {
                let choice = answer
                    .get("choices")
                    .and_then(Value::as_array)
                    .and_then(|c| c.first())
                    .ok_or_else(|| bad("`choices`"))?;
                let text = choice
                    .get("message")
                    .and_then(|m| m.get("content"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let usage = answer.get("usage");
                (
                    text,
                    choice.get("finish_reason").cloned().unwrap_or(Value::Null),
                    usage_number(usage.and_then(|u| u.get("prompt_tokens"))),
                    usage_number(usage.and_then(|u| u.get("completion_tokens"))),
                )
            }
        };
        let finish = match finish {
            Value::String(s) => Value::String(cut(&s).to_owned()),
            _ => Value::Null,
        };
        let model = match answer.get("model").and_then(Value::as_str) {
            Some(m) if m.len() <= MAX_MODEL_BYTES => m.to_owned(),
            _ => self.model.clone(),
        };
        Ok(Values::from_iter([
            ("text".to_owned(), Value::String(text)),
            ("model".to_owned(), Value::String(model)),
            (
                "usage".to_owned(),
                json!({"input_tokens": input_tokens, "output_tokens": output_tokens}),
            ),
            ("finish_reason".to_owned(), finish),
        ]))
    }

    /// A node error for a non-2xx answer: the status and the provider's
    /// error `type`/`code` when they are short identifiers. The provider's
    /// message is left out: some echo part of the key.
    fn provider_error(&self, status: u16, body: &[u8]) -> NodeError {
        let answer: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let error = answer.get("error").unwrap_or(&Value::Null);
        let ident = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .filter(|s| {
                    !s.is_empty()
                        && s.len() <= 64
                        && s.bytes().all(|b| {
                            b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
                        })
                        && !self.integration.key().is_some_and(|k| k.appears_in(s))
                })
                .map(str::to_owned)
        };
        let mut reason = format!(
            "integration {:?} answered status {status}",
            self.integration.name()
        );
        if let Some(t) = ident(error.get("type")) {
            reason.push_str(&format!(", error type {t:?}"));
        }
        if let Some(c) = ident(error.get("code")) {
            reason.push_str(&format!(", error code {c:?}"));
        }
        NodeError::new(reason)
    }
}

#[async_trait]
impl Node for Llm {
    fn ports(&self) -> Ports {
        Ports::named(
            &["prompt", "messages"],
            &["text", "model", "usage", "finish_reason"],
        )
    }

    async fn run(&self, ctx: &NodeContext<'_>, input: Values) -> Result<Values, NodeError> {
        tenant_allows(ctx, &self.integration)?;
        let messages = conversation(&input)?;
        let body = serde_json::to_vec(&self.request_body(messages))
            .map_err(|e| NodeError::new(format!("cannot encode the request: {e}")))?;
        if body.len() > MAX_PROMPT_BYTES {
            return Err(NodeError::new(format!(
                "the request is {} bytes; at most {MAX_PROMPT_BYTES} are allowed",
                body.len()
            )));
        }
        let mut headers = vec![(ACCEPT, HeaderValue::from_static("application/json"))];
        if let Some(auth) = auth_header(&self.integration) {
            headers.push(auth);
        }
        let path = match self.kind {
            LlmKind::Anthropic => {
                headers.push((
                    HeaderName::from_static("anthropic-version"),
                    HeaderValue::from_static(ANTHROPIC_VERSION),
                ));
                "/v1/messages"
            }
            _ => "/chat/completions",
        };
        let request = net::Request {
            method: Method::POST,
            path_and_query: path.to_owned(),
            headers,
            body: Some((
                Bytes::from(body),
                HeaderValue::from_static("application/json"),
            )),
        };
        let cap = Cap::of(&self.integration, ctx.budget_remaining);
        let response = net::send(&self.integration, request, cap).await?;
        if !response.status.is_success() {
            return Err(self.provider_error(response.status.as_u16(), &response.body));
        }
        let answer: Value = serde_json::from_slice(&response.body).map_err(|_| {
            NodeError::new(format!(
                "integration {:?} answered with a body that is not JSON",
                self.integration.name()
            ))
        })?;
        self.outputs(&answer)
    }
}
