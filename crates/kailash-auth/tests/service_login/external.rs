//! Users an identity provider vouched for (`AuthService::sign_in_external`):
//! the same session and refresh machinery as a password login, the service's
//! own refusals, and their records at rest.

use std::collections::BTreeMap;
use std::time::Duration;

use kailash_auth::service::{AuthError, ExternalIdentity, NS_EXTERNAL_USER, external_subject};
use kailash_core::AttributeValue;
use kailash_core::field_encryption::{FieldKeys, FieldKeysOptions};

use super::*;

fn identity(roles: &[&str], mfa: bool) -> ExternalIdentity {
    ExternalIdentity {
        provider: "corp".into(),
        protocol: "oidc",
        subject: external_subject("corp", "00u1"),
        username: "uma".into(),
        tenant: Some(TenantId::new("acme").unwrap()),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        attributes: BTreeMap::from([(
            "department".to_owned(),
            AttributeValue::String("engineering-secret-dept".into()),
        )]),
        mfa,
        record_ttl: Duration::from_secs(3600),
        mapping: "m1".into(),
    }
}

fn service(state: &SharedState, clock: Arc<ManualClock>) -> AuthService {
    let config = AuthConfig {
        mfa_required_roles: ["admin".to_owned()].into_iter().collect(),
        ..AuthConfig::default()
    };
    AuthService::new(
        config,
        Arc::new(StaticUserStore::new(vec![]).unwrap()),
        Arc::new(KeySet::new(
            SigningKey::generate(Algorithm::EdDSA, "k1").unwrap(),
            clock,
        )),
        state.clone(),
        Arc::new(MemoryAuditSink::new()),
    )
}

#[tokio::test]
async fn external_users_get_sessions_refreshes_and_the_services_refusals() {
    let clock = Arc::new(ManualClock::starting_now());
    let state = SharedState::memory(clock.clone());
    let service = service(&state, clock.clone());

    let pair = service
        .sign_in_external(identity(&["data_scientist"], false), &ctx())
        .await
        .unwrap();
    let claims = service
        .access_verifier()
        .verify(&pair.access_token)
        .await
        .unwrap();
    assert_eq!(claims.sub, "ext:corp:00u1");
    assert_eq!(claims.roles, ["data_scientist"]);
    // The record supplies the roles on refresh.
    let again = service.refresh(&pair.refresh_token, &ctx()).await.unwrap();
    let claims = service
        .access_verifier()
        .verify(&again.access_token)
        .await
        .unwrap();
    assert_eq!(claims.roles, ["data_scientist"]);
    assert_eq!(
        claims.attrs.get("department"),
        Some(&AttributeValue::String("engineering-secret-dept".into()))
    );

    // A role that requires a second factor the provider did not assert.
    let refused = service
        .sign_in_external(identity(&["admin"], false), &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, AuthError::SignInRefused(_)),
        "{refused:?}"
    );
    service
        .sign_in_external(identity(&["admin"], true), &ctx())
        .await
        .unwrap();

    // An external user has no password here: none to change, and none
    // passes a re-authentication (so no local second factor either).
    let uma = kailash_core::Principal::builder(external_subject("corp", "00u1"))
        .tenant(TenantId::new("acme").unwrap())
        .build();
    let changed = service
        .change_password(
            &uma,
            "anything-1".into(),
            "Another-Long-Passw0rd!".into(),
            &ctx(),
        )
        .await;
    assert!(
        matches!(changed, Err(AuthError::Conflict(_))),
        "{changed:?}"
    );
    let enrol = service
        .mfa_enroll(
            &uma,
            kailash_auth::service::EnrolRequest {
                password: "anything-1".into(),
                totp: None,
                recovery_code: None,
            },
            &ctx(),
        )
        .await;
    assert!(
        matches!(enrol, Err(AuthError::InvalidCredentials)),
        "{enrol:?}"
    );

    // Once the record expires, refresh tokens stop working (and only
    // then: a user whose record lives on refreshes at the same moment).
    let short = ExternalIdentity {
        record_ttl: Duration::from_secs(120),
        ..identity(&["data_scientist"], false)
    };
    let long = ExternalIdentity {
        subject: external_subject("corp", "00u2"),
        ..identity(&["data_scientist"], false)
    };
    let gone = service.sign_in_external(short, &ctx()).await.unwrap();
    let kept = service.sign_in_external(long, &ctx()).await.unwrap();
    clock.advance(Duration::from_secs(121));
    assert!(service.refresh(&gone.refresh_token, &ctx()).await.is_err());
    service.refresh(&kept.refresh_token, &ctx()).await.unwrap();
}

