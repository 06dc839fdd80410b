//! `GET /.well-known/jwks.json` for axum.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::response::IntoResponse;
use axum::routing::get;

use super::keyset::KeySet;

/// Serves [`KeySet::jwks`] with `Cache-Control: public, max-age=300`.
pub async fn jwks_handler(State(keys): State<Arc<KeySet>>) -> impl IntoResponse {
    ([(CACHE_CONTROL, "public, max-age=300")], Json(keys.jwks()))
}

/// A router serving `GET /.well-known/jwks.json` from `keys`; merge it into
/// the application's router.
pub fn jwks_router(keys: Arc<KeySet>) -> axum::Router {
    axum::Router::new()
        .route("/.well-known/jwks.json", get(jwks_handler))
        .with_state(keys)
}
