//! [`ResponseFuture`] of [`JwtAuth`](super::JwtAuth).

/// The response future of [`JwtAuth`](super::JwtAuth): kailash-core's guard
/// future, unboxed when the decision is made in process (a cache hit with
/// an in-process session check, a public route, a refusal whose audit event
/// the sink took without waiting).
pub type ResponseFuture<F, B, E> = kailash_core::guard::GuardFuture<F, B, E>;
