//! The SAML routes (features `saml` and `axum`).
//!
//! | route | what |
//! |---|---|
//! | `GET /auth/saml/metadata` | this Service Provider's metadata (XML) |
//! | `GET /auth/saml/login` | `302` to the IdP (HTTP-Redirect binding), with the binding cookie |
//! | `POST /auth/saml/acs` | the Assertion Consumer Service (HTTP-POST binding): the token pair, as `POST /auth/login` answers it |
//!
//! All are public (put [`PUBLIC_PREFIX`] on the
//! [`JwtAuthLayer`](crate::layer::JwtAuthLayer)'s public paths; the kailash
//! gateway does). Every refused answer at the ACS is a problem document
//! and is audited (`auth.login`, the reason naming SAML); a refused post
//! removes the binding cookie, as a successful one does.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kailash_core::audit::AuditDecision;
use kailash_core::context::RequestContext;
use kailash_core::problem::Problem;

use super::{FLOW_COOKIE, MAX_SAML_RESPONSE_BYTES, SamlError, SamlServiceProvider};
use crate::service::AuthService;

/// The path prefix of the routes, public to the authentication layer.
pub const PUBLIC_PREFIX: &str = "/auth/saml";

/// The largest ACS form body read: the `SAMLResponse` percent-encoded
/// (base64's `+`, `/`, `=` triple) plus a `RelayState`.
const MAX_FORM_BYTES: usize = 3 * MAX_SAML_RESPONSE_BYTES + 8 * 1024;

#[derive(Clone)]
struct Shared {
    service: AuthService,
    provider: Arc<SamlServiceProvider>,
}

/// The routes for `provider`, signing users in through `service`.
pub fn router(service: AuthService, provider: Arc<SamlServiceProvider>) -> Router {
    Router::new()
        .route("/auth/saml/metadata", get(metadata))
        .route("/auth/saml/login", get(login))
        .route(
            "/auth/saml/acs",
            post(acs).layer(DefaultBodyLimit::max(MAX_FORM_BYTES)),
        )
        .with_state(Shared { service, provider })
}

/// The problem document of an error.
pub fn problem(error: &SamlError) -> Problem {
    match error {
        SamlError::BadRequest(m) => Problem::bad_request(*m),
        SamlError::Refused(m) => {
            Problem::new(StatusCode::UNAUTHORIZED, "sign-in-refused", "Unauthorized")
                .with_detail(*m)
        }
        SamlError::Auth(e) => crate::http::problem(e),
    }
}

#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/auth/saml/metadata", tag = "auth", operation_id = "saml_metadata",
    summary = "This SAML Service Provider's metadata",
    security(()),
    responses(
        (status = 200, content_type = "application/samlmetadata+xml", body = String, description = "An EntityDescriptor: the entity id, the ACS URL (HTTP-POST), assertions wanted signed"),
    ),
))]
async fn metadata(State(s): State<Shared>) -> Response {
    match s.provider.metadata_xml() {
        Ok(xml) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/samlmetadata+xml"),
            )],
            xml,
        )
            .into_response(),
        Err(e) => problem(&e).into_response(),
    }
}

