//! The authentication routes (feature `axum`).
//!
//! | route | auth | what |
//! |---|---|---|
//! | `POST /auth/login` | public | `{username, password, totp?, recovery_code?}` → token pair, or an enrolment-only token when a required second factor is not enrolled |
//! | `POST /auth/refresh` | public | `{refresh_token}` → new pair (the old refresh token is dead) |
//! | `POST /auth/logout` | bearer | ends the caller's session |
//! | `GET /auth/sessions` | bearer | the caller's live sessions |
//! | `DELETE /auth/sessions/{id}` | bearer | ends one of the caller's sessions |
//! | `POST /auth/mfa/enroll` | bearer | `{password, totp?, recovery_code?}` → a new TOTP secret and `otpauth://` URI (a code is required while one is enrolled) |
//! | `POST /auth/mfa/verify` | bearer | `{code}` → activates it; recovery codes, shown once |
//! | `POST /auth/mfa/bootstrap/enroll` | enrolment token | the same, for a user's first second factor |
//! | `POST /auth/mfa/bootstrap/verify` | enrolment token | `{code}` → activates it; recovery codes |
//! | `POST /auth/password` | bearer | `{current_password, new_password}`; ends every session |
//! | `GET /.well-known/jwks.json` | public | the public signing keys |
//!
//! Put [`PUBLIC_PATHS`] on the [`JwtAuthLayer`](crate::layer::JwtAuthLayer)
//! as public paths; the kailash gateway does this for you. (The bootstrap
//! routes are public to the layer because they take no access token: they
//! verify the enrolment-only token themselves, and the layer refuses that
//! token everywhere else.)
//!
//! Bodies and path parameters are read through kailash-core's
//! [`ValidJson`] and [`ValidPath`]: they must match the schema the request
//! types derive (every field's [bound](crate::bounds) is its `maxLength`,
//! unknown properties are refused), or the route answers `422` with a JSON
//! pointer per violation and never the value; a body that is not JSON is
//! `400`, one that is not `application/json` `415`. With the `openapi`
//! feature, `openapi()` and `admin_openapi()` document the routes from the
//! same types.
//!
//! [`admin_router`] serves the account administration routes, behind a
//! permission check the caller supplies ([`ADMIN_PERMISSION`]):
//!
//! | route | what |
//! |---|---|
//! | `POST /auth/users/{username}/disable` | disables the account; ends its sessions |
//! | `POST /auth/users/{username}/enable` | enables it again |
//! | `POST /auth/users/{username}/mfa/reset` | forgets its second factor; ends its sessions |

use std::convert::Infallible;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{Route, delete, get, post};
use axum::{Json, Router};
use kailash_core::context::RequestContext;
use kailash_core::schema::{ValidJson, ValidPath};
use kailash_core::{Principal, Problem};
use serde::{Deserialize, Serialize};
use tower::{Layer, Service};
use utoipa::{IntoParams, ToSchema};

use crate::service::{AccountAction, AuthError, AuthService, EnrolRequest, LoginRequest};
#[cfg(feature = "openapi")]
use crate::service::{Enrolment, LoginOutcome, SessionView, TokenPair};

/// The media type of every error answer, for the documentation.
#[cfg(feature = "openapi")]
const PROBLEM: &str = kailash_core::problem::PROBLEM_JSON;

/// Routes that must be reachable without an access token.
pub const PUBLIC_PATHS: [&str; 5] = [
    "/auth/login",
    "/auth/refresh",
    "/auth/mfa/bootstrap/enroll",
    "/auth/mfa/bootstrap/verify",
    "/.well-known/jwks.json",
];

/// The permission the [`admin_router`] routes require.
pub const ADMIN_PERMISSION: &str = "user:manage";

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        problem(&self).into_response()
    }
}

