//! The OpenID Connect routes (feature `axum`).
//!
//! | route | what |
//! |---|---|
//! | `GET /auth/oidc/{provider}/login?login_hint=` | `302` to the provider, with the binding cookie |
//! | `GET /auth/oidc/{provider}/callback?code=&state=` | the token pair, as `POST /auth/login` answers it |
//!
//! Both are public (put [`PUBLIC_PREFIX`] on the
//! [`JwtAuthLayer`](crate::layer::JwtAuthLayer)'s public paths; the kailash
//! gateway does). Every refusal is a problem document and is audited
//! (`auth.login`, the reason naming the provider); a refused callback
//! removes the binding cookie, as a successful one does.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kailash_core::audit::AuditDecision;
use kailash_core::context::RequestContext;
use kailash_core::problem::Problem;

use super::{Callback, FLOW_COOKIE, OidcError, OidcProvider, OidcProviders};
use crate::service::AuthService;

/// The path prefix of the routes, public to the authentication layer.
pub const PUBLIC_PREFIX: &str = "/auth/oidc";

/// The longest query string read.
const MAX_QUERY: usize = 8 * 1024;

#[derive(Clone)]
struct Shared {
    service: AuthService,
    providers: OidcProviders,
}

/// The routes for `providers`, signing users in through `service`.
pub fn router(service: AuthService, providers: OidcProviders) -> Router {
    Router::new()
        .route("/auth/oidc/{provider}/login", get(login))
        .route("/auth/oidc/{provider}/callback", get(callback))
        .with_state(Shared { service, providers })
}

/// The problem document of an error.
pub fn problem(error: &OidcError) -> Problem {
    match error {
        OidcError::UnknownProvider => Problem::not_found().with_detail("no such identity provider"),
        OidcError::BadRequest(m) => Problem::bad_request(*m),
        OidcError::Refused(m) => {
            Problem::new(StatusCode::UNAUTHORIZED, "sign-in-refused", "Unauthorized")
                .with_detail(*m)
        }
        OidcError::Unavailable(_) => {
            Problem::service_unavailable("the identity provider is unavailable")
        }
        OidcError::Auth(e) => crate::http::problem(e),
    }
}

fn params(query: Option<&str>) -> Result<Vec<(String, String)>, OidcError> {
    let query = query.unwrap_or("");
    if query.len() > MAX_QUERY {
        return Err(OidcError::BadRequest("the query string is too long"));
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    // One value per parameter: a repeated one is ambiguous.
    for (i, (k, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(seen, _)| seen == k) {
            return Err(OidcError::BadRequest("a query parameter is repeated"));
        }
    }
    Ok(pairs)
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn provider<'a>(s: &'a Shared, name: &str) -> Result<&'a OidcProvider, OidcError> {
    s.providers
        .get(name)
        .map(AsRef::as_ref)
        .ok_or(OidcError::UnknownProvider)
}

#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/auth/oidc/{provider}/login", tag = "auth", operation_id = "oidc_login",
    summary = "Start a sign-in with an OpenID Connect provider (authorization code with PKCE)",
    security(()),
    params(
        ("provider" = String, Path, description = "A configured provider's name"),
        ("login_hint" = Option<String>, Query, description = "Passed on to the provider; at most 256 characters"),
    ),
    responses(
        (status = 302, description = "To the provider's authorization endpoint; sets the `__Host-kailash-oidc` binding cookie (HttpOnly, Secure, SameSite=Lax)"),
        (status = 400, body = Problem, content_type = kailash_core::problem::PROBLEM_JSON, description = "A malformed or oversized query"),
        (status = 404, body = Problem, content_type = kailash_core::problem::PROBLEM_JSON, description = "No such provider"),
        (status = 503, body = Problem, content_type = kailash_core::problem::PROBLEM_JSON, description = "The provider's discovery document cannot be fetched, or the state backend is down"),
    ),
))]
async fn login(
    State(s): State<Shared>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let started = async {
        let p = provider(&s, &name)?;
        let pairs = params(query.as_deref())?;
        p.start(param(&pairs, "login_hint")).await
    }
    .await;
    match started {
        Ok(start) => {
            let mut r = StatusCode::FOUND.into_response();
            let h = r.headers_mut();
            match (
                HeaderValue::from_str(&start.location),
                HeaderValue::from_str(&start.set_cookie),
            ) {
                (Ok(location), Ok(cookie)) => {
                    h.insert(header::LOCATION, location);
                    h.insert(header::SET_COOKIE, cookie);
                }
                _ => return Problem::internal().into_response(),
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => {
            if let OidcError::Unavailable(why) = &e {
                tracing::warn!(provider = %name, error = %why, "OpenID Connect sign-in could not start");
            }
            problem(&e).into_response()
        }
    }
}

/// The binding cookie's value.
fn binding(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(FLOW_COOKIE)
                .and_then(|rest| rest.strip_prefix('='))
        })
}

