//! AuthService behaviours not visible over HTTP.

use std::net::IpAddr;
use std::sync::Arc;

use kailash_auth::jwt::{Algorithm, KeySet, SigningKey};
use kailash_auth::password::{HashParams, Password, PasswordHash, PasswordHasher};
use kailash_auth::service::{AuthConfig, AuthService, LoginRequest};
use kailash_auth::users::{StaticUserStore, UserConfig};
use kailash_core::TenantId;
use kailash_core::audit::MemoryAuditSink;
use kailash_core::clock::ManualClock;
use kailash_core::context::{RequestContext, RequestIdGenerator};
use kailash_core::state::{Namespace, SharedState, StateKey};

fn ctx() -> RequestContext {
    RequestContext::new(
        RequestIdGenerator::new().next_id(),
        IpAddr::from([192, 0, 2, 1]),
        jiff::Timestamp::now(),
    )
}

#[tokio::test]
async fn a_weak_stored_hash_is_upgraded_at_login() {
    let weak = PasswordHasher::new(HashParams {
        memory_kib: 8192,
        iterations: 1,
        parallelism: 1,
    })
    .unwrap();
    let password = "Upgrade-Me-Please-7";
    let weak_hash = weak.hash(&Password::new(password.to_owned())).unwrap();
    let user: UserConfig = serde_json::from_value(serde_json::json!({
        "username": "olivia", "tenant": "acme", "roles": ["business_user"],
        "password_hash": weak_hash.as_str(),
    }))
    .unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let state = SharedState::memory(clock.clone());
    let keys = Arc::new(KeySet::new(
        SigningKey::generate(Algorithm::EdDSA, "k1").unwrap(),
        clock,
    ));
    let service = AuthService::new(
        AuthConfig::default(),
        Arc::new(StaticUserStore::new(vec![user]).unwrap()),
        keys,
        state.clone(),
        Arc::new(MemoryAuditSink::new()),
    );
    let login = || LoginRequest {
        username: "olivia".into(),
        password: password.into(),
        totp: None,
        recovery_code: None,
    };
    service.login(login(), &ctx()).await.unwrap();

    let key = StateKey::tenant(
        &TenantId::new("acme").unwrap(),
        Namespace::new("user.password"),
        "olivia",
    );
    let stored = state.kv.get(&key).await.unwrap().expect("hash upgraded");
    let upgraded = PasswordHash::parse(std::str::from_utf8(&stored).unwrap()).unwrap();
    assert!(!PasswordHasher::default().needs_rehash(&upgraded));
    assert_ne!(upgraded.as_str(), weak_hash.as_str());
    // The upgraded hash is the one used from now on.
    service.login(login(), &ctx()).await.unwrap();
}

/// The routes over HTTP: the published document is one the validator
/// enforces, and what it forbids is refused with `422` and a pointer,
/// never quoting the (secret) value.
#[cfg(feature = "openapi")]
mod http_contract {
    use std::sync::Arc;

    use axum::body::Body;
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use kailash_auth::bounds::{
        MAX_CODE_CHARS, MAX_PASSWORD_CHARS, MAX_TOKEN_CHARS, MAX_USERNAME_CHARS,
    };
    use kailash_auth::http::{admin_openapi, openapi, router};
    use kailash_auth::jwt::{Algorithm, KeySet, SigningKey};
    use kailash_auth::password::{HashParams, Password, PasswordHasher};
    use kailash_auth::service::{AuthConfig, AuthService};
    use kailash_auth::users::{StaticUserStore, UserConfig};
    use kailash_core::Principal;
    use kailash_core::audit::MemoryAuditSink;
    use kailash_core::clock::ManualClock;
    use kailash_core::schema::check_document;
    use kailash_core::state::SharedState;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    const SECRET: &str = "Very-Secret-Passw0rd-Value";

