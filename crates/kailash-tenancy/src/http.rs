//! The tenancy route (feature `axum`).
//!
//! | route | auth | what |
//! |---|---|---|
//! | `GET /api/tenant/usage` | bearer, tenant | the caller tenant's quota use: API calls today and when they reset, workflows, storage — each with its limit; with [`router_with_billing`], also `billing`: the plan, today's metered usage and the delivery record of its reports |
//!
//! The handler reads the `Arc<`[`Tenant`]`>` that
//! [`TenancyLayer`](crate::layer::TenancyLayer) put in the request, so it
//! answers only for the tenant the layer resolved — never one the client
//! names by itself. Mount the router where that layer applies; the kailash
//! gateway does this for you.
//!
//! ```
//! use std::sync::Arc;
//! use axum::body::Body;
//! use http::{Request, StatusCode};
//! use http_body_util::BodyExt;
//! use kailash_core::clock::SystemClock;
//! use kailash_core::state::SharedState;
//! use kailash_core::{Principal, TenantId};
//! use kailash_tenancy::layer::TenancyLayer;
//! use kailash_tenancy::model::TenantSpec;
//! use kailash_tenancy::quota::Quotas;
//! use kailash_tenancy::registry::StaticTenantRegistry;
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let state = SharedState::memory(Arc::new(SystemClock));
//! let acme: TenantSpec =
//!     serde_json::from_value(serde_json::json!({ "id": "acme", "max_api_calls_per_day": 100 }))?;
//! let registry = Arc::new(StaticTenantRegistry::new(vec![acme], state.clone())?);
//! let quotas = Quotas::new(state);
//!
//! let app = kailash_tenancy::http::router(quotas.clone())
//!     .layer(TenancyLayer::new(registry).quotas(quotas));
//!
//! // An authentication layer would insert the principal; here the test does.
//! let mut req = Request::get("/api/tenant/usage").body(Body::empty())?;
//! req.extensions_mut()
//!     .insert(Principal::builder("u1").tenant(TenantId::new("acme")?).build());
//! let res = app.oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! let usage: serde_json::Value =
//!     serde_json::from_slice(&res.into_body().collect().await?.to_bytes())?;
//! // This request was charged before the handler read the count.
//! assert_eq!(usage["api_calls_today"], 1);
//! assert_eq!(usage["max_api_calls_per_day"], 100);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kailash_core::Problem;

use kailash_core::state::StateError;
use serde::Serialize;

use crate::metering::{Billing, DayUsage, DeliveryRecord};
use crate::model::Tenant;
use crate::quota::{Quotas, Usage};

/// The path of the usage route.
pub const USAGE_PATH: &str = "/api/tenant/usage";

/// `GET /api/tenant/usage`, answering from `quotas` (the same quotas the
/// [`TenancyLayer`](crate::layer::TenancyLayer) charges).
pub fn router(quotas: Quotas) -> Router {
    router_with_billing(quotas, None)
}

/// [`router`], whose answer also carries `billing` (the tenant's plan,
/// today's metered usage, and the delivery record of its `billing.usage`
/// reports) when `billing` is given.
pub fn router_with_billing(quotas: Quotas, billing: Option<Billing>) -> Router {
    Router::new()
        .route(USAGE_PATH, get(usage))
        .with_state(UsageState { quotas, billing })
}

#[derive(Clone)]
struct UsageState {
    quotas: Quotas,
    billing: Option<Billing>,
}

/// The answer of `GET /api/tenant/usage`.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = TenantUsageAnswer))]
struct UsageAnswer {
    #[serde(flatten)]
    usage: Usage,
    /// Present when billing is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    billing: Option<BillingView>,
}

/// The tenant's billing: plan, today's metered usage, report delivery.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = TenantBilling))]
struct BillingView {
    /// The tenant's plan.
    plan: String,
    /// Usage metered so far today (UTC).
    today: DayUsage,
    /// The delivery of the daily reports.
    delivery: DeliveryRecord,
}

/// Quota use of the caller's tenant (the `Tenant` the tenancy layer
/// resolved): API calls today, workflows, storage.
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/api/tenant/usage",
    tag = "tenancy",
    operation_id = "tenant_usage",
    security(("bearer" = [])),
    responses(
        (status = 200, body = UsageAnswer, description = "The tenant's usage, each figure with its limit (`null`: unlimited); `billing` when metering is configured"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "No tenant was resolved for the request (the route is served without the tenancy layer)"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Quota accounting is temporarily unavailable"),
    ),
))]
async fn usage(
    State(route): State<UsageState>,
    tenant: Option<Extension<Arc<Tenant>>>,
) -> Response {
    // Without the layer in front there is no resolved tenant to answer for.
    let Some(Extension(tenant)) = tenant else {
        return Problem::bad_request("the request names no tenant").into_response();
    };
    match answer(&route, &tenant).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "quota state unavailable");
            Problem::service_unavailable("quota accounting is temporarily unavailable")
                .into_response()
        }
    }
}

async fn answer(route: &UsageState, tenant: &Tenant) -> Result<UsageAnswer, StateError> {
    let usage = route.quotas.usage(tenant).await?;
    let billing = match &route.billing {
        None => None,
        Some(billing) => {
            let (today, delivery) = tokio::join!(
                billing.metering().today(&tenant.id),
                billing.delivery(&tenant.id)
            );
            Some(BillingView {
                plan: tenant.plan.clone(),
                today: today?,
                delivery: delivery?,
            })
        }
    };
    Ok(UsageAnswer { usage, billing })
}

#[cfg(feature = "openapi")]
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "kailash-tenancy"),
    paths(usage),
    components(schemas(UsageAnswer, Usage, BillingView, DayUsage, DeliveryRecord, Problem))
)]
struct UsageApi;

/// The OpenAPI 3.1 document of [`router`] (feature `openapi`), from the
/// types: to merge into a gateway's document. (`401`, `403` and `429` come
/// from the authentication and tenancy layers in front; the gateway adds
/// them.)
#[cfg(feature = "openapi")]
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    UsageApi::openapi()
}
