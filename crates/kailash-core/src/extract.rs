//! axum extractors for what kailash-rs layers put into a request
//! (feature `axum`).
//!
//! [`Principal`], [`RequestContext`] and [`TenantId`] implement
//! `FromRequestParts`: a handler takes them as arguments. A missing
//! `Principal` (the route is not behind an authentication layer, or the
//! layer let an anonymous request through) is a 401 problem; a missing
//! `RequestContext` or tenant is a 500/400 problem, since it means the stack
//! is wired wrong or the request carries no tenant.
//!
//! ```
//! use axum::{Router, routing::get};
//! use kailash_core::{Principal, context::RequestContext};
//!
//! async fn whoami(principal: Principal, ctx: RequestContext) -> String {
//!     format!("{} from {}", principal.subject(), ctx.client_ip())
//! }
//!
//! let app: Router = Router::new().route("/whoami", get(whoami));
//! ```
//!
//! `Option<Principal>` works too, for routes that serve both anonymous and
//! authenticated callers.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use crate::context::RequestContext;
use crate::principal::Principal;
use crate::problem::Problem;
use crate::tenant::TenantId;

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| Problem::unauthorized(None))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .ok_or_else(|| {
                tracing::error!("RequestContext extractor used without SetRequestContextLayer");
                Problem::internal()
            })
    }
}

/// The request's tenant: the one a tenancy layer resolved (a `TenantId` in
/// the extensions) and nothing else — never a fallback to the token's
/// claim, so a handler and the layers before it cannot disagree. Without a
/// tenancy layer in front, the extractor answers `400`.
impl<S: Send + Sync> FromRequestParts<S> for TenantId {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<TenantId>()
            .cloned()
            .ok_or_else(|| Problem::bad_request("the request carries no tenant"))
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::{Request, StatusCode};
    use tower::ServiceExt;

    use crate::{Principal, TenantId};

    fn app() -> Router {
        Router::new()
            .route(
                "/me",
                get(|p: Principal| async move { p.subject().to_owned() }),
            )
            .route(
                "/maybe",
                get(|p: Option<Principal>| async move {
                    p.map_or("anonymous".to_owned(), |p| p.subject().to_owned())
                }),
            )
            .route("/tenant", get(|t: TenantId| async move { t.to_string() }))
    }

    async fn get_status(uri: &str, principal: Option<Principal>) -> (StatusCode, String) {
        let mut req = Request::get(uri).body(Body::empty()).unwrap();
        if let Some(p) = principal {
            req.extensions_mut().insert(p);
        }
        let res = app().oneshot(req).await.unwrap();
        let status = res.status();
        let ct = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, ct)
    }

    #[tokio::test]
    async fn missing_principal_is_a_401_problem() {
        let (status, ct) = get_status("/me", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(ct, "application/problem+json");
        let (status, _) = get_status("/maybe", None).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn the_tenant_is_only_the_resolved_one_never_the_tokens_claim() {
        // A principal's claim is not a resolved tenant: no fallback.
        let p = Principal::builder("carol")
            .tenant(TenantId::new("globex").unwrap())
            .build();
        assert_eq!(
            get_status("/tenant", Some(p)).await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(get_status("/tenant", None).await.0, StatusCode::BAD_REQUEST);
        let mut req = Request::get("/tenant").body(Body::empty()).unwrap();
        req.extensions_mut().insert(TenantId::new("acme").unwrap());
        assert_eq!(app().oneshot(req).await.unwrap().status(), StatusCode::OK);
    }
}