#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/auth/oidc/{provider}/callback", tag = "auth", operation_id = "oidc_callback",
    summary = "Finish a sign-in with an OpenID Connect provider",
    description = "Where the provider sends the browser back. The state must be this browser's (the binding cookie) and unused; the code is redeemed with the PKCE verifier; the ID token is validated (signature, issuer, audience, expiry, nonce). Answers the token pair of a new session, as `POST /auth/login` does.",
    security(()),
    params(
        ("provider" = String, Path, description = "A configured provider's name"),
        ("code" = Option<String>, Query, description = "The authorization code; at most 4096 characters"),
        ("state" = Option<String>, Query, description = "The state of the sign-in; at most 512 characters"),
        ("error" = Option<String>, Query, description = "The provider's refusal, instead of a code"),
    ),
    responses(
        (status = 200, body = crate::service::TokenPair, description = "A new session's token pair; the binding cookie is removed"),
        (status = 400, body = Problem, content_type = kailash_core::problem::PROBLEM_JSON, description = "No state or code, a repeated or oversized parameter; audited"),
        (status = 401, body = Problem, content_type = kailash_core::problem::PROBLEM_JSON, description = "Refused: unknown, expired or replayed state, another browser's state, an invalid ID token (signature, issuer, audience, expiry, nonce), an unverified e-mail, a disabled account, a second factor the provider did not assert, or the provider's own refusal; audited"),
        (status = 403, body = Problem, content_type = kailash_core::problem::PROBLEM_JSON, description = "The tenant is inactive, or the concurrent session limit is reached"),
        (status = 404, body = Problem, content_type = kailash_core::problem::PROBLEM_JSON, description = "No such provider (not audited)"),
        (status = 503, body = Problem, content_type = kailash_core::problem::PROBLEM_JSON, description = "The provider or a backend cannot answer; audited"),
    ),
))]
async fn callback(
    State(s): State<Shared>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ctx: RequestContext,
) -> Response {
    let outcome = async {
        let p = provider(&s, &name)?;
        let pairs = params(query.as_deref())?;
        let cb = Callback {
            code: param(&pairs, "code").map(str::to_owned),
            state: param(&pairs, "state").map(str::to_owned),
            error: param(&pairs, "error").map(str::to_owned),
            iss: param(&pairs, "iss").map(str::to_owned),
        };
        let identity = p.finish(&cb, binding(&headers)).await?;
        Ok::<_, OidcError>(s.service.sign_in_external(identity, &ctx).await?)
    }
    .await;
    let label = if s.providers.get(&name).is_some() {
        name.clone()
    } else {
        "unknown".to_owned()
    };
    let mut response = match outcome {
        Ok(pair) => {
            metrics::counter!("kailash_auth_sso_total", "provider" => label, "outcome" => "success")
                .increment(1);
            let mut r = axum::Json(pair).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => {
            let (decision, reason, outcome): (_, String, _) = match &e {
                // A path nobody configured says nothing about anyone: not
                // worth an audit entry per unauthenticated request.
                OidcError::UnknownProvider => (AuditDecision::Failure, String::new(), "failure"),
                OidcError::BadRequest(m) | OidcError::Refused(m) => {
                    (AuditDecision::Failure, (*m).to_owned(), "failure")
                }
                OidcError::Unavailable(why) => {
                    tracing::warn!(provider = %name, error = %why, "OpenID Connect sign-in failed: provider unavailable");
                    (
                        AuditDecision::Error,
                        "identity provider unavailable".into(),
                        "error",
                    )
                }
                // The service audited its own refusals.
                OidcError::Auth(_) => (AuditDecision::Failure, String::new(), "failure"),
            };
            metrics::counter!("kailash_auth_sso_total", "provider" => label.clone(), "outcome" => outcome)
                .increment(1);
            let audited = if reason.is_empty() {
                Ok(())
            } else {
                s.service
                    .audit_sign_in_refusal(
                        decision,
                        format!("OpenID Connect ({label}): {reason}"),
                        &ctx,
                    )
                    .await
            };
            match audited {
                Ok(()) => problem(&e).into_response(),
                Err(refused) => crate::http::problem(&refused).into_response(),
            }
        }
    };
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static(OidcProvider::clear_cookie()),
    );
    response
}

/// The OpenAPI 3.1 document of [`router`]'s routes (feature `openapi`).
#[cfg(feature = "openapi")]
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    OidcApi::openapi()
}

#[cfg(feature = "openapi")]
#[derive(utoipa::OpenApi)]
#[openapi(info(title = "kailash-auth OpenID Connect"), paths(login, callback))]
struct OidcApi;
