//! [`TokenPair`]: the access and refresh tokens that login and refresh hand
//! out, and how they are signed.

use serde::Serialize;

use super::{AuthError, AuthService};
use crate::jwt::{Claims, TokenType};
use crate::users::UserRecord;

/// Tokens handed to a client.
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
pub struct TokenPair {
    /// The access token (`at+jwt`).
    pub access_token: String,
    /// The refresh token (`rt+jwt`), rotated on every use.
    pub refresh_token: String,
    /// Always `Bearer`.
    #[cfg_attr(feature = "axum", schema(schema_with = super::schemas::bearer))]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

impl AuthService {
    /// Signs an access token for `user` in session `session_id` and a
    /// refresh token naming generation `refresh_jti` of `family`; neither
    /// outlives the session.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn issue_pair(
        &self,
        user: &UserRecord,
        session_id: &str,
        session_expires: jiff::Timestamp,
        family: &str,
        refresh_jti: &str,
        refresh_expires: jiff::Timestamp,
    ) -> Result<TokenPair, AuthError> {
        let c = &self.inner.config;
        let now = self.inner.clock.now().as_second();
        let ttl = i64::try_from(c.access_token_ttl.as_secs()).unwrap_or(i64::MAX);
        let exp = now.saturating_add(ttl).min(session_expires.as_second());
        let mut access = Claims::new(
            c.issuer.clone(),
            user.subject.clone(),
            c.audience.clone(),
            now,
            exp,
        );
        access.jti = Some(crate::ids::random().ok_or(AuthError::Unavailable)?);
        access.tid = user.tenant.clone();
        access.roles = user.roles.clone();
        access.attrs = user.attributes.clone();
        access.sid = Some(session_id.to_owned());
        let mut refresh = Claims::new(
            c.issuer.clone(),
            user.subject.clone(),
            c.audience.clone(),
            now,
            refresh_expires.as_second().min(session_expires.as_second()),
        );
        // The refresh token names its family and generation: `<family>.<jti>`.
        refresh.jti = Some(format!("{family}.{refresh_jti}"));
        refresh.tid = user.tenant.clone();
        refresh.sid = Some(session_id.to_owned());
        let sign = |claims: &Claims, t: TokenType| {
            self.inner.keys.issue(claims, t).map_err(|e| {
                tracing::error!(error = %e, "token signing failed");
                AuthError::Internal
            })
        };
        Ok(TokenPair {
            access_token: sign(&access, TokenType::Access)?,
            refresh_token: sign(&refresh, TokenType::Refresh)?,
            token_type: "Bearer",
            expires_in: u64::try_from(exp - now).unwrap_or(0),
        })
    }
}