/// The problem document of an error.
pub fn problem(error: &AuthError) -> Problem {
    match error {
        AuthError::InvalidCredentials => Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid-credentials",
            "Unauthorized",
        )
        .with_detail("invalid username or password"),
        AuthError::MfaRequired => {
            Problem::new(StatusCode::UNAUTHORIZED, "mfa-required", "Unauthorized")
                .with_detail("a valid one-time code is required")
                .with_extension("mfa_required", true)
        }
        AuthError::Locked { retry_after } => Problem::locked(*retry_after)
            .with_detail("too many failed logins; the account is locked for a while"),
        AuthError::Throttled { retry_after } => Problem::too_many_requests(*retry_after)
            .with_detail("too many login attempts from this address")
            .with_extension("limit", "login"),
        AuthError::SessionLimit => Problem::forbidden("the concurrent session limit is reached"),
        AuthError::TenantInactive => Problem::forbidden("tenant is inactive"),
        AuthError::InvalidGrant => {
            Problem::unauthorized(Some("invalid_token")).with_detail("invalid refresh token")
        }
        AuthError::InvalidEnrolmentToken => Problem::unauthorized(Some("invalid_token"))
            .with_detail("invalid or expired enrolment token"),
        AuthError::BadRequest(detail) => Problem::bad_request(detail.clone()),
        AuthError::Conflict(detail) => {
            Problem::from_status(StatusCode::CONFLICT).with_detail(*detail)
        }
        AuthError::NotFound => Problem::not_found(),
        AuthError::Unavailable => {
            Problem::service_unavailable("authentication is temporarily unavailable")
        }
        AuthError::Busy { retry_after } => {
            Problem::service_unavailable("too many password checks at once; retry shortly")
                .with_retry_after(*retry_after)
                .with_extension("limit", "password_hashing")
        }
        AuthError::SignInRefused(detail) => {
            Problem::new(StatusCode::UNAUTHORIZED, "sign-in-refused", "Unauthorized")
                .with_detail(*detail)
        }
        AuthError::Internal => Problem::internal(),
    }
}

/// The body of `POST /auth/refresh`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    /// The refresh token of the last pair; at most 8192 characters.
    #[schema(max_length = 8192)]
    refresh_token: String,
}

/// The body of `POST /auth/mfa/verify` and `POST /auth/mfa/bootstrap/verify`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MfaCode {
    /// The current code of the authenticator app; at most 64 characters.
    #[schema(max_length = 64)]
    code: String,
}

/// The body of `POST /auth/password`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    /// The current password; at most 1024 characters.
    #[schema(max_length = 1024, format = Password)]
    current_password: String,
    /// The new password (the policy decides what it must be); at most 1024
    /// characters.
    #[schema(max_length = 1024, format = Password)]
    new_password: String,
}

/// The recovery codes of a confirmed enrolment, shown once.
#[derive(Serialize, ToSchema)]
struct RecoveryCodes {
    /// Each spends once, instead of a TOTP code.
    recovery_codes: Vec<String>,
}

/// The `{id}` of `DELETE /auth/sessions/{id}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct SessionId {
    /// A session id, as `GET /auth/sessions` lists it.
    #[param(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_-]+$")]
    id: String,
}

/// The `{username}` of the administration routes.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct Username {
    /// The account's username; at most 256 characters.
    #[param(max_length = 256)]
    username: String,
}

/// The body, or its refusal; a refusal for the body's shape (`422`) is
/// audited as a malformed request to `action`, like the flows' own
/// refusals. No refusal quotes the body (it may hold a password).
async fn body<T>(
    s: &AuthService,
    body: Result<ValidJson<T>, Problem>,
    action: &'static str,
    ctx: &RequestContext,
) -> Result<T, Response> {
    match body {
        Ok(ValidJson(b)) => Ok(b),
        Err(problem) => {
            if problem.status() == StatusCode::UNPROCESSABLE_ENTITY
                && let Err(e) = s.audit_malformed(action, ctx).await
            {
                return Err(e.into_response());
            }
            Err(problem.into_response())
        }
    }
}