#[tokio::test]
async fn external_users_attributes_are_sealed_and_reencrypted_keeping_their_expiry() {
    use kailash_core::envelope::Keyring;

    let clock = Arc::new(ManualClock::starting_now());
    let state = SharedState::memory(clock.clone());
    let plain = service(&state, clock.clone());
    // Signed in before encryption was on: in clear.
    plain
        .sign_in_external(identity(&["data_scientist"], false), &ctx())
        .await
        .unwrap();
    let key = StateKey::global(NS_EXTERNAL_USER, &external_subject("corp", "00u1"));
    let text = |b: bytes::Bytes| String::from_utf8(b.to_vec()).unwrap();
    assert!(text(state.kv.get(&key).await.unwrap().unwrap()).contains("engineering-secret-dept"));

    let kek = Keyring::parse(&format!("kek-1 {}", Keyring::generate_key().unwrap())).unwrap();
    let keys = Arc::new(
        FieldKeys::load(
            state.clone(),
            Arc::new(kek),
            FieldKeysOptions::default().retire_after(Duration::from_secs(3600)),
        )
        .await
        .unwrap(),
    );
    let sealed = service(&state, clock.clone());
    assert!(sealed.set_field_keys(keys.clone()));
    // The maintenance pass seals the clear record.
    let report = keys.maintain(&sealed.reencryption_targets()).await.unwrap();
    assert!(report.changed(), "{report:?}");
    let stored = text(state.kv.get(&key).await.unwrap().unwrap());
    assert!(!stored.contains("engineering-secret-dept"), "{stored}");
    assert!(stored.contains("kf1."), "{stored}");
    // A new sign-in writes it sealed; refreshes open it.
    let pair = sealed
        .sign_in_external(identity(&["data_scientist"], false), &ctx())
        .await
        .unwrap();
    assert!(!text(state.kv.get(&key).await.unwrap().unwrap()).contains("engineering-secret-dept"));
    let again = sealed.refresh(&pair.refresh_token, &ctx()).await.unwrap();
    let claims = sealed
        .access_verifier()
        .verify(&again.access_token)
        .await
        .unwrap();
    assert_eq!(
        claims.attrs.get("department"),
        Some(&AttributeValue::String("engineering-secret-dept".into()))
    );
    // Re-encryption after a rotation re-seals under the new key and keeps
    // the record's expiry.
    let before = text(state.kv.get(&key).await.unwrap().unwrap());
    clock.advance(Duration::from_secs(1800));
    keys.rotate().await.unwrap();
    let report = keys.maintain(&sealed.reencryption_targets()).await.unwrap();
    assert!(report.changed(), "{report:?}");
    let after = text(state.kv.get(&key).await.unwrap().unwrap());
    let key_id = |t: &str| t.split("kf1.").nth(1).unwrap()[..16].to_owned();
    assert_ne!(
        key_id(&before),
        key_id(&after),
        "re-sealed under the new key"
    );
    clock.advance(Duration::from_secs(1799));
    assert!(state.kv.get(&key).await.unwrap().is_some());
    clock.advance(Duration::from_secs(2));
    assert!(
        state.kv.get(&key).await.unwrap().is_none(),
        "re-encryption must not extend a record's life"
    );
}

#[tokio::test]
async fn disabled_moved_and_reconfigured_external_users_stop_refreshing() {
    let clock = Arc::new(ManualClock::starting_now());
    let state = SharedState::memory(clock.clone());
    let service = service(&state, clock.clone());
    assert!(service.set_external_providers([("corp".to_owned(), "m1".to_owned())]));
    let subject = external_subject("corp", "00u1");

    // Disabled: the next sign-in and the live family are refused.
    let pair = service
        .sign_in_external(identity(&["data_scientist"], false), &ctx())
        .await
        .unwrap();
    service.set_account_active(&subject, false).await.unwrap();
    assert!(service.refresh(&pair.refresh_token, &ctx()).await.is_err());
    let refused = service
        .sign_in_external(identity(&["data_scientist"], false), &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, AuthError::SignInRefused(_)),
        "{refused:?}"
    );
    // Even after the record is gone, the flag can be set (global key).
    service.set_account_active(&subject, true).await.unwrap();
    clock.advance(Duration::from_secs(3601));
    service.set_account_active(&subject, false).await.unwrap();
    assert!(
        service
            .sign_in_external(identity(&["data_scientist"], false), &ctx())
            .await
            .is_err()
    );
    service.set_account_active(&subject, true).await.unwrap();

    // Moved to another tenant by a later sign-in: the old family is dead.
    let in_acme = service
        .sign_in_external(identity(&["data_scientist"], false), &ctx())
        .await
        .unwrap();
    let globex = ExternalIdentity {
        tenant: Some(TenantId::new("globex").unwrap()),
        ..identity(&["data_scientist"], false)
    };
    let in_globex = service.sign_in_external(globex, &ctx()).await.unwrap();
    assert!(
        service
            .refresh(&in_acme.refresh_token, &ctx())
            .await
            .is_err()
    );
    let in_globex = service
        .refresh(&in_globex.refresh_token, &ctx())
        .await
        .unwrap();

    // The provider is reconfigured (another fingerprint): its users'
    // records made before no longer refresh.
    let other = service_with_providers(&state, clock.clone(), &[("corp", "m2")]);
    assert!(
        other
            .refresh(&in_globex.refresh_token, &ctx())
            .await
            .is_err()
    );
    // Or removed altogether.
    let none = service_with_providers(&state, clock, &[]);
    let fresh = service
        .sign_in_external(
            ExternalIdentity {
                tenant: Some(TenantId::new("globex").unwrap()),
                ..identity(&["data_scientist"], false)
            },
            &ctx(),
        )
        .await
        .unwrap();
    assert!(none.refresh(&fresh.refresh_token, &ctx()).await.is_err());
}

/// Another service over the same state (another instance, or a restart
/// with a new configuration) whose providers are `providers`.
fn service_with_providers(
    state: &SharedState,
    clock: Arc<ManualClock>,
    providers: &[(&str, &str)],
) -> AuthService {
    let s = service(state, clock);
    assert!(
        s.set_external_providers(
            providers
                .iter()
                .map(|(n, m)| ((*n).to_owned(), (*m).to_owned()))
        )
    );
    s
}
