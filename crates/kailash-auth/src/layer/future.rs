/// The response future of [`JwtAuth`](super::JwtAuth): kailash-core's guard
/// future, unboxed when the decision is made in process (a cache hit with
/// an in-process session check, a public route, a refusal with no audit).
pub type JwtAuthFuture<F, B, E> = kailash_core::guard::GuardFuture<F, B, E>;