#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/auth/login", tag = "auth", operation_id = "login",
    summary = "Log in with username, password and, when required, a TOTP or recovery code",
    security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginOutcome, description = "A token pair; or, for a user whose role requires a second factor that is not enrolled, an enrolment-only token (no session)"),
        (status = 400, body = Problem, content_type = PROBLEM, description = "The body is not JSON"),
        (status = 401, body = Problem, content_type = PROBLEM, description = "Invalid credentials, or a second factor is required (`mfa_required`)"),
        (status = 403, body = Problem, content_type = PROBLEM, description = "Concurrent session limit reached, or the tenant is inactive"),
        (status = 415, body = Problem, content_type = PROBLEM, description = "The body is not application/json"),
        (status = 422, body = Problem, content_type = PROBLEM, description = "The body does not match the schema (e.g. a field over its length); audited, not counted toward the lockout"),
        (status = 423, body = Problem, content_type = PROBLEM, description = "Account locked (Retry-After)"),
        (status = 429, body = Problem, content_type = PROBLEM, description = "Too many attempts from this address (Retry-After)"),
        (status = 503, body = Problem, content_type = PROBLEM, description = "Backend unavailable, or every password-hashing slot busy (Retry-After)"),
    ),
))]
async fn login(
    State(s): State<AuthService>,
    ctx: RequestContext,
    req: Result<ValidJson<LoginRequest>, Problem>,
) -> Response {
    let req = match body(&s, req, "auth.login", &ctx).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    match s.login(req, &ctx).await {
        Ok(outcome) => no_store(Json(outcome)),
        Err(e) => e.into_response(),
    }
}

#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/auth/refresh", tag = "auth", operation_id = "refresh",
    summary = "Rotate a refresh token; reuse of a rotated token revokes its family and session",
    security(()),
    request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenPair, description = "A new token pair (the presented refresh token is dead)"),
        (status = 400, body = Problem, content_type = PROBLEM, description = "The body is not JSON"),
        (status = 401, body = Problem, content_type = PROBLEM, description = "Invalid, expired, rotated or revoked refresh token; or the session lacks a second factor the user's roles now require (`mfa_required`)"),
        (status = 403, body = Problem, content_type = PROBLEM, description = "The tenant is inactive"),
        (status = 415, body = Problem, content_type = PROBLEM, description = "The body is not application/json"),
        (status = 422, body = Problem, content_type = PROBLEM, description = "The body does not match the schema (e.g. a token over 8192 characters); audited"),
        (status = 503, body = Problem, content_type = PROBLEM, description = "Backend unavailable"),
    ),
))]
async fn refresh(
    State(s): State<AuthService>,
    ctx: RequestContext,
    req: Result<ValidJson<RefreshRequest>, Problem>,
) -> Response {
    let req = match body(&s, req, "auth.refresh", &ctx).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    match s.refresh(&req.refresh_token, &ctx).await {
        Ok(pair) => no_store(Json(pair)),
        Err(e) => e.into_response(),
    }
}

#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/auth/logout", tag = "auth", operation_id = "logout",
    summary = "End the caller's session",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, body = Problem, content_type = PROBLEM, description = "Not authenticated"),
        (status = 503, body = Problem, content_type = PROBLEM, description = "Backend unavailable"),
    ),
))]
async fn logout(
    State(s): State<AuthService>,
    p: Principal,
    ctx: RequestContext,
) -> Result<StatusCode, AuthError> {
    s.logout(&p, &ctx).await.map(|()| StatusCode::NO_CONTENT)
}

#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/auth/sessions", tag = "auth", operation_id = "list_sessions",
    summary = "The caller's live sessions",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<SessionView>, description = "The caller's sessions"),
        (status = 401, body = Problem, content_type = PROBLEM, description = "Not authenticated"),
        (status = 503, body = Problem, content_type = PROBLEM, description = "Backend unavailable"),
    ),
))]
async fn sessions(State(s): State<AuthService>, p: Principal) -> Result<Response, AuthError> {
    Ok(no_store(Json(s.list_sessions(&p).await?)))
}

