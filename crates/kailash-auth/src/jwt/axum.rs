//! `GET /.well-known/jwks.json` for axum.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::response::IntoResponse;
use axum::routing::get;

use super::keyset::KeySet;

/// Serves [`KeySet::jwks`] with `Cache-Control: public, max-age=300`.
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "auth",
    operation_id = "jwks",
    summary = "Public signing keys (JWKS)",
    security(()),
    responses(
        (status = 200, body = schema::JwkSet, description = "The public keys that verify this service's tokens (RFC 7517 JWK set)"),
    ),
))]
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

/// The published shape of [`KeySet::jwks`] (what `VerifyingKey::to_jwk`
/// writes): documentation only, the handler serves the key set's JSON.
#[cfg(feature = "openapi")]
pub(crate) mod schema {
    #![allow(dead_code)] // never built: the types only describe the JSON

    use utoipa::ToSchema;
    use utoipa::openapi::schema::{ObjectBuilder, Type};

    /// An RFC 7517 JWK set: the public signing keys.
    #[derive(ToSchema)]
    pub(crate) struct JwkSet {
        /// The keys, by `kid`.
        keys: Vec<PublicJwk>,
    }

    /// One public signing key (private members are never published).
    #[derive(ToSchema)]
    pub(crate) struct PublicJwk {
        /// Key type: `RSA` (RS256), `EC` (P-256, ES256) or `OKP` (Ed25519, EdDSA).
        #[schema(schema_with = kty)]
        kty: String,
        /// Key id, as in the tokens' `kid` header.
        kid: String,
        /// The algorithm the key signs with.
        #[schema(schema_with = alg)]
        alg: String,
        /// Always `sig`.
        #[schema(schema_with = sig)]
        r#use: String,
        /// RSA modulus (base64url).
        #[schema(required = false)]
        n: Option<String>,
        /// RSA exponent (base64url).
        #[schema(required = false)]
        e: Option<String>,
        /// Curve: `P-256` or `Ed25519`.
        #[schema(required = false, schema_with = crv)]
        crv: Option<String>,
        /// Public point x (base64url).
        #[schema(required = false)]
        x: Option<String>,
        /// Public point y (base64url, P-256 only).
        #[schema(required = false)]
        y: Option<String>,
    }

    fn one_of<const N: usize>(values: [&'static str; N]) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values))
    }

    fn kty() -> ObjectBuilder {
        one_of(["RSA", "EC", "OKP"])
    }

    fn alg() -> ObjectBuilder {
        one_of(["RS256", "ES256", "EdDSA"])
    }

    fn sig() -> ObjectBuilder {
        one_of(["sig"])
    }

    fn crv() -> ObjectBuilder {
        one_of(["P-256", "Ed25519"])
    }
}
