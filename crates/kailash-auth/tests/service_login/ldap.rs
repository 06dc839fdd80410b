//! Sign-in against a real OpenLDAP (`.ci/ldap/slapd.sh`, which `.ci/run`
//! starts): `KAILASH_TEST_LDAP_URL` (ldap://, used with StartTLS),
//! `KAILASH_TEST_LDAPS_URL` and `KAILASH_TEST_LDAP_CA` (the directory's CA).
//! Without them these tests say so and pass.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kailash_auth::jwt::{Algorithm, KeySet, SigningKey};
use kailash_auth::ldap::{LdapDirectory, LdapSetupError};
use kailash_auth::password::{HashParams, Password, PasswordHasher};
use kailash_auth::service::{AuthConfig, AuthError, AuthService, LoginOutcome, LoginRequest};
use kailash_auth::spec::LdapSpec;
use kailash_auth::users::{ChainedUserStore, StaticUserStore, UserConfig, UserStore};
use kailash_core::audit::{AuditDecision, MemoryAuditSink};
use kailash_core::clock::ManualClock;
use kailash_core::context::{RequestContext, RequestIdGenerator};
use kailash_core::state::SharedState;
use kailash_core::{AttributeValue, TenantId};
use serde_json::json;

const LENA: &str = "Lena-Directory-Pass-1";
const OMAR: &str = "Omar-Directory-Pass-1";

struct Env {
    ldap: String,
    ldaps: String,
    ca: String,
}

fn env() -> Option<Env> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("KAILASH_TEST_LDAP_URL"),
        get("KAILASH_TEST_LDAPS_URL"),
        get("KAILASH_TEST_LDAP_CA"),
    ) {
        (Some(ldap), Some(ldaps), Some(ca)) => Some(Env { ldap, ldaps, ca }),
        _ => {
            eprintln!(
                "skipped: KAILASH_TEST_LDAP_URL, KAILASH_TEST_LDAPS_URL and KAILASH_TEST_LDAP_CA are not set (.ci/ldap/slapd.sh starts a directory)"
            );
            None
        }
    }
}

/// The test directory's layout; `patch` overrides keys.
fn spec(url: &str, ca: Option<&str>, patch: serde_json::Value) -> LdapSpec {
    let mut v = json!({
        "url": url,
        "start_tls": url.starts_with("ldap://"),
        "bind_dn": "cn=kailash-svc,dc=kailash,dc=test",
        "bind_password_env": "UNUSED_IN_THIS_TEST",
        "user_base_dn": "ou=people,dc=kailash,dc=test",
        "group_base_dn": "ou=groups,dc=kailash,dc=test",
        "group_roles": {
            "CN=Kailash-Admins, OU=Groups, DC=kailash, DC=test": ["admin"],
            "cn=data-science,ou=groups,dc=kailash,dc=test": ["data_scientist"]
        },
        "default_roles": ["business_user"],
        "tenant_attribute": "o",
        "attributes": {
            "email": "mail",
            "department": "departmentNumber",
            "clearance": "employeeType",
            "location.country": "l",
            "title": "title"
        },
        "timeout": "2s",
        "connect_timeout": "2s"
    });
    if let Some(ca) = ca {
        v["ca_file"] = ca.into();
    }
    for (k, val) in patch.as_object().unwrap() {
        v[k] = val.clone();
    }
    serde_json::from_value(v).unwrap()
}

fn directory(spec: &LdapSpec) -> LdapDirectory {
    LdapDirectory::new(spec, Password::new("svc-secret")).unwrap()
}

fn ctx() -> RequestContext {
    RequestContext::new(
        RequestIdGenerator::new().next_id(),
        IpAddr::from([192, 0, 2, 7]),
        jiff::Timestamp::now(),
    )
}

fn login(username: &str, password: &str) -> LoginRequest {
    LoginRequest {
        username: username.into(),
        password: password.into(),
        totp: None,
        recovery_code: None,
    }
}