#[cfg_attr(feature = "openapi", utoipa::path(
    delete, path = "/auth/sessions/{id}", tag = "auth", operation_id = "revoke_session",
    summary = "End one of the caller's sessions",
    security(("bearer" = [])),
    params(SessionId),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, body = Problem, content_type = PROBLEM, description = "The id is not UTF-8 once percent-decoded"),
        (status = 401, body = Problem, content_type = PROBLEM, description = "Not authenticated"),
        (status = 404, body = Problem, content_type = PROBLEM, description = "No such session of the caller"),
        (status = 422, body = Problem, content_type = PROBLEM, description = "The id does not match its schema"),
        (status = 503, body = Problem, content_type = PROBLEM, description = "Backend unavailable"),
    ),
))]
async fn revoke(
    State(s): State<AuthService>,
    p: Principal,
    ctx: RequestContext,
    ValidPath(SessionId { id }): ValidPath<SessionId>,
) -> Result<StatusCode, AuthError> {
    s.revoke_session(&p, &id, &ctx)
        .await
        .map(|()| StatusCode::NO_CONTENT)
}

/// The `Authorization: Bearer` token of a request to a bootstrap route.
fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::InvalidEnrolmentToken)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() => {
            Ok(token.trim())
        }
        _ => Err(AuthError::InvalidEnrolmentToken),
    }
}

fn recovery_codes(codes: &[crate::totp::RecoveryCode]) -> Response {
    let recovery_codes = codes.iter().map(|c| c.expose().to_owned()).collect();
    no_store(Json(RecoveryCodes { recovery_codes }))
}

#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/auth/mfa/enroll", tag = "auth", operation_id = "mfa_enroll",
    summary = "Start TOTP enrolment or re-enrolment: the current password, and a current TOTP or recovery code while a second factor is enrolled (failures count toward the account lockout)",
    security(("bearer" = [])),
    request_body = EnrolRequest,
    responses(
        (status = 200, body = Enrolment, description = "Secret and otpauth URI (confirm with a code within 10 minutes)"),
        (status = 400, body = Problem, content_type = PROBLEM, description = "The body is not JSON"),
        (status = 401, body = Problem, content_type = PROBLEM, description = "Not authenticated, wrong password, or a current code is required (`mfa_required`)"),
        (status = 415, body = Problem, content_type = PROBLEM, description = "The body is not application/json"),
        (status = 422, body = Problem, content_type = PROBLEM, description = "The body does not match the schema; audited, not counted toward the lockout"),
        (status = 423, body = Problem, content_type = PROBLEM, description = "Account locked (Retry-After)"),
        (status = 429, body = Problem, content_type = PROBLEM, description = "Too many attempts from this address (Retry-After)"),
        (status = 503, body = Problem, content_type = PROBLEM, description = "Backend unavailable, or every password-hashing slot busy (Retry-After)"),
    ),
))]
async fn enroll(
    State(s): State<AuthService>,
    p: Principal,
    ctx: RequestContext,
    req: Result<ValidJson<EnrolRequest>, Problem>,
) -> Response {
    let req = match body(&s, req, "auth.mfa.enroll", &ctx).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    match s.mfa_enroll(&p, req, &ctx).await {
        Ok(enrolment) => no_store(Json(enrolment)),
        Err(e) => e.into_response(),
    }
}

#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/auth/mfa/verify", tag = "auth", operation_id = "mfa_verify",
    summary = "Confirm enrolment with a code; returns recovery codes once",
    security(("bearer" = [])),
    request_body = MfaCode,
    responses(
        (status = 200, body = RecoveryCodes, description = "Recovery codes, shown once"),
        (status = 400, body = Problem, content_type = PROBLEM, description = "The body is not JSON"),
        (status = 409, body = Problem, content_type = PROBLEM, description = "No enrolment in progress, or another request just completed it"),
        (status = 401, body = Problem, content_type = PROBLEM, description = "Not authenticated, or an invalid code (`mfa_required`)"),
        (status = 415, body = Problem, content_type = PROBLEM, description = "The body is not application/json"),
        (status = 422, body = Problem, content_type = PROBLEM, description = "The body does not match the schema"),
        (status = 503, body = Problem, content_type = PROBLEM, description = "Backend unavailable"),
    ),
))]
async fn verify(
    State(s): State<AuthService>,
    p: Principal,
    ctx: RequestContext,
    ValidJson(req): ValidJson<MfaCode>,
) -> Result<Response, AuthError> {
    Ok(recovery_codes(&s.mfa_verify(&p, &req.code, &ctx).await?))
}

