//! The enrolment-only token of a user whose role requires a second factor:
//! what HTTP tests cannot show without waiting (its expiry, on a moved
//! clock) and that no access-token verifier accepts it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use kailash_auth::jwt::{Algorithm, KeySet, SigningKey, VerifyError};
use kailash_auth::password::{HashParams, Password, PasswordHasher};
use kailash_auth::service::{
    AuthConfig, AuthError, AuthService, ENROLMENT_TOKEN_TTL, LoginOutcome, LoginRequest,
};
use kailash_auth::users::{StaticUserStore, UserConfig};
use kailash_core::audit::MemoryAuditSink;
use kailash_core::clock::ManualClock;
use kailash_core::context::{RequestContext, RequestIdGenerator};
use kailash_core::state::SharedState;

fn ctx() -> RequestContext {
    RequestContext::new(
        RequestIdGenerator::new().next_id(),
        IpAddr::from([192, 0, 2, 1]),
        jiff::Timestamp::now(),
    )
}

const PASSWORD: &str = "Grace-Enrols-Now-7";

fn service(clock: Arc<ManualClock>) -> AuthService {
    let hasher = PasswordHasher::new(HashParams {
        memory_kib: 8192,
        iterations: 1,
        parallelism: 1,
    })
    .unwrap();
    let hash = hasher.hash(&Password::new(PASSWORD.to_owned())).unwrap();
    let user: UserConfig = serde_json::from_value(serde_json::json!({
        "username": "grace", "tenant": "acme", "roles": ["admin"],
        "password_hash": hash.as_str(),
    }))
    .unwrap();
    let keys = Arc::new(KeySet::new(
        SigningKey::generate(Algorithm::EdDSA, "k1").unwrap(),
        clock.clone(),
    ));
    let config = AuthConfig {
        mfa_required_roles: ["admin".to_owned()].into(),
        ..AuthConfig::default()
    };
    AuthService::new(
        config,
        Arc::new(StaticUserStore::new(vec![user]).unwrap()),
        keys,
        SharedState::memory(clock),
        Arc::new(MemoryAuditSink::new()),
    )
}

async fn enrolment_token(service: &AuthService) -> String {
    let req = LoginRequest {
        username: "grace".into(),
        password: PASSWORD.into(),
        totp: None,
        recovery_code: None,
    };
    match service.login(req, &ctx()).await.unwrap() {
        LoginOutcome::MfaEnrolment(grant) => {
            assert_eq!(grant.expires_in, ENROLMENT_TOKEN_TTL.as_secs());
            grant.enrolment_token
        }
        LoginOutcome::Tokens(_) => panic!("no session without a second factor"),
    }
}

#[tokio::test]
async fn the_enrolment_token_expires_and_is_never_an_access_token() {
    let clock = Arc::new(ManualClock::starting_now());
    let service = service(clock.clone());
    let token = enrolment_token(&service).await;
    assert_eq!(
        service.access_verifier().verify(&token).await.unwrap_err(),
        VerifyError::WrongTokenType
    );
    assert!(service.mfa_bootstrap_enroll(&token, &ctx()).await.is_ok());

    clock.advance(ENROLMENT_TOKEN_TTL + Duration::from_secs(31));
    assert!(matches!(
        service.mfa_bootstrap_enroll(&token, &ctx()).await,
        Err(AuthError::InvalidEnrolmentToken)
    ));
    // A new login gives a new one.
    let again = enrolment_token(&service).await;
    assert!(service.mfa_bootstrap_enroll(&again, &ctx()).await.is_ok());
}
