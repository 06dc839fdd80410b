//! What [`SetRequestContextLayer`](super::SetRequestContextLayer) and its
//! service share.

use std::sync::Arc;

use crate::clock::Clock;

use super::{RequestIdGenerator, TrustedProxies};

/// When an incoming `X-Request-Id` is kept instead of generating one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncomingRequestId {
    /// Always generate.
    Never,
    /// Keep a well-formed id sent by a trusted proxy (the default), so one id
    /// follows a request through your load balancer and this service.
    #[default]
    FromTrustedProxies,
    /// Keep any well-formed id (only when every client is trusted).
    Always,
}

#[derive(Debug)]
pub(super) struct Config {
    pub(super) proxies: TrustedProxies,
    pub(super) incoming: IncomingRequestId,
    pub(super) ids: RequestIdGenerator,
    pub(super) clock: Arc<dyn Clock>,
}