#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/auth/mfa/bootstrap/enroll", tag = "auth", operation_id = "mfa_bootstrap_enroll",
    summary = "Start the first TOTP enrolment with the enrolment-only token a login returned",
    security(("enrolment_token" = [])),
    responses(
        (status = 200, body = Enrolment, description = "Secret and otpauth URI (confirm with a code within 10 minutes)"),
        (status = 401, body = Problem, content_type = PROBLEM, description = "Missing, invalid or expired enrolment token, or a second factor is already enrolled"),
        (status = 403, body = Problem, content_type = PROBLEM, description = "The tenant is inactive"),
        (status = 503, body = Problem, content_type = PROBLEM, description = "Backend unavailable"),
    ),
))]
async fn bootstrap_enroll(
    State(s): State<AuthService>,
    headers: HeaderMap,
    ctx: RequestContext,
) -> Result<Response, AuthError> {
    let token = bearer(&headers)?;
    Ok(no_store(Json(s.mfa_bootstrap_enroll(token, &ctx).await?)))
}

#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/auth/mfa/bootstrap/verify", tag = "auth", operation_id = "mfa_bootstrap_verify",
    summary = "Confirm the first enrolment with a code; returns recovery codes once (log in with a code afterwards)",
    security(("enrolment_token" = [])),
    request_body = MfaCode,
    responses(
        (status = 200, body = RecoveryCodes, description = "Recovery codes, shown once"),
        (status = 400, body = Problem, content_type = PROBLEM, description = "The body is not JSON"),
        (status = 409, body = Problem, content_type = PROBLEM, description = "No enrolment in progress, or another request just completed it"),
        (status = 401, body = Problem, content_type = PROBLEM, description = "Invalid code (`mfa_required`), or a missing, invalid or expired enrolment token (checked first)"),
        (status = 403, body = Problem, content_type = PROBLEM, description = "The tenant is inactive"),
        (status = 415, body = Problem, content_type = PROBLEM, description = "The body is not application/json"),
        (status = 422, body = Problem, content_type = PROBLEM, description = "The body does not match the schema"),
        (status = 503, body = Problem, content_type = PROBLEM, description = "Backend unavailable"),
    ),
))]
async fn bootstrap_verify(
    State(s): State<AuthService>,
    headers: HeaderMap,
    ctx: RequestContext,
    req: Result<ValidJson<MfaCode>, Problem>,
) -> Result<Response, Response> {
    // The token first: without one, the body's shape is nobody's business.
    let token = bearer(&headers).map_err(IntoResponse::into_response)?;
    let ValidJson(req) = req.map_err(IntoResponse::into_response)?;
    s.mfa_bootstrap_verify(token, &req.code, &ctx)
        .await
        .map(|codes| recovery_codes(&codes))
        .map_err(IntoResponse::into_response)
}

async fn administer(
    s: &AuthService,
    admin: &Principal,
    username: &str,
    action: AccountAction,
    ctx: &RequestContext,
) -> Result<StatusCode, AuthError> {
    s.administer(admin, username, action, ctx)
        .await
        .map(|()| StatusCode::NO_CONTENT)
}

#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/auth/users/{username}/disable", tag = "auth", operation_id = "disable_user",
    summary = "Disable an account and end its sessions (`user:manage`)",
    security(("bearer" = [])),
    params(Username),
    responses(
        (status = 204, description = "Done (audited)"),
        (status = 400, body = Problem, content_type = PROBLEM, description = "The administrator's own account, or a username that is not UTF-8 once percent-decoded"),
        (status = 401, body = Problem, content_type = PROBLEM, description = "Not authenticated"),
        (status = 403, body = Problem, content_type = PROBLEM, description = "Permission `user:manage` not granted"),
        (status = 404, body = Problem, content_type = PROBLEM, description = "No such user (or a user of another tenant)"),
        (status = 422, body = Problem, content_type = PROBLEM, description = "The username does not match its schema (over 256 characters)"),
        (status = 503, body = Problem, content_type = PROBLEM, description = "Backend unavailable"),
    ),
))]
async fn disable_user(
    State(s): State<AuthService>,
    p: Principal,
    ctx: RequestContext,
    ValidPath(u): ValidPath<Username>,
) -> Result<StatusCode, AuthError> {
    administer(&s, &p, &u.username, AccountAction::Disable, &ctx).await
}