fn service(users: Arc<dyn UserStore>, config: AuthConfig) -> (AuthService, Arc<MemoryAuditSink>) {
    let clock = Arc::new(ManualClock::starting_now());
    let keys = Arc::new(KeySet::new(
        SigningKey::generate(Algorithm::EdDSA, "k1").unwrap(),
        clock.clone(),
    ));
    let audit = Arc::new(MemoryAuditSink::new());
    let hasher = PasswordHasher::new(HashParams {
        memory_kib: 8192,
        iterations: 1,
        parallelism: 1,
    })
    .unwrap();
    let service = AuthService::new(
        config,
        users,
        keys,
        SharedState::memory(clock),
        audit.clone(),
    )
    .with_hasher(hasher);
    (service, audit)
}

fn tokens(outcome: LoginOutcome) -> kailash_auth::service::TokenPair {
    match outcome {
        LoginOutcome::Tokens(pair) => pair,
        other => panic!("expected tokens, got {other:?}"),
    }
}

#[tokio::test]
async fn directory_users_sign_in_with_mapped_roles_attributes_and_tenant() {
    let Some(env) = env() else { return };
    for url in [&env.ldaps, &env.ldap] {
        let dir = directory(&spec(url, Some(&env.ca), json!({})));
        dir.check().await.unwrap();
        let (svc, audit) = service(Arc::new(dir), AuthConfig::default());
        let pair = tokens(svc.login(login("Lena", LENA), &ctx()).await.unwrap());
        let claims = svc
            .access_verifier()
            .verify(&pair.access_token)
            .await
            .unwrap();
        assert_eq!(claims.sub, "lena", "{url}");
        assert_eq!(claims.tid, Some(TenantId::new("acme").unwrap()));
        assert_eq!(claims.roles, ["business_user", "data_scientist"], "{url}");
        assert_eq!(
            claims.attrs.get("department"),
            Some(&AttributeValue::String("engineering".into())),
            "{url}: ABAC conditions on department see the directory's value"
        );
        assert_eq!(
            claims.attrs["email"],
            AttributeValue::String("lena@acme.example".into())
        );
        assert_eq!(
            claims.attrs["title"],
            AttributeValue::String("Data Scientist".into())
        );
        assert_eq!(
            claims.attrs["location"].get_path("country"),
            Some(&AttributeValue::String("GB".into())),
            "dotted names nest"
        );
        assert_eq!(
            claims.attrs["username"],
            AttributeValue::String("lena".into())
        );

        // Groups from memberOf and from the group search, mapped case-insensitively.
        let pair = tokens(svc.login(login("omar", OMAR), &ctx()).await.unwrap());
        let claims = svc
            .access_verifier()
            .verify(&pair.access_token)
            .await
            .unwrap();
        assert_eq!(
            claims.roles,
            ["admin", "business_user", "data_scientist"],
            "{url}"
        );

        // A refresh looks the user up in the directory again.
        let refreshed = svc.refresh(&pair.refresh_token, &ctx()).await.unwrap();
        let claims = svc
            .access_verifier()
            .verify(&refreshed.access_token)
            .await
            .unwrap();
        assert_eq!(claims.sub, "omar");
        let events = audit.events();
        assert!(
            events.iter().any(|e| e.action == "auth.login"
                && e.decision == AuditDecision::Success
                && e.actor.as_deref() == Some("lena")),
            "{url}: the sign-in is audited like a password login"
        );
    }
}

#[tokio::test]
async fn only_memberof_or_only_the_group_search_give_the_same_roles() {
    let Some(env) = env() else { return };
    for patch in [
        json!({ "group_base_dn": null }),
        json!({ "member_of_attribute": "" }),
    ] {
        let dir = directory(&spec(&env.ldaps, Some(&env.ca), patch.clone()));
        let user = dir.find_by_username("omar").await.unwrap().unwrap();
        assert_eq!(
            user.roles,
            ["admin", "business_user", "data_scientist"],
            "{patch}"
        );
    }
    // Neither: default roles only.
    let dir = directory(&spec(
        &env.ldaps,
        Some(&env.ca),
        json!({ "group_base_dn": null, "member_of_attribute": "" }),
    ));
    let user = dir.find_by_username("omar").await.unwrap().unwrap();
    assert_eq!(user.roles, ["business_user"]);
}

