//! Issue 10, item 4: a stolen access token cannot take the second factor;
//! administrators have recovery paths; a user whose role requires a second
//! factor bootstraps it with an enrolment-only token.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kailash::GatewayBuilder;
use kailash::auth::totp::{TotpConfig, TotpSecret};
use kailash::config::GatewayConfig;
use serde_json::{Value, json};

use crate::support::demo::*;
use crate::support::*;

/// An administrator of acme without a second factor (bob's password hash,
/// so her password is `Bob-Demo-Passw0rd!`).
const GRACE: &str = r#"
[[users]]
username = "grace"
tenant = "acme"
roles = ["admin"]
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$N4Xzr9wj/Z0KvLpw/unyBg$LncNE8ciw8wyfKq1zdTPqvzokFBAivCrdkNxqxl1akc"
attributes = { department = "engineering", clearance = "secret", location = { country = "US" } }
"#;
const GRACE_PASSWORD: &str = "Bob-Demo-Passw0rd!";
const ALICE_PASSWORD: &str = "Alice-Demo-Passw0rd!";
const BOB_PASSWORD: &str = "Bob-Demo-Passw0rd!";

/// The demo gateway plus grace, and its data directory (for the audit file).
async fn gateway(overrides: &[(&str, String)]) -> (Running, PathBuf) {
    let vars: Vec<(String, String)> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let text = format!("{}\n{GRACE}", demo_config_text());
    let config = GatewayConfig::from_toml_with_env(&text, "gateway.toml", vars).expect("config");
    let dir = temp_dir();
    let gateway = GatewayBuilder::from_config_with_backends(&config, &dir)
        .await
        .expect("backends")
        .build()
        .expect("gateway");
    (start_gateway(gateway).await, dir)
}

/// The TOTP code of `secret` `offset` seconds from now (the server accepts
/// one step either side, and each step once per user).
fn totp_at(secret: &str, offset: i64) -> String {
    let secret = TotpSecret::from_base32(secret).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    TotpConfig::default().code_at(&secret, now.saturating_add_signed(offset))
}

async fn login_alice(gw: &Running) -> String {
    let body =
        json!({ "username": "alice", "password": ALICE_PASSWORD, "totp": totp_now(ALICE_TOTP) });
    tokens(&post(gw, "/auth/login", body, None).await).0
}

