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
//! [`admin_router`] serves the account administration routes, behind a
//! permission check the caller supplies ([`ADMIN_PERMISSION`]):
//!
//! | route | what |
//! |---|---|
//! | `POST /auth/users/{username}/disable` | disables the account; ends its sessions |
//! | `POST /auth/users/{username}/enable` | enables it again |
//! | `POST /auth/users/{username}/mfa/reset` | forgets its second factor; ends its sessions |

use std::convert::Infallible;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{Route, delete, get, post};
use axum::{Json, Router};
use kailash_core::context::RequestContext;
use kailash_core::{Principal, Problem};
use serde::Deserialize;
use serde_json::json;
use tower::{Layer, Service};

use crate::service::{AccountAction, AuthError, AuthService, EnrolRequest, LoginRequest};

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
        AuthError::NotFound => Problem::not_found(),
        AuthError::Unavailable => {
            Problem::service_unavailable("authentication is temporarily unavailable")
        }
        AuthError::Busy { retry_after } => {
            Problem::service_unavailable("too many password checks at once; retry shortly")
                .with_retry_after(*retry_after)
                .with_extension("limit", "password_hashing")
        }
        AuthError::Internal => Problem::internal(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

async fn login(
    State(s): State<AuthService>,
    ctx: RequestContext,
    Json(body): Json<LoginRequest>,
) -> Response {
    match s.login(body, &ctx).await {
        Ok(outcome) => no_store(Json(outcome)),
        Err(e) => e.into_response(),
    }
}

async fn refresh(
    State(s): State<AuthService>,
    ctx: RequestContext,
    Json(body): Json<RefreshBody>,
) -> Response {
    match s.refresh(&body.refresh_token, &ctx).await {
        Ok(pair) => no_store(Json(pair)),
        Err(e) => e.into_response(),
    }
}

async fn logout(
    State(s): State<AuthService>,
    p: Principal,
    ctx: RequestContext,
) -> Result<StatusCode, AuthError> {
    s.logout(&p, &ctx).await.map(|()| StatusCode::NO_CONTENT)
}

async fn sessions(State(s): State<AuthService>, p: Principal) -> Result<Response, AuthError> {
    Ok(no_store(Json(s.list_sessions(&p).await?)))
}

async fn revoke(
    State(s): State<AuthService>,
    p: Principal,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, AuthError> {
    s.revoke_session(&p, &id, &ctx)
        .await
        .map(|()| StatusCode::NO_CONTENT)
}

/// The body, or a `400` with a fixed phrase (serde's message may quote
/// the input, which may be a password).
fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, AuthError> {
    body.map(|Json(b)| b).map_err(|_| {
        AuthError::BadRequest("the body must be a JSON object with the documented fields".into())
    })
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
    let codes: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
    no_store(Json(json!({ "recovery_codes": codes })))
}

async fn enroll(
    State(s): State<AuthService>,
    p: Principal,
    ctx: RequestContext,
    req: Result<Json<EnrolRequest>, JsonRejection>,
) -> Result<Response, AuthError> {
    let req = body(req)?;
    Ok(no_store(Json(s.mfa_enroll(&p, req, &ctx).await?)))
}

async fn verify(
    State(s): State<AuthService>,
    p: Principal,
    ctx: RequestContext,
    req: Result<Json<CodeBody>, JsonRejection>,
) -> Result<Response, AuthError> {
    let req = body(req)?;
    Ok(recovery_codes(&s.mfa_verify(&p, &req.code, &ctx).await?))
}

async fn bootstrap_enroll(
    State(s): State<AuthService>,
    headers: HeaderMap,
    ctx: RequestContext,
) -> Result<Response, AuthError> {
    let token = bearer(&headers)?;
    Ok(no_store(Json(s.mfa_bootstrap_enroll(token, &ctx).await?)))
}

async fn bootstrap_verify(
    State(s): State<AuthService>,
    headers: HeaderMap,
    ctx: RequestContext,
    req: Result<Json<CodeBody>, JsonRejection>,
) -> Result<Response, AuthError> {
    let token = bearer(&headers)?;
    let req = body(req)?;
    Ok(recovery_codes(
        &s.mfa_bootstrap_verify(token, &req.code, &ctx).await?,
    ))
}

async fn administer(
    s: &AuthService,
    admin: &Principal,
    username: Result<Path<String>, PathRejection>,
    action: AccountAction,
    ctx: &RequestContext,
) -> Result<StatusCode, AuthError> {
    // A username that is not UTF-8 once percent-decoded is no user's; the
    // rejection's own text would echo it, so a fixed phrase instead.
    let Path(username) =
        username.map_err(|_| AuthError::BadRequest("the username must be UTF-8 text".into()))?;
    s.administer(admin, &username, action, ctx)
        .await
        .map(|()| StatusCode::NO_CONTENT)
}

async fn disable_user(
    State(s): State<AuthService>,
    p: Principal,
    ctx: RequestContext,
    username: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, AuthError> {
    administer(&s, &p, username, AccountAction::Disable, &ctx).await
}

async fn enable_user(
    State(s): State<AuthService>,
    p: Principal,
    ctx: RequestContext,
    username: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, AuthError> {
    administer(&s, &p, username, AccountAction::Enable, &ctx).await
}

async fn reset_user_mfa(
    State(s): State<AuthService>,
    p: Principal,
    ctx: RequestContext,
    username: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, AuthError> {
    administer(&s, &p, username, AccountAction::ResetMfa, &ctx).await
}

async fn change_password(
    State(s): State<AuthService>,
    p: Principal,
    ctx: RequestContext,
    Json(body): Json<PasswordBody>,
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

/// OpenAPI 3.1 `paths` (and component schemas) of these routes, to merge
/// into a gateway's document.
pub fn openapi() -> serde_json::Value {
    let problem = |d: &str| json!({ "description": d, "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } });
    let bearer = json!([{ "bearer": [] }]);
    let pair = json!({ "description": "A token pair", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/TokenPair" } } } });
    let login_ok = json!({ "description": "A token pair; or, for a user whose role requires a second factor that is not enrolled, an enrolment-only token (no session)",
        "content": { "application/json": { "schema": { "oneOf": [ { "$ref": "#/components/schemas/TokenPair" }, { "$ref": "#/components/schemas/EnrolmentGrant" } ] } } } });
    let enrolment = json!({ "description": "Secret and otpauth URI (confirm with a code within 10 minutes)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Enrolment" } } } });
    let recovery = json!({ "description": "Recovery codes, shown once", "content": { "application/json": { "schema": { "type": "object", "properties": { "recovery_codes": { "type": "array", "items": { "type": "string" } } } } } } });
    let code_body = json!({ "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["code"], "additionalProperties": false, "properties": { "code": { "type": "string", "maxLength": 64 } } } } } });
    let enrolment_token = json!([{ "enrolment_token": [] }]);
    json!({
        "openapi": "3.1.0",
        "info": { "title": "kailash-auth", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/auth/login": { "post": {
                "tags": ["auth"], "operationId": "login", "summary": "Log in with username, password and, when required, a TOTP or recovery code",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/LoginRequest" } } } },
                "responses": { "200": login_ok, "400": problem("A field is longer than its limit (username 256 bytes, password 1024, codes 64)"), "401": problem("Invalid credentials, or a second factor is required (`mfa_required`)"),
                    "403": problem("Concurrent session limit reached, or the tenant is inactive"), "423": problem("Account locked (Retry-After)"),
                    "429": problem("Too many attempts from this address (Retry-After)"), "503": problem("Backend unavailable, or every password-hashing slot busy (Retry-After)") } } },
            "/auth/refresh": { "post": {
                "tags": ["auth"], "operationId": "refresh", "summary": "Rotate a refresh token; reuse of a rotated token revokes its family and session",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["refresh_token"], "properties": { "refresh_token": { "type": "string" } }, "additionalProperties": false } } } },
                "responses": { "200": pair, "400": problem("The token is longer than 8 KiB"), "401": problem("Invalid, expired, rotated or revoked refresh token; or the session lacks a second factor the user's roles now require (`mfa_required`)"), "503": problem("Backend unavailable") } } },
            "/auth/logout": { "post": { "tags": ["auth"], "operationId": "logout", "summary": "End the caller's session", "security": bearer,
                "responses": { "204": { "description": "Logged out" }, "401": problem("Not authenticated") } } },
            "/auth/sessions": { "get": { "tags": ["auth"], "operationId": "list_sessions", "summary": "The caller's live sessions", "security": bearer,
                "responses": { "200": { "description": "Sessions", "content": { "application/json": { "schema": { "type": "array", "items": { "$ref": "#/components/schemas/Session" } } } } }, "401": problem("Not authenticated") } } },
            "/auth/sessions/{id}": { "delete": { "tags": ["auth"], "operationId": "revoke_session", "summary": "End one of the caller's sessions", "security": bearer,
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "204": { "description": "Revoked" }, "401": problem("Not authenticated"), "404": problem("No such session of the caller") } } },
            "/auth/mfa/enroll": { "post": { "tags": ["auth"], "operationId": "mfa_enroll", "summary": "Start TOTP enrolment or re-enrolment: the current password, and a current TOTP or recovery code while a second factor is enrolled (failures count toward the account lockout)", "security": bearer,
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/EnrolRequest" } } } },
                "responses": { "200": enrolment, "400": problem("Malformed body"), "401": problem("Not authenticated, wrong password, or a current code is required (`mfa_required`)"),
                    "423": problem("Account locked (Retry-After)"), "429": problem("Too many attempts from this address (Retry-After)"), "503": problem("Backend unavailable") } } },
            "/auth/mfa/verify": { "post": { "tags": ["auth"], "operationId": "mfa_verify", "summary": "Confirm enrolment with a code; returns recovery codes once", "security": bearer,
                "requestBody": code_body,
                "responses": { "200": recovery, "400": problem("No enrolment in progress, or a malformed body"), "401": problem("Invalid code") } } },
            "/auth/mfa/bootstrap/enroll": { "post": { "tags": ["auth"], "operationId": "mfa_bootstrap_enroll", "summary": "Start the first TOTP enrolment with the enrolment-only token a login returned", "security": enrolment_token,
                "responses": { "200": enrolment, "401": problem("Missing, invalid or expired enrolment token, or a second factor is already enrolled"), "403": problem("The tenant is inactive") } } },
            "/auth/mfa/bootstrap/verify": { "post": { "tags": ["auth"], "operationId": "mfa_bootstrap_verify", "summary": "Confirm the first enrolment with a code; returns recovery codes once (log in with a code afterwards)", "security": enrolment_token,
                "requestBody": code_body,
                "responses": { "200": recovery, "400": problem("No enrolment in progress, or a malformed body"), "401": problem("Invalid code, or a missing, invalid or expired enrolment token") } } },
            "/auth/password": { "post": { "tags": ["auth"], "operationId": "change_password", "summary": "Change the caller's password; ends every session", "security": bearer,
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["current_password", "new_password"], "properties": { "current_password": { "type": "string" }, "new_password": { "type": "string" } } } } } },
                "responses": { "204": { "description": "Changed" }, "400": problem("The new password violates the policy, or a password is longer than 1024 bytes"), "401": problem("Wrong current password (counts toward the lockout; the guess that locks the account ends every session)"),
                    "423": problem("Account locked (Retry-After)"), "429": problem("Too many attempts from this address (Retry-After)"), "503": problem("Backend unavailable, or every password-hashing slot busy (Retry-After)") } } },
            "/.well-known/jwks.json": { "get": { "tags": ["auth"], "operationId": "jwks", "summary": "Public signing keys (JWKS)",
                "responses": { "200": { "description": "JWK set", "content": { "application/json": { "schema": { "type": "object" } } } } } } }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
                "enrolment_token": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT (typ mfa-enrol+jwt)", "description": "The enrolment-only token of a login that requires a second factor not yet enrolled" } },
            "schemas": {
                "LoginRequest": { "type": "object", "required": ["username", "password"], "additionalProperties": false, "properties": {
                    "username": { "type": "string" }, "password": { "type": "string", "format": "password" },
                    "totp": { "type": "string" }, "recovery_code": { "type": "string" } } },
                "EnrolRequest": { "type": "object", "required": ["password"], "additionalProperties": false, "properties": {
                    "password": { "type": "string", "format": "password" }, "totp": { "type": "string", "maxLength": 64 }, "recovery_code": { "type": "string", "maxLength": 64 } } },
                "Enrolment": { "type": "object", "properties": { "secret": { "type": "string" }, "otpauth_uri": { "type": "string" } } },
                "EnrolmentGrant": { "type": "object", "properties": { "mfa_enrolment_required": { "type": "boolean", "const": true },
                    "enrolment_token": { "type": "string" }, "token_type": { "type": "string", "const": "Bearer" }, "expires_in": { "type": "integer" } } },
                "TokenPair": { "type": "object", "properties": { "access_token": { "type": "string" }, "refresh_token": { "type": "string" },
                    "token_type": { "type": "string", "const": "Bearer" }, "expires_in": { "type": "integer" } } },
                "Session": { "type": "object", "properties": { "id": { "type": "string" }, "current": { "type": "boolean" },
                    "created_at": { "type": "string", "format": "date-time" }, "last_seen": { "type": "string", "format": "date-time" },
                    "expires_at": { "type": "string", "format": "date-time" }, "client_ip": { "type": ["string", "null"] } } }
            }
        }
    })
}

