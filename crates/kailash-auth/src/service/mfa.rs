//! The second factor: TOTP enrolment and its confirmation, the secret a
//! login checks, and the one-time recovery codes.
//!
//! An enrolled secret lives in the shared state and wins over one from the
//! directory; recovery codes are kept only as hashes and spent atomically.

use std::time::Duration;

use bytes::Bytes;
use kailash_core::Principal;
use kailash_core::audit::AuditDecision;
use kailash_core::context::RequestContext;
use kailash_core::state::Namespace;
use serde::Serialize;

use super::overrides::key_for;
use super::{AuthError, AuthService};
use crate::totp::{RecoveryCode, RecoveryCodes, TotpCheck, TotpSecret};
use crate::users::UserRecord;

/// The confirmed TOTP secret (base32).
const NS_MFA: Namespace = Namespace::new("mfa.secret");
/// A secret waiting for its first code.
const NS_MFA_PENDING: Namespace = Namespace::new("mfa.pending");
/// Hashes of the unspent recovery codes (JSON).
const NS_RECOVERY: Namespace = Namespace::new("mfa.recovery");

/// How long an MFA enrolment waits for its first code.
const ENROLMENT_TTL: Duration = Duration::from_secs(600);

/// What an MFA enrolment returns once: the secret, for the authenticator app.
#[derive(Serialize)]
pub struct Enrolment {
    /// The secret in base32.
    pub secret: String,
    /// The `otpauth://` URI (for a QR code).
    pub otpauth_uri: String,
}

impl AuthService {
    /// Starts TOTP enrolment: a new secret, valid for 10 minutes until
    /// confirmed with [`mfa_verify`](Self::mfa_verify).
    ///
    /// Refused while a secret is enrolled: replacing it would let a stolen
    /// access token disable the second factor. (Re-enrolment with a current
    /// code is not offered yet.)
    pub async fn mfa_enroll(
        &self,
        principal: &Principal,
        ctx: &RequestContext,
    ) -> Result<Enrolment, AuthError> {
        if let Some(user) = self.user_by_subject(principal.subject()).await?
            && self.totp_secret(&user).await?.is_some()
        {
            self.audit(
                Self::event("auth.mfa.enroll", AuditDecision::Deny, Some(ctx))
                    .principal(principal)
                    .reason("already enrolled"),
            )
            .await;
            return Err(AuthError::BadRequest(
                "a second factor is already enrolled".into(),
            ));
        }
        let secret = TotpSecret::generate().map_err(|_| AuthError::Internal)?;
        let encoded = secret.to_base32();
        let key = key_for(principal.tenant(), NS_MFA_PENDING, principal.subject());
        self.inner
            .state
            .kv
            .set(&key, Bytes::from(encoded.clone()), Some(ENROLMENT_TTL))
            .await?;
        let uri = self.inner.config.totp.provisioning_uri(
            &secret,
            &self.inner.config.totp_issuer,
            principal.subject(),
        );
        self.audit(
            Self::event("auth.mfa.enroll", AuditDecision::Success, Some(ctx)).principal(principal),
        )
        .await;
        Ok(Enrolment {
            secret: encoded,
            otpauth_uri: uri,
        })
    }

    /// Confirms an enrolment with a code from the new secret; returns the
    /// recovery codes (shown once; only their hashes are kept).
    pub async fn mfa_verify(
        &self,
        principal: &Principal,
        code: &str,
        ctx: &RequestContext,
    ) -> Result<Vec<RecoveryCode>, AuthError> {
        let tenant = principal.tenant();
        let pending_key = key_for(tenant, NS_MFA_PENDING, principal.subject());
        let kv = &self.inner.state.kv;
        let Some(pending) = kv.get(&pending_key).await? else {
            return Err(AuthError::BadRequest("no enrolment in progress".into()));
        };
        let text = std::str::from_utf8(&pending).map_err(|_| AuthError::Internal)?;
        let secret = TotpSecret::from_base32(text).map_err(|_| AuthError::Internal)?;
        let accepted = matches!(
            self.inner
                .totp
                .verify(tenant, principal.subject(), &secret, code)
                .await,
            Ok(TotpCheck::Accepted { .. })
        );
        if !accepted {
            self.audit(
                Self::event("auth.mfa.verify", AuditDecision::Failure, Some(ctx))
                    .principal(principal)
                    .reason("invalid one-time code"),
            )
            .await;
            return Err(AuthError::MfaRequired);
        }
        // Only the request that consumes the pending secret activates it.
        if !kv
            .compare_and_swap(&pending_key, Some(&pending), None, None)
            .await?
        {
            return Err(AuthError::BadRequest("enrolment already completed".into()));
        }
        let (codes, plain) = RecoveryCodes::generate_default().map_err(|_| AuthError::Internal)?;
        let hashes = serde_json::to_vec(&codes).map_err(|_| AuthError::Internal)?;
        kv.set(
            &key_for(tenant, NS_RECOVERY, principal.subject()),
            Bytes::from(hashes),
            None,
        )
        .await?;
        kv.set(
            &key_for(tenant, NS_MFA, principal.subject()),
            Bytes::from(secret.to_base32()),
            None,
        )
        .await?;
        self.audit(
            Self::event("auth.mfa.verify", AuditDecision::Success, Some(ctx)).principal(principal),
        )
        .await;
        Ok(plain)
    }

    /// The TOTP secret enrolled for `user`: one enrolled through the API
    /// wins over one from configuration.
    pub(super) async fn totp_secret(
        &self,
        user: &UserRecord,
    ) -> Result<Option<TotpSecret>, AuthError> {
        let key = key_for(user.tenant.as_ref(), NS_MFA, &user.subject);
        match self.inner.state.kv.get(&key).await? {
            Some(b) => {
                let text = std::str::from_utf8(&b).map_err(|_| AuthError::Internal)?;
                Ok(Some(
                    TotpSecret::from_base32(text).map_err(|_| AuthError::Internal)?,
                ))
            }
            None => Ok(user.totp_secret.clone()),
        }
    }

    /// Spends `code` if it is one of `user`'s unspent recovery codes.
    pub(super) async fn consume_recovery_code(
        &self,
        user: &UserRecord,
        code: &str,
    ) -> Result<bool, AuthError> {
        let key = key_for(user.tenant.as_ref(), NS_RECOVERY, &user.subject);
        let kv = &self.inner.state.kv;
        // Compare-and-swap so two logins cannot spend the same code.
        for _ in 0..8 {
            let Some(stored) = kv.get(&key).await? else {
                return Ok(false);
            };
            let mut codes: RecoveryCodes =
                serde_json::from_slice(&stored).map_err(|_| AuthError::Internal)?;
            if !codes.consume(code) {
                return Ok(false);
            }
            let updated = serde_json::to_vec(&codes).map_err(|_| AuthError::Internal)?;
            if kv
                .compare_and_swap(&key, Some(&stored), Some(Bytes::from(updated)), None)
                .await?
            {
                return Ok(true);
            }
        }
        Err(AuthError::Unavailable)
    }
}