#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/auth/saml/login", tag = "auth", operation_id = "saml_login",
    summary = "Start a sign-in with the SAML identity provider (HTTP-Redirect binding)",
    security(()),
    responses(
        (status = 302, description = "To the IdP's single sign-on URL with a SAMLRequest; sets the `__Host-kailash-saml` binding cookie (HttpOnly, Secure, SameSite=None)"),
        (status = 503, body = Problem, content_type = kailash_core::problem::PROBLEM_JSON, description = "The state backend is down"),
    ),
))]
async fn login(State(s): State<Shared>) -> Response {
    match s.provider.start().await {
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
        Err(e) => problem(&e).into_response(),
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

/// The one `SAMLResponse` of a form body.
fn saml_response(body: &[u8]) -> Result<String, SamlError> {
    let mut found = None;
    for (k, v) in url::form_urlencoded::parse(body) {
        if k == "SAMLResponse" {
            if found.is_some() {
                return Err(SamlError::BadRequest("the SAMLResponse is repeated"));
            }
            if v.len() > MAX_SAML_RESPONSE_BYTES {
                return Err(SamlError::BadRequest("the SAMLResponse is too large"));
            }
            found = Some(v.into_owned());
        }
    }
    found.ok_or(SamlError::BadRequest("the request has no SAMLResponse"))
}

#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/auth/saml/acs", tag = "auth", operation_id = "saml_acs",
    summary = "The SAML Assertion Consumer Service (HTTP-POST binding)",
    description = "Where the IdP's auto-submitted form posts the SAMLResponse. The response must answer this browser's unanswered AuthnRequest (the binding cookie; InResponseTo), be signed by the configured IdP certificate (the assertion itself too, by default), and be for this entity (Audience), this ACS (Recipient, Destination), now (NotBefore, NotOnOrAfter) and the configured IdP (Issuer); an assertion is accepted once. Answers the token pair of a new session, as `POST /auth/login` does.",
    security(()),
    request_body(content_type = "application/x-www-form-urlencoded", content = String, description = "`SAMLResponse` (base64, at most 256 KiB) and `RelayState`"),
    responses(
        (status = 200, body = crate::service::TokenPair, description = "A new session's token pair; the binding cookie is removed"),
        (status = 400, body = Problem, content_type = kailash_core::problem::PROBLEM_JSON, description = "No, a repeated or an oversized SAMLResponse, not base64 or UTF-8; audited"),
        (status = 401, body = Problem, content_type = kailash_core::problem::PROBLEM_JSON, description = "Refused: no or another browser's sign-in, an unsigned, forged or wrapped response, another issuer, audience or recipient, expired, replayed, a disabled account or a second factor the IdP did not assert; audited"),
        (status = 403, body = Problem, content_type = kailash_core::problem::PROBLEM_JSON, description = "The tenant is inactive, or the concurrent session limit is reached"),
        (status = 413, description = "The form is larger than the SAMLResponse bound allows"),
        (status = 503, body = Problem, content_type = kailash_core::problem::PROBLEM_JSON, description = "A backend cannot answer; audited"),
    ),
))]
async fn acs(
    State(s): State<Shared>,
    headers: HeaderMap,
    ctx: RequestContext,
    body: Bytes,
) -> Response {
    let outcome = async {
        let response = saml_response(&body)?;
        let identity = s.provider.finish(&response, binding(&headers)).await?;
        Ok::<_, SamlError>(s.service.sign_in_external(identity, &ctx).await?)
    }
    .await;
    let mut response = match outcome {
        Ok(pair) => {
            metrics::counter!("kailash_auth_sso_total", "provider" => "saml", "outcome" => "success")
                .increment(1);
            let mut r = axum::Json(pair).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => {
            let reason = match &e {
                SamlError::BadRequest(m) | SamlError::Refused(m) => (*m).to_owned(),
                // The service audited its own refusals.
                SamlError::Auth(_) => String::new(),
            };
            metrics::counter!("kailash_auth_sso_total", "provider" => "saml", "outcome" => "failure")
                .increment(1);
            let audited = if reason.is_empty() {
                Ok(())
            } else {
                s.service
                    .audit_sign_in_refusal(
                        AuditDecision::Failure,
                        format!("SAML ({}): {reason}", s.provider.spec().name),
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
        HeaderValue::from_static(SamlServiceProvider::clear_cookie()),
    );
    response
}

/// The OpenAPI 3.1 document of [`router`]'s routes (feature `openapi`).
#[cfg(feature = "openapi")]
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    SamlApi::openapi()
}

#[cfg(feature = "openapi")]
#[derive(utoipa::OpenApi)]
#[openapi(info(title = "kailash-auth SAML"), paths(metadata, login, acs))]
struct SamlApi;
