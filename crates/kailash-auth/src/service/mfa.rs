//! The second factor: TOTP enrolment and its confirmation, the secret a
//! login checks, the one-time recovery codes, and an administrator's reset.
//!
//! A bearer token alone never changes the second factor: starting an
//! enrolment needs the current password (counted like a login attempt, see
//! `reauth.rs`) and, while a secret is enrolled, a current TOTP or recovery
//! code. A user whose role requires a second factor but who has none
//! enrols through an enrolment-only token instead (`mfa_bootstrap.rs`).
//!
//! An enrolled secret lives in the shared state and wins over one from the
//! directory; an administrator's reset leaves a tombstone there that also
//! hides the directory's secret. Recovery codes are kept only as hashes and
//! spent atomically.

use std::time::Duration;

use bytes::Bytes;
use kailash_core::Principal;
use kailash_core::audit::{AuditDecision, AuditSeverity};
use kailash_core::context::RequestContext;
use kailash_core::field_encryption::{FieldError, FieldKeys, ReencryptStats, is_sealed};
use kailash_core::state::{Namespace, SharedState, StateKey};
use serde::{Deserialize, Serialize};

use super::overrides::key_for;
use super::reauth::SecondFactor;
use super::{AuthError, AuthService};
use crate::bounds::{MAX_CODE_CHARS, MAX_PASSWORD_CHARS, check};
use crate::password::Password;
use crate::totp::{RecoveryCode, RecoveryCodes, TotpCheck, TotpSecret};
use crate::users::UserRecord;

/// The confirmed TOTP secret (base32), or [`RESET`] after an
/// administrator's reset.
const NS_MFA: Namespace = Namespace::new("mfa.secret");
/// The tombstone an administrator's reset leaves (not base32, so never a
/// secret): it also hides a secret from the directory.
const RESET: &[u8] = b"reset";
/// A secret waiting for its first code.
const NS_MFA_PENDING: Namespace = Namespace::new("mfa.pending");
/// Hashes of the unspent recovery codes (JSON).
const NS_RECOVERY: Namespace = Namespace::new("mfa.recovery");

/// How long an MFA enrolment waits for its first code.
const ENROLMENT_TTL: Duration = Duration::from_secs(600);

/// What an MFA enrolment returns once: the secret, for the authenticator app.
#[derive(Serialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
pub struct Enrolment {
    /// The secret in base32.
    pub secret: String,
    /// The `otpauth://` URI (for a QR code).
    pub otpauth_uri: String,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolment").finish_non_exhaustive()
    }
}

/// The body of `POST /auth/mfa/enroll`: the caller proves again that they
/// own the account, since a bearer token may be stolen.
#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// The current password; at most 1024 characters.
    #[cfg_attr(feature = "axum", schema(max_length = 1024, format = Password))]
    pub password: String,
    /// A current TOTP code; required (or `recovery_code`) when a second
    /// factor is already enrolled. At most 64 characters.
    #[serde(default)]
    #[cfg_attr(feature = "axum", schema(max_length = 64))]
    pub totp: Option<String>,
    /// A recovery code instead of a TOTP code; at most 64 characters.
    #[serde(default)]
    #[cfg_attr(feature = "axum", schema(max_length = 64))]
    pub recovery_code: Option<String>,
}