#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/auth/users/{username}/enable", tag = "auth", operation_id = "enable_user",
    summary = "Enable a disabled account (`user:manage`)",
    security(("bearer" = [])),
    params(Username),
    responses(
        (status = 204, description = "Done (audited)"),
        (status = 400, body = Problem, content_type = PROBLEM, description = "A username that is not UTF-8 once percent-decoded"),
        (status = 401, body = Problem, content_type = PROBLEM, description = "Not authenticated"),
        (status = 403, body = Problem, content_type = PROBLEM, description = "Permission `user:manage` not granted"),
        (status = 404, body = Problem, content_type = PROBLEM, description = "No such user (or a user of another tenant)"),
        (status = 422, body = Problem, content_type = PROBLEM, description = "The username does not match its schema (over 256 characters)"),
        (status = 503, body = Problem, content_type = PROBLEM, description = "Backend unavailable"),
    ),
))]
async fn enable_user(
    State(s): State<AuthService>,
    p: Principal,
    ctx: RequestContext,
    ValidPath(u): ValidPath<Username>,
) -> Result<StatusCode, AuthError> {
    administer(&s, &p, &u.username, AccountAction::Enable, &ctx).await
}

#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/auth/users/{username}/mfa/reset", tag = "auth", operation_id = "reset_user_mfa",
    summary = "Forget a user's second factor and end their sessions; a user whose role requires one enrols anew at the next login (`user:manage`)",
    security(("bearer" = [])),
    params(Username),
    responses(
        (status = 204, description = "Done (audited)"),
        (status = 400, body = Problem, content_type = PROBLEM, description = "The administrator's own account, or a username that is not UTF-8 once percent-decoded"),
        (status = 401, body = Problem, content_type = PROBLEM, description = "Not authenticated"),
        (status = 403, body = Problem, content_type = PROBLEM, description = "Permission `user:manage` not granted"),
        (status = 404, body = Problem, content_type = PROBLEM, description = "No such user (or a user of another tenant)"),
        (status = 422, body = Problem, content_type = PROBLEM, description = "The username does not match its schema (over 256 characters)"),
        (status = 503, body = Problem, content_type = PROBLEM, description = "Backend unavailable"),
    ),
))]
async fn reset_user_mfa(
    State(s): State<AuthService>,
    p: Principal,
    ctx: RequestContext,
    ValidPath(u): ValidPath<Username>,
) -> Result<StatusCode, AuthError> {
    administer(&s, &p, &u.username, AccountAction::ResetMfa, &ctx).await
}

#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/auth/password", tag = "auth", operation_id = "change_password",
    summary = "Change the caller's password; ends every session",
    security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, body = Problem, content_type = PROBLEM, description = "The new password violates the configured policy (the detail lists every rule broken), or the body is not JSON"),
        (status = 401, body = Problem, content_type = PROBLEM, description = "Not authenticated, or a wrong current password (counts toward the lockout; the guess that locks the account ends every session)"),
        (status = 415, body = Problem, content_type = PROBLEM, description = "The body is not application/json"),
        (status = 422, body = Problem, content_type = PROBLEM, description = "The body does not match the schema"),
        (status = 423, body = Problem, content_type = PROBLEM, description = "Account locked (Retry-After)"),
        (status = 429, body = Problem, content_type = PROBLEM, description = "Too many attempts from this address (Retry-After)"),
        (status = 503, body = Problem, content_type = PROBLEM, description = "Backend unavailable, or every password-hashing slot busy (Retry-After)"),
    ),
))]
async fn change_password(
    State(s): State<AuthService>,
    p: Principal,
    ctx: RequestContext,
    ValidJson(body): ValidJson<PasswordChange>,
) -> Result<StatusCode, AuthError> {
    s.change_password(&p, body.current_password, body.new_password, &ctx)
        .await
        .map(|()| StatusCode::NO_CONTENT)
}

