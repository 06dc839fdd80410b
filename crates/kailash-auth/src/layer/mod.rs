//! [`JwtAuthLayer`]: bearer-token authentication as a tower layer.
//!
//! The layer reads exactly one credential — the `Authorization: Bearer`
//! header or, optionally, a named cookie; never a token in the URL, where
//! proxies and browser histories would keep it — verifies it with a
//! [`Verifier`](crate::jwt::Verifier) (through an optional
//! [`TokenCache`](crate::jwt::TokenCache)), optionally asks a
//! [`SessionCheck`] whether the session is still alive, and inserts the
//! [`Principal`](kailash_core::Principal) into the request extensions.
//!
//! Failures are `401` problem+json responses with a `WWW-Authenticate: Bearer`
//! challenge (`error="invalid_request"` or `error="invalid_token"`; a plain
//! `Bearer` when no credentials were sent); an unavailable session backend is
//! a `503` (fail closed). Every failure can be recorded to an
//! [`AuditSink`](kailash_core::audit::AuditSink) as `auth.token` with a fixed
//! reason phrase — never the token.
//!
//! Use it in front of every route that needs to know who is calling; list
//! the routes that must work anonymously (health, login, JWKS) with
//! [`public_path`](JwtAuthLayer::public_path). It matters against forged
//! and replayed tokens: verification follows RFC 8725 (algorithm pinned to
//! the key, `typ`, `iss`, `aud` and expiry required), a token is read from
//! exactly one place so a proxy and the service cannot disagree on which
//! was meant, and the session check makes a logged-out or revoked token
//! fail at once instead of living until it expires.
//!
//! Build the layer with [`JwtAuthLayer::new`] (the verifier is required) and
//! chained setters:
//!
//! ```
//! use std::sync::Arc;
//! use http::{Request, Response, StatusCode};
//! use kailash_auth::jwt::{Algorithm, Claims, KeySet, SigningKey, TokenType, Verifier};
//! use kailash_auth::layer::JwtAuthLayer;
//! use kailash_core::Principal;
//! use kailash_core::clock::{Clock, SystemClock};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let clock: Arc<dyn Clock> = Arc::new(SystemClock);
//! let keys = Arc::new(KeySet::new(SigningKey::generate(Algorithm::ES256, "k1")?, clock.clone()));
//! let verifier = Verifier::builder(keys.clone(), "https://id.example", "api").clock(clock.clone()).build();
//!
//! let svc = ServiceBuilder::new()
//!     .layer(JwtAuthLayer::new(verifier).public_path("/health"))
//!     .service(service_fn(|req: Request<()>| async move {
//!         let who = req.extensions().get::<Principal>().map(|p| p.subject().to_owned());
//!         Ok::<_, std::convert::Infallible>(Response::new(who.unwrap_or_default()))
//!     }));
//!
//! let now = clock.now().as_second();
//! let token = keys.issue(&Claims::new("https://id.example", "alice", "api", now, now + 300), TokenType::Access)?;
//! let req = Request::builder().uri("/me").header("authorization", format!("Bearer {token}")).body(())?;
//! let res = svc.clone().oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! let res = svc.oneshot(Request::builder().uri("/me").body(())?).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()["www-authenticate"], "Bearer");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod authenticate;
mod config;
mod credential;
mod failure;
mod future;
#[allow(clippy::module_inception)]
mod layer;
mod owner;
mod service;
mod session_check;

pub use authenticate::{AuthenticateError, CredentialError};
pub use future::ResponseFuture;
pub use layer::JwtAuthLayer;
pub use service::JwtAuth;
pub use session_check::{SessionCheck, SessionCheckError, SessionTouch};