impl EnrolRequest {
    /// Checks every field against its [bound](crate::bounds) (`400`
    /// otherwise), before the request does anything else.
    pub fn check_bounds(&self) -> Result<(), crate::bounds::TooLong> {
        check("password", &self.password, MAX_PASSWORD_CHARS)?;
        if let Some(code) = &self.totp {
            check("totp", code, MAX_CODE_CHARS)?;
        }
        if let Some(code) = &self.recovery_code {
            check("recovery_code", code, MAX_CODE_CHARS)?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for EnrolRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolRequest").finish_non_exhaustive()
    }
}

impl AuthService {
    /// Starts TOTP enrolment for the caller: a new secret, valid for 10
    /// minutes until confirmed with [`mfa_verify`](Self::mfa_verify).
    ///
    /// The caller re-authenticates: the current password (a wrong one
    /// counts toward the account lockout and the per-IP login throttle, like
    /// a failed login) and, to replace an enrolled secret, a current TOTP or
    /// recovery code. A confirmed enrolment replaces the secret and the
    /// recovery codes.
    pub async fn mfa_enroll(
        &self,
        principal: &Principal,
        req: EnrolRequest,
        ctx: &RequestContext,
    ) -> Result<Enrolment, AuthError> {
        if let Err(e) = req.check_bounds() {
            self.audit(
                Self::event("auth.mfa.enroll", AuditDecision::Failure, Some(ctx))
                    .principal(principal)
                    .reason("malformed request: a field is too long")
                    .severity(AuditSeverity::Warning),
            )
            .await?;
            return Err(e.into());
        }
        let user = match self.user_by_subject(principal.subject()).await? {
            Some(u) if u.active => u,
            _ => {
                self.audit(
                    Self::event("auth.mfa.enroll", AuditDecision::Failure, Some(ctx))
                        .principal(principal)
                        .reason("account unknown or disabled")
                        .severity(AuditSeverity::Warning),
                )
                .await?;
                return Err(AuthError::InvalidCredentials);
            }
        };
        let enrolled = self.totp_secret(&user).await?;
        let second = match (&enrolled, req.totp, req.recovery_code) {
            (None, _, _) => SecondFactor::NotAsked,
            (Some(secret), Some(code), _) => SecondFactor::Totp(secret, code),
            (Some(_), None, Some(code)) => SecondFactor::Recovery(code),
            (Some(_), None, None) => SecondFactor::Missing,
        };
        self.reauthenticate(
            &user,
            &Password::new(req.password),
            second,
            "auth.mfa.enroll",
            ctx,
        )
        .await?;
        let enrolment = self.start_enrolment(&user).await?;
        self.audit(
            Self::event("auth.mfa.enroll", AuditDecision::Success, Some(ctx))
                .principal(principal)
                .reason(if enrolled.is_some() {
                    "re-enrolment started after password and second factor"
                } else {
                    "enrolment started after password"
                }),
        )
        .await?;
        Ok(enrolment)
    }

    /// Confirms the caller's enrolment with a code from the new secret;
    /// returns the recovery codes (shown once; only their hashes are kept).
    pub async fn mfa_verify(
        &self,
        principal: &Principal,
        code: &str,
        ctx: &RequestContext,
    ) -> Result<Vec<RecoveryCode>, AuthError> {
        check("code", code, MAX_CODE_CHARS)?;
        let Some(user) = self.user_by_subject(principal.subject()).await? else {
            return Err(AuthError::InvalidCredentials);
        };
        self.confirm_enrolment(&user, code, ctx).await
    }

    /// A new pending secret for `user`, valid for [`ENROLMENT_TTL`].
    pub(super) async fn start_enrolment(&self, user: &UserRecord) -> Result<Enrolment, AuthError> {
        let secret = TotpSecret::generate().map_err(|_| AuthError::Internal)?;
        let encoded = secret.to_base32();
        let key = key_for(user.tenant.as_ref(), NS_MFA_PENDING, &user.subject);
        let stored = self.stored_secret(&key, &encoded).await?;
        self.inner
            .state
            .kv
            .set(&key, stored, Some(ENROLMENT_TTL))
            .await?;
        let uri = self.inner.config.totp.provisioning_uri(
            &secret,
            &self.inner.config.totp_issuer,
            &user.subject,
        );
        Ok(Enrolment {
            secret: encoded,
            otpauth_uri: uri,
        })
    }