#[tokio::test]
async fn wrong_empty_and_injected_credentials_are_refused_and_counted() {
    let Some(env) = env() else { return };
    let dir = directory(&spec(&env.ldaps, Some(&env.ca), json!({})));
    let mut config = AuthConfig::default();
    config.lockout.max_attempts = 3;
    let (svc, audit) = service(Arc::new(dir.clone()), config);

    // An empty password would be an unauthenticated bind, which LDAP
    // servers accept: it never reaches the directory.
    let e = svc.login(login("paula", ""), &ctx()).await.unwrap_err();
    assert!(matches!(e, AuthError::InvalidCredentials), "{e:?}");

    // RFC 4515: `*` and parentheses in a username match only themselves.
    for injected in ["*", "l*", "lena)(uid=*", "*)(|(uid=*", "lena\\2a", "lena\0"] {
        assert!(
            dir.find_by_username(injected).await.unwrap().is_none(),
            "{injected:?}"
        );
        let e = svc.login(login(injected, LENA), &ctx()).await.unwrap_err();
        assert!(
            matches!(e, AuthError::InvalidCredentials),
            "{injected:?}: {e:?}"
        );
    }
    assert!(
        audit
            .events()
            .iter()
            .all(|e| !(e.action == "auth.login" && e.decision == AuditDecision::Success)),
        "no injected name signed in"
    );

    // Wrong passwords count toward the lockout like a local user's; then
    // even the right one is refused until the lockout ends.
    let e = svc
        .login(login("paula", "wrong-1"), &ctx())
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::InvalidCredentials), "{e:?}");
    let e = svc
        .login(login("paula", "wrong-2"), &ctx())
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::InvalidCredentials), "{e:?}");
    let e = svc
        .login(login("paula", "Paula-Directory-Pass-1"), &ctx())
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::Locked { .. }), "{e:?}");
    let failures = audit
        .events()
        .iter()
        .filter(|e| e.action == "auth.login" && e.actor.as_deref() == Some("paula"))
        .count();
    assert!(failures >= 3, "each refusal is audited: {failures}");

    // The directory's password cannot be changed through the API.
    let pair = tokens(svc.login(login("lena", LENA), &ctx()).await.unwrap());
    let claims = svc
        .access_verifier()
        .verify(&pair.access_token)
        .await
        .unwrap();
    let principal = kailash_core::Principal::builder(claims.sub.clone())
        .tenant(claims.tid.clone().unwrap())
        .build();
    let e = svc
        .change_password(
            &principal,
            LENA.into(),
            "Another-Long-Passw0rd!".into(),
            &ctx(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::Conflict(_)), "{e:?}");
    assert!(svc.login(login("lena", LENA), &ctx()).await.is_ok());
}

#[tokio::test]
async fn an_unreachable_slow_or_untrusted_directory_refuses_the_sign_in() {
    let Some(env) = env() else { return };
    // Nothing listens on this port.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // This one accepts and never answers.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_port = hung.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hung.accept().await {
            held.push(s);
        }
    });
    let cases = [
        spec(
            &format!("ldaps://127.0.0.1:{closed}"),
            Some(&env.ca),
            json!({}),
        ),
        spec(
            &format!("ldaps://127.0.0.1:{hung_port}"),
            Some(&env.ca),
            json!({ "timeout": "300ms", "connect_timeout": "300ms" }),
        ),
        // The directory's certificate is not trusted without its CA.
        spec(&env.ldaps, None, json!({})),
        spec(&env.ldap, None, json!({})),
    ];
    for case in cases {
        let dir = directory(&case);
        assert!(
            matches!(dir.check().await, Err(LdapSetupError::Unreachable(_))),
            "{}",
            case.url
        );
        // A configured user of another name still signs in: only the
        // directory's users are refused, and never with another identity.
        let local = local_user("lena", "Local-Lena-Passw0rd");
        let chained = ChainedUserStore::new()
            .then(Arc::new(StaticUserStore::new(vec![local]).unwrap()))
            .then(Arc::new(dir));
        let (svc, audit) = service(Arc::new(chained), AuthConfig::default());
        let started = Instant::now();
        let e = svc.login(login("omar", OMAR), &ctx()).await.unwrap_err();
        assert!(matches!(e, AuthError::Unavailable), "{}: {e:?}", case.url);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(
            audit
                .events()
                .iter()
                .all(|e| !(e.action == "auth.login" && e.decision == AuditDecision::Success))
        );
        // The configured user shadows the directory's: no directory call.
        svc.login(login("lena", "Local-Lena-Passw0rd"), &ctx())
            .await
            .unwrap();
        let e = svc.login(login("lena", LENA), &ctx()).await.unwrap_err();
        assert!(matches!(e, AuthError::InvalidCredentials), "{e:?}");
    }
}

