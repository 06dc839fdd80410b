//! The outbound node types `http_request` and `llm` (feature `outbound`),
//! and the [`Integrations`] they may reach.
//!
//! A gateway's `[[integrations]]` ([`IntegrationSpec`]) name external
//! services; [`Integrations::build`] checks them and reads their API keys
//! from the environment once; [`NodeRegistry::with_outbound`](crate::NodeRegistry::with_outbound) offers the two
//! node types over them. A node's config names its integration, and
//! validation refuses an unknown one; at run time the tenant's
//! `allowed_integrations` must name it, or the node fails naming it.
//!
//! ## Where a node may connect
//!
//! Requests go to the integration's first base URL, the node's `path`
//! appended to the base path. Each hop's host is resolved by the runtime
//! itself and every address it has is checked: private, loopback,
//! link-local, unique-local, shared (CGNAT), documentation and other
//! special-purpose ranges ([`AddressClass`], IPv4 embedded in IPv6
//! included) are refused unless the integration sets `allow_private`;
//! unspecified, multicast and broadcast addresses always. The TCP
//! connection is then made to one of those checked addresses — never
//! to the name again — so DNS rebinding between check and connect cannot
//! redirect it; TLS still verifies the certificate for the host name.
//! Redirects (301, 302, 303, 307, 308; at most [`MAX_REDIRECTS`]) are
//! followed only to a URL within one of the same integration's base URLs
//! (same scheme, host and port, under its base path), each checked the
//! same way; 303, and 301/302 after a POST, continue as a GET without body.
//!
//! ## Connections
//!
//! Connections are kept alive and reused from a
//! [`ConnectionPool`](kailash_core::outbound::ConnectionPool) — the
//! integrations' own, or the gateway's shared one after
//! [`Integrations::with_pool`] — each integration in a partition of its
//! own: a connection is only ever reused by the integration (and the
//! build of it) that opened it to a checked address, never by another
//! whose address rules or roots differ. Only a new connection resolves
//! and checks the host again. A response read to its end returns its
//! connection to the pool; a redirect, a failure or a body over the cap
//! closes it.
//!
//! ## Timeouts and the response cap
//!
//! `connect_timeout_ms` bounds each TCP connect plus TLS handshake;
//! `timeout_ms` the node's whole exchange, redirects and body included.
//! The response cap is the lower of the integration's `max_response_bytes`
//! and what is left of the run's byte budget; it measures the final
//! response *body* as received, after HTTP/1.1 transfer framing (chunked)
//! is removed — no content decoding happens, since nodes never send
//! `Accept-Encoding`. A declared `Content-Length` above the cap fails at
//! once; otherwise reading stops as soon as the body passes it, and the
//! node fails naming the cap. The status line and headers are bounded
//! separately by the client's 64 KiB read buffer.
//!
//! ## `http_request`
//!
//! Config `{"integration", "method", "path", "headers"?, "body"?}`:
//! `method` one of [`METHODS`]; `path` absolute (`/…`), RFC 3986
//! characters only, no `.`/`..` segments, no escaped `.`, `/` or `\`, no
//! `//` (so it stays under the base path); `headers` at most
//! [`MAX_HEADERS`] valid names, none of [`FORBIDDEN_HEADERS`]; `body` any
//! JSON, sent as `application/json`. The integration's key goes in
//! `Authorization: Bearer …` (`x-api-key` for an `anthropic` integration).
//!
//! Inputs: `body` (JSON, replaces the config's body), `query` (an object of
//! strings, numbers, booleans or arrays of them, percent-encoded into the
//! query string). Outputs: `status` (number; every status is an output,
//! not a failure), `headers` (object, lowercase names, bounded), `body`
//! (parsed JSON when the content type is `application/json` or `…+json`
//! and the body parses; otherwise the text, invalid UTF-8 replaced;
//! `null` for `HEAD`).
//!
//! ## `llm` (tenant feature `ai_enabled`)
//!
//! Config `{"integration", "model", "system"?, "max_tokens"?,
//! "temperature"?}`; the integration needs a `kind`. Input `prompt` (a
//! string) or `messages` (`[{"role": "user"|"assistant", "content": "…"}]`).
//!
//! - `openai`: `POST {base}/chat/completions` with `Authorization: Bearer
//!   <key>`, `{"model", "messages": [system?, …], "max_tokens"?,
//!   "temperature"?}` — so the base URL includes the version,
//!   `https://api.openai.com/v1`.
//! - `anthropic`: `POST {base}/v1/messages` with `x-api-key: <key>` and
//!   `anthropic-version: 2023-06-01`, `{"model", "max_tokens" (default
//!   1024), "messages", "system"?, "temperature"?}` — so the base URL is
//!   the host, `https://api.anthropic.com`.
//!
//! Outputs `text`, `model`, `usage` (`{input_tokens, output_tokens}`) and
//! `finish_reason`. A non-2xx answer fails the node with the status and
//! the provider's error type and code (the message is left out: some
//! providers echo part of the key).
//!
//! ```
//! use std::sync::Arc;
//! use kailash_runtime::{NodeRegistry, compile};
//! use kailash_runtime::definition::Definition;
//! use kailash_runtime::outbound::{IntegrationSpec, Integrations};
//! use kailash_tenancy::model::{Tenant, TenantSpec};
//! use serde_json::json;
//!
//! let specs: Vec<IntegrationSpec> = serde_json::from_value(json!([
//!     {"name": "crm", "base_urls": ["http://crm.internal/api"], "allow_private": true},
//!     {"name": "claude", "base_urls": ["http://llm.internal"], "kind": "anthropic"},
//! ]))?;
//! let registry = NodeRegistry::builtin().with_outbound(&Integrations::build(&specs)?);
//! let acme = Tenant::try_from(serde_json::from_str::<TenantSpec>(
//!     r#"{"id": "acme", "allowed_integrations": ["crm"]}"#,
//! )?)?;
//!
//! let def = |nodes| -> Result<Definition, serde_json::Error> { serde_json::from_value(json!({"nodes": nodes})) };
//! let fetch = def(json!([{"id": "get", "type": "http_request",
//!     "config": {"integration": "crm", "method": "GET", "path": "/customers"}}]))?;
//! assert!(compile(&fetch, &acme, &registry).is_ok());
//!
//! // Refused at validation: a path climbing out of the base path, an
//! // unknown integration, an `llm` node for a tenant without `ai_enabled`.
//! let climb = def(json!([{"id": "get", "type": "http_request",
//!     "config": {"integration": "crm", "method": "GET", "path": "/../admin"}}]))?;
//! assert!(compile(&climb, &acme, &registry).is_err());
//! let unknown = def(json!([{"id": "get", "type": "http_request",
//!     "config": {"integration": "billing", "method": "GET", "path": "/"}}]))?;
//! assert!(compile(&unknown, &acme, &registry).is_err());
//! let ask = def(json!([{"id": "ask", "type": "llm",
//!     "config": {"integration": "claude", "model": "claude-sonnet-4-5"}}]))?;
//! assert!(compile(&ask, &acme, &registry).unwrap_err().to_string().contains("ai_enabled"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod http_request;
mod integrations;
mod llm;
mod net;

pub use http_request::{
    FORBIDDEN_HEADERS, HTTP_REQUEST, HttpRequest, HttpRequestType, MAX_HEADER_VALUE_BYTES,
    MAX_HEADERS, MAX_OUTPUT_HEADER_BYTES, MAX_OUTPUT_HEADERS, MAX_QUERY_BYTES,
    MAX_REQUEST_BODY_BYTES, METHODS,
};
pub use integrations::{
    ApiKey, BaseUrl, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT_MS,
    Integration, IntegrationError, IntegrationSpec, Integrations, LlmKind, MAX_BASE_URLS,
    MAX_CONNECT_TIMEOUT_MS, MAX_INTEGRATIONS, MAX_KEY_BYTES, MAX_RESPONSE_BYTES, MAX_TIMEOUT_MS,
    MAX_URL_BYTES,
};
pub use llm::{
    AI_ENABLED, ANTHROPIC_VERSION, DEFAULT_MAX_TOKENS, LLM, Llm, LlmType, MAX_MAX_TOKENS,
    MAX_MESSAGES, MAX_MODEL_BYTES, MAX_PROMPT_BYTES,
};
pub use net::{AddressClass, MAX_PATH_BYTES, MAX_REDIRECTS, USER_AGENT_VALUE, classify};
