//! Authenticating a credential outside a request: the same verification,
//! cache and session check as the layer, for protocols that carry the
//! token elsewhere (a WebSocket subprotocol, a `refresh` message on an open
//! socket).

use kailash_core::Principal;

use super::SessionCheckError;
use super::config::Config;
use super::credential::{Cred, credential};
use crate::jwt::VerifyError;

/// Why [`JwtAuthLayer::authenticate`](super::JwtAuthLayer::authenticate)
/// refused a credential. The messages are fixed phrases: never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthenticateError {
    /// The token did not verify (malformed, bad signature, expired, …).
    #[error("invalid token: {0}")]
    Token(#[source] VerifyError),
    /// The token verified but its session is not live (revoked, expired),
    /// or the session store cannot answer
    /// ([`SessionCheckError::Unavailable`]: fail closed).
    #[error("session refused: {0}")]
    Session(#[source] SessionCheckError),
}

/// Why [`JwtAuthLayer::credential`](super::JwtAuthLayer::credential) found
/// no usable credential in a request's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct CredentialError {
    reason: &'static str,
}

impl CredentialError {
    /// A fixed phrase saying what was wrong (`multiple credentials`,
    /// `malformed bearer credential`, …); never the credential.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

pub(super) fn header_credential<'a>(
    config: &Config,
    headers: &'a http::HeaderMap,
) -> Result<Option<&'a str>, CredentialError> {
    match credential(config, headers) {
        Cred::Token(t) => Ok(Some(t)),
        Cred::Missing => Ok(None),
        Cred::Invalid(reason) => Err(CredentialError { reason }),
    }
}

pub(super) async fn authenticate(
    config: &Config,
    token: &str,
) -> Result<Principal, AuthenticateError> {
    // A child span of the request's when traces are exported (DEBUG: free
    // when only logs at INFO listen).
    let span = tracing::debug_span!("auth.authenticate");
    tracing::Instrument::instrument(authenticate_inner(config, token), span).await
}

async fn authenticate_inner(config: &Config, token: &str) -> Result<Principal, AuthenticateError> {
    let principal = match config.cache.as_ref().and_then(|c| c.get(token)) {
        Some(p) => p,
        None => {
            let claims = config
                .verifier
                .verify(token)
                .await
                .map_err(AuthenticateError::Token)?;
            let p = claims.to_principal();
            if let Some(cache) = &config.cache {
                cache.insert(token, p.clone(), claims.exp);
            }
            p
        }
    };
    if let Some(session) = &config.session {
        let answer = match session.check_now(&principal) {
            Some(answer) => answer,
            None => session.check(&principal).await,
        };
        answer.map_err(AuthenticateError::Session)?;
    }
    Ok(principal)
}