/// Secrets and tokens must not be cached by intermediaries.
fn no_store(body: impl IntoResponse) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r
}

/// The authentication routes, including `GET /.well-known/jwks.json`.
pub fn router(service: AuthService) -> Router {
    let jwks = crate::jwt::jwks_router(service.keys().clone());
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/sessions", get(sessions))
        .route("/auth/sessions/{id}", delete(revoke))
        .route("/auth/mfa/enroll", post(enroll))
        .route("/auth/mfa/verify", post(verify))
        .route("/auth/mfa/bootstrap/enroll", post(bootstrap_enroll))
        .route("/auth/mfa/bootstrap/verify", post(bootstrap_verify))
        .route("/auth/password", post(change_password))
        .with_state(service)
        .merge(jwks)
}

/// The account administration routes, each behind `guard`: a layer that
/// lets through only callers holding [`ADMIN_PERMISSION`] (in the kailash
/// gateway, kailash-access's `RequirePermissionLayer`). The guard is a
/// parameter, not an option, so the routes cannot be served unguarded by
/// mistake; serve them behind the [`JwtAuthLayer`](crate::layer::JwtAuthLayer).
/// The handlers add the rest: a tenant's administrator reaches only that
/// tenant's users (see [`AuthService::administer`]).
pub fn admin_router<L>(service: AuthService, guard: L) -> Router
where
    L: Layer<Route> + Clone + Send + Sync + 'static,
    L::Service: Service<Request> + Clone + Send + Sync + 'static,
    <L::Service as Service<Request>>::Response: IntoResponse + 'static,
    <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
    <L::Service as Service<Request>>::Future: Send + 'static,
{
    Router::new()
        .route("/auth/users/{username}/disable", post(disable_user))
        .route("/auth/users/{username}/enable", post(enable_user))
        .route("/auth/users/{username}/mfa/reset", post(reset_user_mfa))
        .route_layer(guard)
        .with_state(service)
}

/// The OpenAPI 3.1 document of [`router`]'s routes (feature `openapi`), to
/// merge into a gateway's: derived from the request and response types the
/// handlers use, so it states exactly what they enforce. It defines the
/// `enrolment_token` security scheme of the bootstrap routes; `bearer` (an
/// access token) is the gateway's.
#[cfg(feature = "openapi")]
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    AuthApi::openapi()
}

/// The OpenAPI 3.1 document of the [`admin_router`] routes (feature
/// `openapi`), to merge into a gateway's document when it serves them.
#[cfg(feature = "openapi")]
pub fn admin_openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    AdminApi::openapi()
}

#[cfg(feature = "openapi")]
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "kailash-auth"),
    paths(
        login,
        refresh,
        logout,
        sessions,
        revoke,
        enroll,
        verify,
        bootstrap_enroll,
        bootstrap_verify,
        change_password,
        crate::jwt::axum::jwks_handler,
    ),
    components(schemas(Problem)),
    modifiers(&EnrolmentTokenScheme),
)]
struct AuthApi;

#[cfg(feature = "openapi")]
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "kailash-auth administration"),
    paths(disable_user, enable_user, reset_user_mfa),
    components(schemas(Problem))
)]
struct AdminApi;

/// Adds the `enrolment_token` security scheme.
#[cfg(feature = "openapi")]
struct EnrolmentTokenScheme;

#[cfg(feature = "openapi")]
impl utoipa::Modify for EnrolmentTokenScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        doc.components.get_or_insert_with(Default::default).add_security_scheme(
            "enrolment_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT (typ mfa-enrol+jwt)")
                    .description(Some(
                        "The enrolment-only token of a login that requires a second factor not yet enrolled",
                    ))
                    .build(),
            ),
        );
    }
}