/// The audit events, once one matching `wanted` is written (the file is
/// written by a background thread).
async fn audit_until(dir: &Path, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
    let path = dir.join("audit.jsonl");
    for _ in 0..250 {
        let events: Vec<Value> = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if events.iter().any(&wanted) {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no such audit event in {}", path.display());
}

fn is(e: &Value, action: &str, actor: &str, resource: &str) -> bool {
    e["a"] == action && e["u"] == actor && e["r"] == resource
}

#[tokio::test]
async fn a_stolen_access_token_alone_cannot_enrol_a_second_factor() {
    for overrides in backends() {
        let (gw, dir) = gateway(&overrides).await;
        let (stolen, _) = tokens(&login(&gw, "bob", BOB_PASSWORD).await);
        // No password: refused before anything is generated.
        post(&gw, "/auth/mfa/enroll", json!({}), Some(&stolen))
            .await
            .assert_problem(422);
        // Over-long fields and unknown ones: 422 before any work, and not
        // counted (else the lock below would come sooner).
        for body in [
            json!({ "password": "p".repeat(2000) }),
            json!({ "password": BOB_PASSWORD, "totp": "1".repeat(100) }),
            json!({ "password": BOB_PASSWORD, "recovery_code": "r".repeat(100) }),
            json!({ "password": BOB_PASSWORD, "extra": true }),
        ] {
            post(&gw, "/auth/mfa/enroll", body, Some(&stolen))
                .await
                .assert_problem(422);
        }
        post(
            &gw,
            "/auth/mfa/verify",
            json!({ "code": "1".repeat(100) }),
            Some(&stolen),
        )
        .await
        .assert_problem(422);
        // Guesses count toward the account lockout, like failed logins.
        for guess in 1..=4 {
            let body = json!({ "password": format!("Guess-Number-{guess}!") });
            post(&gw, "/auth/mfa/enroll", body, Some(&stolen))
                .await
                .assert_problem(401);
            assert_eq!(
                get_auth(&gw, "/auth/sessions", &stolen).await.status,
                200,
                "guess {guess} leaves the session"
            );
        }
        let last = json!({ "password": "Guess-Number-5!" });
        post(&gw, "/auth/mfa/enroll", last, Some(&stolen))
            .await
            .assert_problem(401);
        // The guesses locked the account: every session of bob ended, the
        // thief's included, and the owner waits out the lock.
        get_auth(&gw, "/auth/sessions", &stolen)
            .await
            .assert_problem(401);
        let locked = login(&gw, "bob", BOB_PASSWORD).await;
        locked.assert_problem(423);
        assert!(locked.header("retry-after").is_some());
        let events = audit_until(&dir, |e| {
            e["a"] == "auth.account"
                && e["sev"] == "critical"
                && e["u"] == "bob"
                && e["why"] == "account locked by wrong current passwords; sessions revoked"
        })
        .await;
        let failures = events
            .iter()
            .filter(|e| {
                e["a"] == "auth.mfa.enroll"
                    && e["d"] == "failure"
                    && e["why"] == "current password wrong"
            })
            .count();
        assert_eq!(failures, 5);
        assert!(
            !std::fs::read_to_string(dir.join("audit.jsonl"))
                .unwrap()
                .contains("Guess-Number"),
            "no password in the audit trail"
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn enrolment_with_the_password_works_and_re_enrolment_needs_a_current_code() {
    for overrides in backends() {
        let (gw, _dir) = gateway(&overrides).await;
        // Alice is enrolled (her secret is configured): the password alone
        // does not replace it, nor does a wrong code.
        let alice = login_alice(&gw).await;
        let no_code = json!({ "password": ALICE_PASSWORD });
        let r = post(&gw, "/auth/mfa/enroll", no_code, Some(&alice)).await;
        assert_eq!(r.assert_problem(401)["mfa_required"], true);
        let wrong = json!({ "password": ALICE_PASSWORD, "totp": "000000" });
        let r = post(&gw, "/auth/mfa/enroll", wrong, Some(&alice)).await;
        assert_eq!(r.assert_problem(401)["mfa_required"], true);
        // With a current code (the next step: the login used this one).
        let with_code = json!({ "password": ALICE_PASSWORD, "totp": totp_at(ALICE_TOTP, 30) });
        let r = post(&gw, "/auth/mfa/enroll", with_code, Some(&alice)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let secret = r.json()["secret"].as_str().unwrap().to_owned();
        let verified = post(
            &gw,
            "/auth/mfa/verify",
            json!({ "code": totp_now(&secret) }),
            Some(&alice),
        )
        .await;
        assert_eq!(verified.status, 200, "{}", verified.text());
        let codes = verified.json()["recovery_codes"].clone();
        // The old secret is gone; a new recovery code logs in.
        let old = json!({ "username": "alice", "password": ALICE_PASSWORD, "totp": totp_at(ALICE_TOTP, -30) });
        post(&gw, "/auth/login", old, None)
            .await
            .assert_problem(401);
        let recovery =
            json!({ "username": "alice", "password": ALICE_PASSWORD, "recovery_code": codes[0] });
        tokens(&post(&gw, "/auth/login", recovery, None).await);

        // Bob has no second factor: his password is enough to enrol one;
        // then re-enrolment takes a recovery code as well.
        let (bob, _) = tokens(&login(&gw, "bob", BOB_PASSWORD).await);
        let secret = enrolment_secret(&gw, &bob, BOB_PASSWORD).await;
        let r = post(
            &gw,
            "/auth/mfa/verify",
            json!({ "code": totp_now(&secret) }),
            Some(&bob),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let bob_codes = r.json()["recovery_codes"].clone();
        post(
            &gw,
            "/auth/mfa/enroll",
            json!({ "password": BOB_PASSWORD }),
            Some(&bob),
        )
        .await
        .assert_problem(401);
        let again = json!({ "password": BOB_PASSWORD, "recovery_code": bob_codes[0] });
        let r = post(&gw, "/auth/mfa/enroll", again.clone(), Some(&bob)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        // A recovery code works once.
        post(&gw, "/auth/mfa/enroll", again, Some(&bob))
            .await
            .assert_problem(401);
        gw.stop().await;
    }
}

#[tokio::test]
async fn administrators_disable_enable_and_reset_over_http_audited() {
    for overrides in backends() {
        let (gw, dir) = gateway(&overrides).await;
        let alice = login_alice(&gw).await;
        let (bob, _) = tokens(&login(&gw, "bob", BOB_PASSWORD).await);
        let (dave, _) = tokens(&login(&gw, "dave", "Dave-Demo-Passw0rd!").await);

        // Without `user:manage`: 403, nothing changes.
        let r = post(&gw, "/auth/users/dave/disable", json!({}), Some(&bob)).await;
        assert_eq!(r.assert_problem(403)["permission"], "user:manage");
        post(&gw, "/auth/users/dave/mfa/reset", json!({}), Some(&bob))
            .await
            .assert_problem(403);
        assert_eq!(get_auth(&gw, "/auth/sessions", &dave).await.status, 200);
        post(&gw, "/auth/users/dave/disable", json!({}), None)
            .await
            .assert_problem(401);
        // Unknown users, another tenant's users, over-long names, oneself.
        post(&gw, "/auth/users/nobody/disable", json!({}), Some(&alice))
            .await
            .assert_problem(404);
        post(&gw, "/auth/users/carol/disable", json!({}), Some(&alice))
            .await
            .assert_problem(404);
        let long = "x".repeat(300);
        post(
            &gw,
            &format!("/auth/users/{long}/disable"),
            json!({}),
            Some(&alice),
        )
        .await
        .assert_problem(422);
        post(&gw, "/auth/users/%FF%FE/disable", json!({}), Some(&alice))
            .await
            .assert_problem(400);
        post(&gw, "/auth/users/alice/mfa/reset", json!({}), Some(&alice))
            .await
            .assert_problem(400);
        tokens(&login(&gw, "carol", "Carol-Demo-Passw0rd!").await);

        // Disable: sessions end at once, logins fail; enable: logins work.
        let r = post(&gw, "/auth/users/dave/disable", json!({}), Some(&alice)).await;
        assert_eq!(r.status, 204, "{}", r.text());
        get_auth(&gw, "/auth/sessions", &dave)
            .await
            .assert_problem(401);
        login(&gw, "dave", "Dave-Demo-Passw0rd!")
            .await
            .assert_problem(401);
        let r = post(&gw, "/auth/users/dave/enable", json!({}), Some(&alice)).await;
        assert_eq!(r.status, 204, "{}", r.text());
        tokens(&login(&gw, "dave", "Dave-Demo-Passw0rd!").await);

        // MFA reset: bob enrols, the administrator resets it, bob's
        // sessions end and his password alone logs him in again.
        let r = post(
            &gw,
            "/auth/mfa/enroll",
            json!({ "password": BOB_PASSWORD }),
            Some(&bob),
        )
        .await;
        let secret = r.json()["secret"].as_str().unwrap().to_owned();
        let r = post(
            &gw,
            "/auth/mfa/verify",
            json!({ "code": totp_now(&secret) }),
            Some(&bob),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        login(&gw, "bob", BOB_PASSWORD).await.assert_problem(401);
        let r = post(&gw, "/auth/users/Bob/mfa/reset", json!({}), Some(&alice)).await;
        assert_eq!(r.status, 204, "{}", r.text());
        get_auth(&gw, "/auth/sessions", &bob)
            .await
            .assert_problem(401);
        tokens(&login(&gw, "bob", BOB_PASSWORD).await);

        let events = audit_until(&dir, |e| is(e, "auth.mfa.reset", "alice", "user:bob")).await;
        for (action, reason) in [
            (
                "auth.account",
                "account disabled by an administrator; sessions revoked",
            ),
            ("auth.account", "account enabled by an administrator"),
            (
                "auth.mfa.reset",
                "second factor reset by an administrator; sessions revoked",
            ),
        ] {
            assert!(
                events.iter().any(|e| e["a"] == action
                    && e["why"] == reason
                    && e["u"] == "alice"
                    && e["d"] == "success"),
                "{action}: {reason}"
            );
        }
        assert!(
            events
                .iter()
                .any(|e| is(e, "auth.account", "alice", "user:dave"))
        );
        assert!(events.iter().any(|e| e["a"] == "access.check"
            && e["u"] == "bob"
            && e["d"] == "deny"
            && e["r"] == "user:manage"));
        // Another tenant's user is recorded like an unknown name: nothing
        // in acme's trail says carol exists.
        assert!(events.iter().any(|e| e["a"] == "auth.account"
            && e["why"] == "unknown user"
            && e["u"] == "alice"
            && e.get("resource").is_none_or(Value::is_null)));
        assert!(
            !events
                .iter()
                .any(|e| e["u"] == "alice" && e.to_string().contains("carol")),
            "no entry of acme's admin names another tenant's user"
        );
        for e in &events {
            assert!(e.to_string().len() < 4096, "bounded audit entries");
        }
        gw.stop().await;
    }
}

#[tokio::test]
async fn the_enrolment_only_token_enrols_and_does_nothing_else() {
    for overrides in backends() {
        let (gw, _dir) = gateway(&overrides).await;
        let (bob, _) = tokens(&login(&gw, "bob", BOB_PASSWORD).await);
        // Grace's role requires a second factor she does not have: her
        // login gives an enrolment-only token, no session.
        let r = login(&gw, "grace", GRACE_PASSWORD).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let grant = r.json();
        assert_eq!(grant["mfa_enrolment_required"], true);
        assert!(grant.get("access_token").is_none() && grant.get("refresh_token").is_none());
        assert!(grant["expires_in"].as_u64().unwrap() <= 600);
        let token = grant["enrolment_token"].as_str().unwrap().to_owned();

        // Nowhere else: the authentication layer, refresh and every other
        // route refuse it.
        get_auth(&gw, "/auth/sessions", &token)
            .await
            .assert_problem(401);
        post(&gw, "/auth/logout", json!({}), Some(&token))
            .await
            .assert_problem(401);
        post(
            &gw,
            "/auth/mfa/enroll",
            json!({ "password": GRACE_PASSWORD }),
            Some(&token),
        )
        .await
        .assert_problem(401);
        post(&gw, "/auth/users/bob/disable", json!({}), Some(&token))
            .await
            .assert_problem(401);
        post(
            &gw,
            "/auth/refresh",
            json!({ "refresh_token": token }),
            None,
        )
        .await
        .assert_problem(401);
        get_auth(&gw, "/api/tenant/usage", &token)
            .await
            .assert_problem(401);
        // And the bootstrap routes take nothing but it.
        post(&gw, "/auth/mfa/bootstrap/enroll", json!({}), None)
            .await
            .assert_problem(401);
        post(&gw, "/auth/mfa/bootstrap/enroll", json!({}), Some(&bob))
            .await
            .assert_problem(401);

        // (Well formed, but nothing is being enrolled yet: a conflict.)
        post(
            &gw,
            "/auth/mfa/bootstrap/verify",
            json!({ "code": "123456" }),
            Some(&token),
        )
        .await
        .assert_problem(409);
        post(
            &gw,
            "/auth/mfa/bootstrap/verify",
            json!({ "code": "1".repeat(100) }),
            Some(&token),
        )
        .await
        .assert_problem(422);
        let r = post(&gw, "/auth/mfa/bootstrap/enroll", json!({}), Some(&token)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let secret = r.json()["secret"].as_str().unwrap().to_owned();
        post(
            &gw,
            "/auth/mfa/bootstrap/verify",
            json!({ "code": "000000" }),
            Some(&token),
        )
        .await
        .assert_problem(401);
        let r = post(
            &gw,
            "/auth/mfa/bootstrap/verify",
            json!({ "code": totp_now(&secret) }),
            Some(&token),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let codes = r.json()["recovery_codes"].clone();
        // Once: the token cannot enrol again now that she has a factor.
        post(&gw, "/auth/mfa/bootstrap/enroll", json!({}), Some(&token))
            .await
            .assert_problem(401);
        let r = login(&gw, "grace", GRACE_PASSWORD).await;
        assert_eq!(r.assert_problem(401)["mfa_required"], true);
        let with_code =
            json!({ "username": "grace", "password": GRACE_PASSWORD, "recovery_code": codes[0] });
        let (grace, _) = tokens(&post(&gw, "/auth/login", with_code, None).await);
        assert_eq!(get_auth(&gw, "/auth/sessions", &grace).await.status, 200);

        // After an administrator's reset she bootstraps again.
        let alice = login_alice(&gw).await;
        let r = post(&gw, "/auth/users/grace/mfa/reset", json!({}), Some(&alice)).await;
        assert_eq!(r.status, 204, "{}", r.text());
        get_auth(&gw, "/auth/sessions", &grace)
            .await
            .assert_problem(401);
        let r = login(&gw, "grace", GRACE_PASSWORD).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["mfa_enrolment_required"], true);

        let doc = get(gw.addr, "/openapi.json").await.json();
        for path in [
            "/auth/mfa/bootstrap/enroll",
            "/auth/mfa/bootstrap/verify",
            "/auth/users/{username}/disable",
            "/auth/users/{username}/enable",
            "/auth/users/{username}/mfa/reset",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} documented");
        }
        // Derived from the types: the validator enforces every schema, the
        // bootstrap routes name their own scheme, the bounds are published.
        kailash::schema::check_document_json(&doc).unwrap();
        let bootstrap = &doc["paths"]["/auth/mfa/bootstrap/verify"]["post"];
        assert_eq!(bootstrap["security"], json!([{ "enrolment_token": [] }]));
        assert!(doc["components"]["securitySchemes"]["enrolment_token"].is_object());
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        let username = &doc["paths"]["/auth/users/{username}/disable"]["post"]["parameters"];
        assert!(
            username
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "username" && p["schema"]["maxLength"] == 256),
            "{username}"
        );
        gw.stop().await;
    }
}

/// Wrong enrolment confirmation codes are guesses like passwords: they
/// count toward the lockout, and the guess that locks ends every session.
#[tokio::test]
async fn wrong_enrolment_codes_count_toward_the_lockout() {
    for overrides in backends() {
        let (gw, _dir) = gateway(&overrides).await;
        let (bob, _) = tokens(&login(&gw, "bob", BOB_PASSWORD).await);
        let secret = enrolment_secret(&gw, &bob, BOB_PASSWORD).await;
        let right = totp_now(&secret);
        let wrong = if right == "000000" {
            "111111"
        } else {
            "000000"
        };
        for _ in 0..5 {
            let r = post(
                &gw,
                "/auth/mfa/verify",
                json!({ "code": wrong }),
                Some(&bob),
            )
            .await;
            assert_eq!(r.assert_problem(401)["mfa_required"], true);
        }
        // Locked: the session the guesses came through is over, and the
        // owner's next login is refused with Retry-After.
        let r = post(
            &gw,
            "/auth/mfa/verify",
            json!({ "code": right }),
            Some(&bob),
        )
        .await;
        r.assert_problem(401);
        let r = post(
            &gw,
            "/auth/login",
            json!({ "username": "bob", "password": BOB_PASSWORD }),
            None,
        )
        .await;
        r.assert_problem(423);
        assert!(r.header("retry-after").is_some());
        gw.stop().await;
    }
}

/// An owner who enrols a second factor (because they suspect theft) ends
/// the refreshing of every session made without one: the thief's
/// password-only session cannot refresh past its access token.
#[tokio::test]
async fn enrolling_a_second_factor_ends_refreshing_of_password_only_sessions() {
    for overrides in backends() {
        let (gw, _dir) = gateway(&overrides).await;
        let (_, thief_refresh) = tokens(&login(&gw, "bob", BOB_PASSWORD).await);
        let (owner, _) = tokens(&login(&gw, "bob", BOB_PASSWORD).await);
        let secret = enrolment_secret(&gw, &owner, BOB_PASSWORD).await;
        let r = post(
            &gw,
            "/auth/mfa/verify",
            json!({ "code": totp_now(&secret) }),
            Some(&owner),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = post(
            &gw,
            "/auth/refresh",
            json!({ "refresh_token": thief_refresh }),
            None,
        )
        .await;
        assert_eq!(r.assert_problem(401)["mfa_required"], true);
        gw.stop().await;
    }
}