/// OpenAPI 3.1 `paths` of the [`admin_router`] routes, to merge into a
/// gateway's document when it serves them.
pub fn admin_openapi() -> serde_json::Value {
    let problem = |d: &str| json!({ "description": d, "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } });
    let op = |id: &str, summary: &str| {
        json!({ "post": { "tags": ["auth"], "operationId": id, "summary": summary, "security": [{ "bearer": [] }],
            "parameters": [{ "name": "username", "in": "path", "required": true, "schema": { "type": "string", "maxLength": crate::bounds::MAX_USERNAME_BYTES } }],
            "responses": { "204": { "description": "Done (audited)" }, "400": problem("Username too long, or the administrator's own account"),
                "401": problem("Not authenticated"), "403": problem("Permission `user:manage` not granted"),
                "404": problem("No such user (or a user of another tenant)"), "503": problem("Backend unavailable") } } })
    };
    json!({
        "openapi": "3.1.0",
        "info": { "title": "kailash-auth administration", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/auth/users/{username}/disable": op("disable_user", "Disable an account and end its sessions (`user:manage`)"),
            "/auth/users/{username}/enable": op("enable_user", "Enable a disabled account (`user:manage`)"),
            "/auth/users/{username}/mfa/reset": op("reset_user_mfa", "Forget a user's second factor and end their sessions; a user whose role requires one enrols anew at the next login (`user:manage`)")
        }
    })
}