    /// Activates `user`'s pending secret when `code` is one of its codes:
    /// the secret replaces any enrolled one, with new recovery codes.
    pub(super) async fn confirm_enrolment(
        &self,
        user: &UserRecord,
        code: &str,
        ctx: &RequestContext,
    ) -> Result<Vec<RecoveryCode>, AuthError> {
        let tenant = user.tenant.as_ref();
        let pending_key = key_for(tenant, NS_MFA_PENDING, &user.subject);
        let kv = &self.inner.state.kv;
        let Some(pending) = kv.get(&pending_key).await? else {
            return Err(AuthError::Conflict("no enrolment in progress"));
        };
        let secret = self.read_secret(&pending_key, &pending).await?;
        let fail = |reason: &'static str| {
            Self::event("auth.mfa.verify", AuditDecision::Failure, Some(ctx))
                .actor(user.subject.clone())
                .tenant(user.tenant.clone())
                .reason(reason)
                .severity(AuditSeverity::Warning)
        };
        // Confirmation codes are guesses like passwords: they take an
        // attempt of the account lockout and the per-IP throttle, so a
        // pending secret cannot be brute-forced in its ten minutes.
        let permit = self.begin_attempt(user, ctx, &fail).await?;
        let check = match self
            .inner
            .totp
            .verify(tenant, &user.subject, &secret, code)
            .await
        {
            Ok(check) => check,
            Err(e) => {
                // Not checked, so not counted.
                self.release(permit).await;
                tracing::warn!(error = %e, "TOTP guard unavailable");
                return Err(AuthError::Unavailable);
            }
        };
        // The code proves the app holds the new secret; it logs nobody in,
        // and the compare-and-swap below activates the secret once. A step
        // already used (by the re-authentication code of the old secret, in
        // the same 30 s) therefore still confirms; either way the step is
        // now recorded, so the code cannot also log in.
        if matches!(check, TotpCheck::Invalid) {
            let locked = self.count_failure(permit).await;
            self.audit(fail("invalid one-time code")).await?;
            if locked {
                self.end_sessions_after_lock(
                    user,
                    "account locked by wrong enrolment codes; sessions revoked",
                    ctx,
                )
                .await?;
            }
            return Err(AuthError::MfaRequired);
        }
        // A right code proves the app, not the account: the failure count
        // is left as it is.
        self.release(permit).await;
        // Only the request that consumes the pending secret activates it.
        if !kv
            .compare_and_swap(&pending_key, Some(&pending), None, None)
            .await?
        {
            return Err(AuthError::Conflict("enrolment already completed"));
        }
        let (codes, plain) = RecoveryCodes::generate_default().map_err(|_| AuthError::Internal)?;
        let hashes = serde_json::to_vec(&codes).map_err(|_| AuthError::Internal)?;
        kv.set(
            &key_for(tenant, NS_RECOVERY, &user.subject),
            Bytes::from(hashes),
            None,
        )
        .await?;
        let enrolled_key = key_for(tenant, NS_MFA, &user.subject);
        let stored = self
            .stored_secret(&enrolled_key, &secret.to_base32())
            .await?;
        kv.set(&enrolled_key, stored, None).await?;
        self.audit(
            Self::event("auth.mfa.verify", AuditDecision::Success, Some(ctx))
                .actor(user.subject.clone())
                .tenant(user.tenant.clone())
                .reason("second factor enrolled; recovery codes replaced"),
        )
        .await?;
        Ok(plain)
    }

    /// Forgets `user`'s second factor: the enrolled secret (a tombstone
    /// also hides one from the directory), the recovery codes and any
    /// enrolment in progress.
    pub(super) async fn clear_second_factor(&self, user: &UserRecord) -> Result<(), AuthError> {
        let tenant = user.tenant.as_ref();
        let kv = &self.inner.state.kv;
        kv.set(
            &key_for(tenant, NS_MFA, &user.subject),
            Bytes::from_static(RESET),
            None,
        )
        .await?;
        kv.delete(&key_for(tenant, NS_RECOVERY, &user.subject))
            .await?;
        kv.delete(&key_for(tenant, NS_MFA_PENDING, &user.subject))
            .await?;
        Ok(())
    }

    /// The TOTP secret enrolled for `user`: one enrolled through the API
    /// wins over one from configuration, and after an administrator's reset
    /// there is none.
    pub(super) async fn totp_secret(
        &self,
        user: &UserRecord,
    ) -> Result<Option<TotpSecret>, AuthError> {
        let key = key_for(user.tenant.as_ref(), NS_MFA, &user.subject);
        match self.inner.state.kv.get(&key).await? {
            Some(b) if b.as_ref() == RESET => Ok(None),
            Some(b) => self.read_secret(&key, &b).await.map(Some),
            None => Ok(user.totp_secret.clone()),
        }
    }

