//! The authentication routes (feature `axum`).
//!
//! | route | auth | what |
//! |---|---|---|
//! | `POST /auth/login` | public | `{username, password, totp?, recovery_code?}` → token pair |
//! | `POST /auth/refresh` | public | `{refresh_token}` → new pair (the old refresh token is dead) |
//! | `POST /auth/logout` | bearer | ends the caller's session |
//! | `GET /auth/sessions` | bearer | the caller's live sessions |
//! | `DELETE /auth/sessions/{id}` | bearer | ends one of the caller's sessions |
//! | `POST /auth/mfa/enroll` | bearer | a new TOTP secret and `otpauth://` URI |
//! | `POST /auth/mfa/verify` | bearer | `{code}` → activates it; recovery codes, shown once |
//! | `POST /auth/password` | bearer | `{current_password, new_password}`; ends every session |
//! | `GET /.well-known/jwks.json` | public | the public signing keys |
//!
//! Put [`PUBLIC_PATHS`] on the [`JwtAuthLayer`](crate::layer::JwtAuthLayer)
//! as public paths; the kailash gateway does this for you.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use kailash_core::context::RequestContext;
use kailash_core::{Principal, Problem};
use serde::Deserialize;
use serde_json::json;

use crate::service::{AuthError, AuthService, LoginRequest};

/// Routes that must be reachable without an access token.
pub const PUBLIC_PATHS: [&str; 3] = ["/auth/login", "/auth/refresh", "/.well-known/jwks.json"];

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
        Ok(pair) => no_store(Json(pair)),
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

async fn enroll(
    State(s): State<AuthService>,
    p: Principal,
    ctx: RequestContext,
) -> Result<Response, AuthError> {
    Ok(no_store(Json(s.mfa_enroll(&p, &ctx).await?)))
}

async fn verify(
    State(s): State<AuthService>,
    p: Principal,
    ctx: RequestContext,
    Json(body): Json<CodeBody>,
) -> Result<Response, AuthError> {
    let codes = s.mfa_verify(&p, &body.code, &ctx).await?;
    let codes: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
    Ok(no_store(Json(json!({ "recovery_codes": codes }))))
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
        .route("/auth/password", post(change_password))
        .with_state(service)
        .merge(jwks)
}

/// OpenAPI 3.1 `paths` (and component schemas) of these routes, to merge
/// into a gateway's document.
pub fn openapi() -> serde_json::Value {
    let problem = |d: &str| json!({ "description": d, "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } });
    let bearer = json!([{ "bearer": [] }]);
    let pair = json!({ "description": "A token pair", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/TokenPair" } } } });
    json!({
        "openapi": "3.1.0",
        "info": { "title": "kailash-auth", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/auth/login": { "post": {
                "tags": ["auth"], "operationId": "login", "summary": "Log in with username, password and, when required, a TOTP or recovery code",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/LoginRequest" } } } },
                "responses": { "200": pair, "400": problem("A field is longer than its limit (username 256 bytes, password 1024, codes 64)"), "401": problem("Invalid credentials, or a second factor is required (`mfa_required`)"),
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
            "/auth/mfa/enroll": { "post": { "tags": ["auth"], "operationId": "mfa_enroll", "summary": "Start TOTP enrolment", "security": bearer,
                "responses": { "200": { "description": "Secret and otpauth URI", "content": { "application/json": { "schema": { "type": "object", "properties": { "secret": { "type": "string" }, "otpauth_uri": { "type": "string" } } } } } }, "401": problem("Not authenticated") } } },
            "/auth/mfa/verify": { "post": { "tags": ["auth"], "operationId": "mfa_verify", "summary": "Confirm enrolment with a code; returns recovery codes once", "security": bearer,
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["code"], "properties": { "code": { "type": "string" } } } } } },
                "responses": { "200": { "description": "Recovery codes", "content": { "application/json": { "schema": { "type": "object", "properties": { "recovery_codes": { "type": "array", "items": { "type": "string" } } } } } } }, "400": problem("No enrolment in progress"), "401": problem("Invalid code") } } },
            "/auth/password": { "post": { "tags": ["auth"], "operationId": "change_password", "summary": "Change the caller's password; ends every session", "security": bearer,
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["current_password", "new_password"], "properties": { "current_password": { "type": "string" }, "new_password": { "type": "string" } } } } } },
                "responses": { "204": { "description": "Changed" }, "400": problem("The new password violates the policy, or a password is longer than 1024 bytes"), "401": problem("Wrong current password (counts toward the lockout; the guess that locks the account ends every session)"),
                    "423": problem("Account locked (Retry-After)"), "429": problem("Too many attempts from this address (Retry-After)"), "503": problem("Backend unavailable, or every password-hashing slot busy (Retry-After)") } } },
            "/.well-known/jwks.json": { "get": { "tags": ["auth"], "operationId": "jwks", "summary": "Public signing keys (JWKS)",
                "responses": { "200": { "description": "JWK set", "content": { "application/json": { "schema": { "type": "object" } } } } } } }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
            "schemas": {
                "LoginRequest": { "type": "object", "required": ["username", "password"], "additionalProperties": false, "properties": {
                    "username": { "type": "string" }, "password": { "type": "string", "format": "password" },
                    "totp": { "type": "string" }, "recovery_code": { "type": "string" } } },
                "TokenPair": { "type": "object", "properties": { "access_token": { "type": "string" }, "refresh_token": { "type": "string" },
                    "token_type": { "type": "string", "const": "Bearer" }, "expires_in": { "type": "integer" } } },
                "Session": { "type": "object", "properties": { "id": { "type": "string" }, "current": { "type": "boolean" },
                    "created_at": { "type": "string", "format": "date-time" }, "last_seen": { "type": "string", "format": "date-time" },
                    "expires_at": { "type": "string", "format": "date-time" }, "client_ip": { "type": ["string", "null"] } } }
            }
        }
    })
}