#[tokio::test]
async fn a_wrong_service_password_stops_the_setup_and_fails_closed() {
    let Some(env) = env() else { return };
    let s = spec(&env.ldaps, Some(&env.ca), json!({}));
    let dir = LdapDirectory::new(&s, Password::new("not-the-password")).unwrap();
    let e = dir.check().await.unwrap_err();
    assert!(matches!(e, LdapSetupError::ServiceRefused { .. }), "{e:?}");
    assert!(!e.to_string().contains("not-the-password"));
    let (svc, _) = service(Arc::new(dir), AuthConfig::default());
    let e = svc.login(login("lena", LENA), &ctx()).await.unwrap_err();
    assert!(matches!(e, AuthError::Unavailable), "{e:?}");
    assert!(matches!(
        LdapDirectory::new(&s, Password::new("")),
        Err(LdapSetupError::EmptyPassword)
    ));
}

#[tokio::test]
async fn a_user_without_a_valid_tenant_or_matching_twice_cannot_sign_in() {
    let Some(env) = env() else { return };
    // Every person matches `(objectClass=inetOrgPerson)`: ambiguous.
    let dir = directory(&spec(
        &env.ldaps,
        Some(&env.ca),
        json!({ "user_filter": "(&(objectClass=inetOrgPerson)(|(uid={username})(uid=*)))" }),
    ));
    assert!(dir.find_by_username("lena").await.unwrap().is_none());
    // The tenant attribute names a tenant id that is not valid.
    let dir = directory(&spec(
        &env.ldaps,
        Some(&env.ca),
        json!({ "tenant_attribute": "cn" }),
    ));
    assert!(dir.find_by_username("lena").await.unwrap().is_none());
    // A search base that does not exist is the directory's fault: 503.
    let dir = directory(&spec(
        &env.ldaps,
        Some(&env.ca),
        json!({ "user_base_dn": "ou=nobody,dc=kailash,dc=test" }),
    ));
    assert!(dir.find_by_username("lena").await.is_err());
}

/// Many sign-ins at once share the small pool without failing.
#[tokio::test]
async fn concurrent_sign_ins_share_the_pool() {
    let Some(env) = env() else { return };
    let dir = directory(&spec(&env.ldaps, Some(&env.ca), json!({ "pool_size": 2 })));
    let mut tasks = Vec::new();
    for i in 0..24 {
        let dir = dir.clone();
        tasks.push(tokio::spawn(async move {
            let (name, pw) = if i % 2 == 0 {
                ("lena", LENA)
            } else {
                ("omar", OMAR)
            };
            let user = dir.find_by_username(name).await.unwrap().unwrap();
            let kailash_auth::users::Credential::Directory(cred) = &user.credential else {
                panic!("a directory credential")
            };
            assert!(cred.verify(&Password::new(pw)).await.unwrap());
            assert!(!cred.verify(&Password::new("nope")).await.unwrap());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn local_user(name: &str, password: &str) -> UserConfig {
    let hasher = PasswordHasher::new(HashParams {
        memory_kib: 8192,
        iterations: 1,
        parallelism: 1,
    })
    .unwrap();
    let hash = hasher.hash(&Password::new(password.to_owned())).unwrap();
    serde_json::from_value(json!({
        "username": name, "tenant": "acme", "roles": ["business_user"],
        "password_hash": hash.as_str(),
    }))
    .unwrap()
}