    /// A TOTP secret (base32) as stored under `key`: sealed with the
    /// field keys when the service has them, bound to the key (user and
    /// slot), else in clear.
    async fn stored_secret(&self, key: &StateKey, base32: &str) -> Result<Bytes, AuthError> {
        match self.inner.field_keys.get() {
            Some(keys) => keys
                .seal(base32.as_bytes(), &secret_context(key))
                .await
                .map(Bytes::from)
                .map_err(|e| {
                    tracing::error!(error = %e, "a TOTP secret could not be sealed");
                    AuthError::Internal
                }),
            None => Ok(Bytes::from(base32.to_owned())),
        }
    }

    /// The secret stored under `key` (sealed or, from before encryption
    /// was on, in clear). A sealed secret that does not open, or one found
    /// without field keys, is an internal error: never a wrong secret.
    async fn read_secret(&self, key: &StateKey, stored: &[u8]) -> Result<TotpSecret, AuthError> {
        let text = std::str::from_utf8(stored).map_err(|_| AuthError::Internal)?;
        let base32 = if is_sealed(text) {
            let Some(keys) = self.inner.field_keys.get() else {
                tracing::error!("a TOTP secret is sealed but no field keys are configured");
                return Err(AuthError::Internal);
            };
            let plain = keys.open(text, &secret_context(key)).await.map_err(|e| {
                tracing::error!(error = %e, "a sealed TOTP secret does not open");
                AuthError::Internal
            })?;
            String::from_utf8(plain).map_err(|_| AuthError::Internal)?
        } else {
            text.to_owned()
        };
        TotpSecret::from_base32(&base32).map_err(|_| AuthError::Internal)
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

/// The context a TOTP secret is sealed in: its own state key (user and
/// slot), so a sealed secret copied to another user does not open.
fn secret_context(key: &StateKey) -> Vec<u8> {
    let mut out = b"kailash-totp-secret\0".to_vec();
    out.extend_from_slice(key.as_str().as_bytes());
    out
}

/// The enrolled TOTP secrets as a re-encryption target: re-seals those an
/// older data key sealed and seals those stored in clear. Pending
/// enrolments are left alone: they live ten minutes, far less than the
/// grace before a superseded key is retired.
pub(super) struct SecretReencryption {
    pub(super) state: SharedState,
}

#[async_trait::async_trait]
impl kailash_core::field_encryption::Reencrypt for SecretReencryption {
    fn name(&self) -> &'static str {
        "totp_secrets"
    }

    async fn reencrypt(&self, keys: &FieldKeys) -> Result<ReencryptStats, FieldError> {
        kailash_core::field_encryption::reencrypt_namespace(
            &self.state,
            NS_MFA,
            "a TOTP secret",
            |key| self.reseal_one(keys, key),
        )
        .await
    }
}

impl SecretReencryption {
    /// Re-seals one secret when needed; whether it wrote. A secret
    /// replaced meanwhile (a new enrolment, a reset) is read again; one
    /// still not current after a few tries is an error (the pass is then
    /// incomplete and retires nothing).
    async fn reseal_one(&self, keys: &FieldKeys, key: StateKey) -> Result<bool, FieldError> {
        let (kv, key) = (&self.state.kv, &key);
        for _ in 0..kailash_core::field_encryption::RESEAL_ATTEMPTS {
            let Some(stored) = kv.get(key).await? else {
                return Ok(false);
            };
            if stored.as_ref() == RESET {
                return Ok(false);
            }
            let text = std::str::from_utf8(&stored).map_err(|_| FieldError::Malformed)?;
            let context = secret_context(key);
            let new = if is_sealed(text) {
                match keys.reseal(text, &context).await? {
                    Some(new) => new,
                    None => return Ok(false),
                }
            } else {
                keys.seal(text.as_bytes(), &context).await?
            };
            if kv
                .compare_and_swap(key, Some(&stored), Some(Bytes::from(new)), None)
                .await?
            {
                return Ok(true);
            }
        }
        Err(FieldError::KeySet(
            "a TOTP secret kept changing under its re-encryption".into(),
        ))
    }
}