    fn service() -> (AuthService, Arc<MemoryAuditSink>) {
        let hasher = PasswordHasher::new(HashParams {
            memory_kib: 8192,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        let hash = hasher.hash(&Password::new(SECRET.to_owned())).unwrap();
        let user: UserConfig = serde_json::from_value(json!({
            "username": "olivia", "tenant": "acme", "roles": ["business_user"],
            "password_hash": hash.as_str(),
        }))
        .unwrap();
        let clock = Arc::new(ManualClock::starting_now());
        let keys = Arc::new(KeySet::new(
            SigningKey::generate(Algorithm::EdDSA, "k1").unwrap(),
            clock.clone(),
        ));
        let audit = Arc::new(MemoryAuditSink::new());
        let service = AuthService::new(
            AuthConfig::default(),
            Arc::new(StaticUserStore::new(vec![user]).unwrap()),
            keys,
            SharedState::memory(clock),
            audit.clone(),
        )
        .with_hasher(hasher);
        (service, audit)
    }

    /// Sends `body` (as `content_type`) to `path`, as `principal` when given.
    async fn send(
        service: &AuthService,
        path: &str,
        content_type: &str,
        body: &str,
        principal: Option<Principal>,
    ) -> (StatusCode, String, Value) {
        let mut req = Request::post(path)
            .header("content-type", content_type)
            .body(Body::from(body.to_owned()))
            .unwrap();
        req.extensions_mut().insert(super::ctx());
        if let Some(p) = principal {
            req.extensions_mut().insert(p);
        }
        let res = router(service.clone()).oneshot(req).await.unwrap();
        let status = res.status();
        let ct = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(
            !text.contains(SECRET),
            "a refusal echoes the password: {text}"
        );
        (
            status,
            ct,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    fn pointers(problem: &Value) -> Vec<&str> {
        problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn both_documents_are_enforceable_and_state_the_bounds() {
        check_document(&openapi()).unwrap();
        check_document(&admin_openapi()).unwrap();
        let doc = serde_json::to_value(openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let login = &schemas["LoginRequest"];
        assert_eq!(login["additionalProperties"], false);
        assert_eq!(
            login["properties"]["username"]["maxLength"],
            MAX_USERNAME_CHARS
        );
        assert_eq!(
            login["properties"]["password"]["maxLength"],
            MAX_PASSWORD_CHARS
        );
        assert_eq!(login["properties"]["totp"]["maxLength"], MAX_CODE_CHARS);
        assert_eq!(
            login["properties"]["recovery_code"]["maxLength"],
            MAX_CODE_CHARS
        );
        let enrol = &schemas["EnrolRequest"]["properties"];
        assert_eq!(enrol["password"]["maxLength"], MAX_PASSWORD_CHARS);
        assert_eq!(enrol["totp"]["maxLength"], MAX_CODE_CHARS);
        assert_eq!(enrol["recovery_code"]["maxLength"], MAX_CODE_CHARS);
        assert_eq!(
            schemas["RefreshRequest"]["properties"]["refresh_token"]["maxLength"],
            MAX_TOKEN_CHARS
        );
        assert_eq!(
            schemas["MfaCode"]["properties"]["code"]["maxLength"],
            MAX_CODE_CHARS
        );
        assert_eq!(schemas["MfaCode"]["additionalProperties"], false);
        let change = &schemas["PasswordChange"]["properties"];
        assert_eq!(change["current_password"]["maxLength"], MAX_PASSWORD_CHARS);
        assert_eq!(change["new_password"]["maxLength"], MAX_PASSWORD_CHARS);
        assert!(schemas["JwkSet"].is_object() && schemas["Session"].is_object());
        assert_eq!(
            schemas["PublicJwk"]["properties"]["use"]["enum"],
            json!(["sig"])
        );
        assert_eq!(
            schemas["LoginOutcome"]["oneOf"].as_array().unwrap().len(),
            2
        );
        assert!(doc["components"]["securitySchemes"]["enrolment_token"].is_object());
        // Every body-taking operation documents its extractor's refusals.
        for path in [
            "/auth/login",
            "/auth/refresh",
            "/auth/mfa/enroll",
            "/auth/mfa/verify",
            "/auth/mfa/bootstrap/verify",
            "/auth/password",
        ] {
            let responses = &doc["paths"][path]["post"]["responses"];
            for code in ["400", "415", "422"] {
                assert!(responses[code].is_object(), "{path} documents {code}");
            }
        }
        let admin = serde_json::to_value(admin_openapi()).unwrap();
        let param = &admin["paths"]["/auth/users/{username}/disable"]["post"]["parameters"][0];
        assert_eq!(param["schema"]["maxLength"], MAX_USERNAME_CHARS);
    }

    #[tokio::test]
    async fn every_documented_operation_is_routed() {
        let (service, _) = service();
        let doc = serde_json::to_value(openapi()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                let uri = path.replace("{id}", "some-session");
                let req = Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap();
                let res = router(service.clone()).oneshot(req).await.unwrap();
                assert_ne!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
                assert_ne!(
                    res.status(),
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_body_the_schema_forbids_is_422_with_pointers_and_no_value() {
        let (service, audit) = service();
        let json = "application/json";
        // Too long (the old 400), wrong type, missing, extra: every one named.
        let body = json!({
            "username": "u".repeat(MAX_USERNAME_CHARS + 1),
            "password": format!("{SECRET}{}", "x".repeat(MAX_PASSWORD_CHARS)),
            "totp": 123456,
            "extra": SECRET,
        });
        let (status, ct, p) = send(&service, "/auth/login", json, &body.to_string(), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
        assert_eq!(ct, "application/problem+json");
        let mut found = pointers(&p);
        found.sort_unstable();
        assert_eq!(found, ["/extra", "/password", "/totp", "/username"], "{p}");
        // Audited as a malformed login, without the value.
        let events = audit.events();
        let last = format!("{:?}", events.last().unwrap());
        assert!(last.contains("malformed request"), "{last}");
        assert!(!last.contains(SECRET));

        // A username at its limit in multi-byte characters is schema-valid,
        // and the service accepts it (401: no such user), where the byte
        // limit refused it.
        let wide = json!({ "username": "é".repeat(MAX_USERNAME_CHARS), "password": SECRET });
        let (status, _, p) = send(&service, "/auth/login", json, &wide.to_string(), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{p}");

        // Refresh: a token over its limit.
        let long = json!({ "refresh_token": "t".repeat(MAX_TOKEN_CHARS + 1) });
        let (status, _, p) = send(&service, "/auth/refresh", json, &long.to_string(), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
        assert_eq!(pointers(&p), ["/refresh_token"]);

        // Not JSON, and not declared JSON: documented 400 and 415.
        let (status, ct, _) = send(&service, "/auth/login", json, "{\"username\":", None).await;
        assert_eq!(
            (status, ct.as_str()),
            (StatusCode::BAD_REQUEST, "application/problem+json")
        );
        let (status, ct, _) = send(&service, "/auth/refresh", "text/plain", "{}", None).await;
        assert_eq!(
            (status, ct.as_str()),
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "application/problem+json"
            )
        );

        // MFA verification: an extra property, and an over-long code.
        let me = Principal::builder("olivia").build();
        for body in [
            json!({ "code": "123456", "extra": 1 }),
            json!({ "code": "1".repeat(65) }),
        ] {
            let (status, _, p) = send(
                &service,
                "/auth/mfa/verify",
                json,
                &body.to_string(),
                Some(me.clone()),
            )
            .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
        }
        // A well-formed code with no enrolment in progress: a state
        // conflict, not a malformed request.
        let (status, _, p) = send(
            &service,
            "/auth/mfa/verify",
            json,
            &json!({ "code": "123456" }).to_string(),
            Some(me.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{p}");
        // A password change over its limit.
        let body = json!({ "current_password": SECRET, "new_password": "n".repeat(MAX_PASSWORD_CHARS + 1) });
        let (status, _, p) = send(
            &service,
            "/auth/password",
            json,
            &body.to_string(),
            Some(me),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
        assert_eq!(pointers(&p), ["/new_password"]);
    }

    #[tokio::test]
    async fn a_schema_valid_login_still_gets_its_answer() {
        let (service, _) = service();
        let body = json!({ "username": "olivia", "password": SECRET, "totp": null });
        let (status, _, pair) = send(
            &service,
            "/auth/login",
            "application/json",
            &body.to_string(),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{pair}");
        assert_eq!(pair["token_type"], "Bearer");
        let wrong = json!({ "username": "olivia", "password": "Wrong-Passw0rd-Guess" });
        let (status, _, p) = send(
            &service,
            "/auth/login",
            "application/json",
            &wrong.to_string(),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{p}");
    }
}

#[path = "service_login/external.rs"]
mod external;
#[cfg(feature = "ldap")]
#[path = "service_login/ldap.rs"]
mod ldap;
#[cfg(all(feature = "saml", feature = "openapi"))]
#[path = "service_login/saml.rs"]
mod saml;

#[cfg(feature = "saml")]
#[path = "fuzz_harness/saml_response.rs"]
mod fuzz_saml;

/// Replays the `saml_response` fuzz corpus (`fuzz/corpus/saml_response/`)
/// on stable through the fuzz target's own harness: no input panics and
/// every one is refused (none carries the fixture key's signature).
#[cfg(feature = "saml")]
#[test]
fn replay_saml_response_fuzz_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/saml_response");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let accepted = std::panic::catch_unwind(|| fuzz_saml::run(&bytes))
            .unwrap_or_else(|_| panic!("panicked on {}", path.display()));
        assert_eq!(accepted, Some(false), "{} was accepted", path.display());
        files += 1;
    }
    assert!(files >= 10, "corpus has {files} files");
    assert!(fuzz_saml::REQUEST_ID.starts_with('_'));
}
