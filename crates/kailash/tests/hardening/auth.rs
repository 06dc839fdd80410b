//! Issue 10, authentication: the password-change oracle (item 2), bounded
//! argon2 work (3), refresh re-applying the second factor (5), bounded
//! input in the audit trail (6), JWKS with unusable keys (10c), a refresh
//! whose answer was lost (10d), and two credentials in one request (10e).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kailash::GatewayBuilder;
use kailash::audit::MemoryAuditSink;
use kailash::auth::jwt::{
    Algorithm, JwksSource, KeySet, KeySetError, RemoteKeySet, SigningKey, TokenType, Verifier,
};
use kailash::auth::service::AuthService;
use kailash::auth::users::{StaticUserStore, UserRecord, UserStore, UserStoreError};
use kailash::clock::SystemClock;
use kailash::config::GatewayConfig;
use kailash::state::{KeyValueStore, SharedState, StateError, StateKey};
use serde_json::{Value, json};

use crate::support::demo::*;
use crate::support::{Resp, Running, get, request, start_gateway};

const BOB: &str = "Bob-Demo-Passw0rd!";

// ---------------------------------------------------------------- helpers

/// The demo gateway with its data directory under `dir` (to read the audit
/// file after it stops).
async fn demo_in(dir: &Path, overrides: &[(&str, String)]) -> Running {
    let vars: Vec<(String, String)> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let config = GatewayConfig::from_toml_with_env(&demo_config_text(), "gateway.toml", vars)
        .expect("config");
    let gateway = GatewayBuilder::from_config_with_backends(&config, dir)
        .await
        .expect("backends")
        .build()
        .expect("gateway");
    start_gateway(gateway).await
}

/// Every line of the audit file in `dir`.
fn audit_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .expect("audit file")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn password_change(current: &str, new: &str) -> Value {
    json!({ "current_password": current, "new_password": new })
}

/// The demo users, whose roles a test can change while the gateway runs.
struct SwitchableRoles {
    users: StaticUserStore,
    roles: Mutex<Vec<(String, Vec<String>)>>,
}

impl SwitchableRoles {
    fn set_roles(&self, subject: &str, roles: &[&str]) {
        self.roles.lock().unwrap().push((
            subject.to_owned(),
            roles.iter().map(|r| (*r).to_owned()).collect(),
        ));
    }
    fn apply(&self, user: Option<UserRecord>) -> Option<UserRecord> {
        let mut user = user?;
        if let Some((_, roles)) = self
            .roles
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(s, _)| *s == user.subject)
        {
            user.roles = roles.clone();
        }
        Some(user)
    }
}

#[async_trait]
impl UserStore for SwitchableRoles {
    async fn find_by_username(&self, username: &str) -> Result<Option<UserRecord>, UserStoreError> {
        Ok(self.apply(self.users.find_by_username(username).await?))
    }
    async fn find_by_subject(&self, subject: &str) -> Result<Option<UserRecord>, UserStoreError> {
        Ok(self.apply(self.users.find_by_subject(subject).await?))
    }
}

/// A key/value store whose next applied compare-and-swap reports a backend
/// timeout although it was stored: a reply lost on the way back.
struct ReplyLost {
    inner: Arc<dyn KeyValueStore>,
    lose_next: AtomicBool,
}

#[async_trait]
impl KeyValueStore for ReplyLost {
    async fn get(&self, key: &StateKey) -> Result<Option<Bytes>, StateError> {
        self.inner.get(key).await
    }
    async fn set(
        &self,
        key: &StateKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), StateError> {
        self.inner.set(key, value, ttl).await
    }
    async fn set_if_absent(
        &self,
        key: &StateKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StateError> {
        self.inner.set_if_absent(key, value, ttl).await
    }
    async fn compare_and_swap(
        &self,
        key: &StateKey,
        expected: Option<&[u8]>,
        new: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool, StateError> {
        let swapped = self.inner.compare_and_swap(key, expected, new, ttl).await?;
        if swapped && self.lose_next.swap(false, Ordering::SeqCst) {
            return Err(StateError::Unavailable(
                "timed out waiting for the reply".into(),
            ));
        }
        Ok(swapped)
    }
    async fn take(&self, key: &StateKey) -> Result<Option<Bytes>, StateError> {
        self.inner.take(key).await
    }
    async fn delete(&self, key: &StateKey) -> Result<bool, StateError> {
        self.inner.delete(key).await
    }
    async fn expire(&self, key: &StateKey, ttl: Duration) -> Result<bool, StateError> {
        self.inner.expire(key, ttl).await
    }
    async fn ping(&self) -> Result<(), StateError> {
        self.inner.ping().await
    }
    async fn scan(
        &self,
        namespace: kailash_core::state::Namespace,
        cursor: kailash_core::state::ScanCursor,
    ) -> Result<kailash_core::state::ScanPage, StateError> {
        self.inner.scan(namespace, cursor).await
    }
}

/// The demo gateway (memory or Redis per `overrides`) with an
/// authentication service built here: the demo's `[auth]` settings over
/// users whose roles the test can switch, and a key/value store that can
/// lose one reply.
struct Custom {
    gw: Running,
    users: Arc<SwitchableRoles>,
    kv: Arc<ReplyLost>,
}

async fn custom(overrides: &[(&str, String)]) -> Custom {
    let vars: Vec<(String, String)> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let mut config = GatewayConfig::from_toml_with_env(&demo_config_text(), "gateway.toml", vars)
        .expect("config");
    let spec = config.auth.take().expect("[auth]");
    let users = Arc::new(SwitchableRoles {
        users: StaticUserStore::new(std::mem::take(&mut config.users)).unwrap(),
        roles: Mutex::new(Vec::new()),
    });
    let builder = GatewayBuilder::from_config_with_backends(&config, &temp_dir())
        .await
        .expect("backends");
    let mut state: SharedState = builder.state_handle().expect("state").clone();
    let kv = Arc::new(ReplyLost {
        inner: state.kv.clone(),
        lose_next: AtomicBool::new(false),
    });
    state.kv = kv.clone();
    let keys = Arc::new(KeySet::new(
        SigningKey::generate(Algorithm::ES256, "hardening").unwrap(),
        state.clock.clone(),
    ));
    let service = AuthService::new(
        spec.auth_config().unwrap(),
        users.clone(),
        keys,
        state,
        Arc::new(MemoryAuditSink::new()),
    );
    let gw = start_gateway(builder.authentication(service).build().expect("gateway")).await;
    Custom { gw, users, kv }
}

fn refresh_body(token: &str) -> Value {
    json!({ "refresh_token": token })
}

// ------------------------------------------------------------- 2. oracle

#[tokio::test]
async fn wrong_current_passwords_count_toward_the_lockout_and_the_locking_guess_ends_every_session()
{
    for overrides in backends() {
        let dir = temp_dir();
        let gw = demo_in(&dir, &overrides).await;
        let (thief, _) = tokens(&login(&gw, "bob", BOB).await);
        let (owner, _) = tokens(&login(&gw, "bob", BOB).await);
        // Five guesses (max_login_attempts) with a stolen token.
        for i in 0..5 {
            let r = post(
                &gw,
                "/auth/password",
                password_change(&format!("Guess-Number-{i}-Wrong!"), "Brand-New-Passw0rd-9"),
                Some(&thief),
            )
            .await;
            r.assert_problem(401);
        }
        // The guess that locked the account ended every session: the
        // thief keeps nothing, and the owner is told to come back later.
        get_auth(&gw, "/auth/sessions", &thief)
            .await
            .assert_problem(401);
        get_auth(&gw, "/auth/sessions", &owner)
            .await
            .assert_problem(401);
        let locked = login(&gw, "bob", BOB).await;
        locked.assert_problem(423);
        assert!(locked.header("retry-after").is_some());
        gw.stop().await;
        let lines = audit_lines(&dir);
        let guesses = lines
            .iter()
            .filter(|l| l.contains("auth.password.change") && l.contains("current password wrong"))
            .count();
        assert_eq!(guesses, 5, "every guess is audited");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("account locked by wrong current passwords; sessions revoked")),
            "the lock and the revocation are audited"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test]
async fn a_password_change_on_a_locked_account_is_refused_with_423_before_any_check() {
    for overrides in backends() {
        let dir = temp_dir();
        let gw = demo_in(&dir, &overrides).await;
        let (token, _) = tokens(&login(&gw, "bob", BOB).await);
        // Someone locks the account through the login route.
        for i in 0..5 {
            login(&gw, "bob", &format!("Guess-Number-{i}-Wrong!"))
                .await
                .assert_problem(401);
        }
        // Even the right current password is not checked while it is locked:
        // the lock is shared with the login route.
        let r = post(
            &gw,
            "/auth/password",
            password_change(BOB, "Brand-New-Passw0rd-9"),
            Some(&token),
        )
        .await;
        r.assert_problem(423);
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=900).contains(&retry), "{retry}");
        // Failed logins alone end no session (anyone who knows a username
        // can cause those).
        assert_eq!(get_auth(&gw, "/auth/sessions", &token).await.status, 200);
        gw.stop().await;
        assert!(
            audit_lines(&dir)
                .iter()
                .any(|l| l.contains("auth.password.change") && l.contains("account locked")),
            "the refusal is audited"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test]
async fn password_guesses_share_the_per_ip_login_throttle() {
    for mut overrides in backends() {
        overrides.push(("KAILASH_AUTH__LOGIN_RATE_PER_IP__RATE", "3".into()));
        overrides.push(("KAILASH_AUTH__MAX_LOGIN_ATTEMPTS", "50".into()));
        let gw = demo(&overrides).await;
        let (token, _) = tokens(&login(&gw, "bob", BOB).await);
        let mut throttled = None;
        for i in 0..10 {
            let r = post(
                &gw,
                "/auth/password",
                password_change(&format!("Guess-Number-{i}-Wrong!"), "Brand-New-Passw0rd-9"),
                Some(&token),
            )
            .await;
            if r.status == 429 {
                throttled = Some(r);
                break;
            }
            r.assert_problem(401);
        }
        let throttled = throttled.expect("the per-IP throttle answers 429 within 10 guesses");
        throttled.assert_problem(429);
        assert!(throttled.header("retry-after").is_some());
        // The same budget as logins from this address.
        login(&gw, "bob", BOB).await.assert_problem(429);
        gw.stop().await;
    }
}

// ------------------------------------------------------ 3. argon2 bound

#[tokio::test]
async fn logins_beyond_the_hashing_slots_get_503_with_retry_after() {
    // The bound is in the process; no shared state is involved.
    let gw = demo(&[
        ("KAILASH_AUTH__MAX_CONCURRENT_HASHES", "1".into()),
        ("KAILASH_AUTH__HASH_QUEUE_TIMEOUT", "0s".into()),
    ])
    .await;
    // Unknown users: their dummy hash counts like a real one.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let addr = gw.addr;
        tasks.push(tokio::spawn(async move {
            let body = json!({ "username": format!("nobody-{i}"), "password": "Some-Passw0rd-Guess" })
                .to_string();
            let head = format!(
                "POST /auth/login HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: {}",
                body.len()
            );
            request(addr, &head, body.as_bytes()).await
        }));
    }
    let mut busy = 0;
    for t in tasks {
        let r: Resp = t.await.unwrap();
        match r.status {
            401 => {}
            503 => {
                let p = r.assert_problem(503);
                assert_eq!(p["limit"], "password_hashing");
                assert!(r.header("retry-after").is_some());
                busy += 1;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert!(
        busy > 0,
        "16 parallel logins on one hashing slot without a queue"
    );
    // A refused login counted nothing and the slot is free again.
    tokens(&login(&gw, "bob", BOB).await);
    gw.stop().await;
}

// ------------------------------------------- 5. refresh re-applies MFA

#[tokio::test]
async fn refresh_refuses_a_session_without_a_second_factor_once_the_roles_require_one() {
    for overrides in backends() {
        let c = custom(&overrides).await;
        // An admin who logged in with her code keeps refreshing.
        let alice = post(
            &c.gw,
            "/auth/login",
            json!({ "username": "alice", "password": "Alice-Demo-Passw0rd!", "totp": totp_now(ALICE_TOTP) }),
            None,
        )
        .await;
        let (_, alice_refresh) = tokens(&alice);
        tokens(&post(&c.gw, "/auth/refresh", refresh_body(&alice_refresh), None).await);

        // Bob logs in without a second factor (none is required of him) ...
        let (access, refresh) = tokens(&login(&c.gw, "bob", BOB).await);
        // ... then becomes an admin, a role that requires one.
        c.users.set_roles("bob", &["admin"]);
        let r = post(&c.gw, "/auth/refresh", refresh_body(&refresh), None).await;
        let p = r.assert_problem(401);
        assert_eq!(p["mfa_required"], true, "{p}");
        // The session is over: log in again, now with a second factor.
        get_auth(&c.gw, "/auth/sessions", &access)
            .await
            .assert_problem(401);
        c.gw.stop().await;
    }
}

// ------------------------------------------------- 6. bounded audit input

#[tokio::test]
async fn a_megabyte_username_is_refused_with_422_and_no_audit_entry_grows() {
    for overrides in backends() {
        let dir = temp_dir();
        let gw = demo_in(&dir, &overrides).await;
        let huge = "m".repeat(1_000_000);
        for _ in 0..7 {
            let r = post(
                &gw,
                "/auth/login",
                json!({ "username": huge, "password": "Some-Passw0rd-Guess" }),
                None,
            )
            .await;
            let p = r.assert_problem(422);
            assert_eq!(p["errors"][0]["pointer"], "/username", "{p}");
            assert!(r.body.len() < 1024);
        }
        // A username at the limit that is no user: counted, locked, and
        // recorded only as a keyed tag.
        let unknown = format!("mallory-{}", "q".repeat(240));
        for _ in 0..5 {
            login(&gw, &unknown, "Some-Passw0rd-Guess")
                .await
                .assert_problem(401);
        }
        login(&gw, &unknown, "Some-Passw0rd-Guess")
            .await
            .assert_problem(423);
        // A long path is cut in the refusal's audit entry.
        let path = format!("/api/{}", "p".repeat(12_000));
        request(gw.addr, &format!("GET {path} HTTP/1.1\nHost: x"), b"")
            .await
            .assert_problem(401);
        gw.stop().await;

        let lines = audit_lines(&dir);
        assert!(!lines.is_empty());
        for line in &lines {
            assert!(line.len() <= 4096, "audit entry of {} bytes", line.len());
            assert!(
                !line.contains("mallory"),
                "an unknown username in the trail: {line}"
            );
        }
        let tagged: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["a"] == "auth.login")
            .filter(|e| e["u"].as_str().is_some_and(|a| a.starts_with("unknown:")))
            .collect();
        assert_eq!(tagged.len(), 6, "five failures and the lock, tagged");
        assert!(
            tagged.windows(2).all(|w| w[0]["u"] == w[1]["u"]),
            "one tag per name"
        );
        let malformed = lines
            .iter()
            .filter(|l| l.contains("malformed request: the body does not match its schema"))
            .count();
        assert_eq!(malformed, 7);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test]
async fn over_long_passwords_and_tokens_are_refused_with_422() {
    let gw = demo(&[]).await;
    let long = "p".repeat(1025);
    login(&gw, "bob", &long).await.assert_problem(422);
    post(&gw, "/auth/refresh", refresh_body(&"t".repeat(9000)), None)
        .await
        .assert_problem(422);
    let (token, _) = tokens(&login(&gw, "bob", BOB).await);
    post(
        &gw,
        "/auth/password",
        password_change(&long, "Brand-New-Passw0rd-9"),
        Some(&token),
    )
    .await
    .assert_problem(422);
    // Not counted: the right password still works five more times.
    for _ in 0..5 {
        tokens(&login(&gw, "bob", BOB).await);
    }
    gw.stop().await;
}

// --------------------------------------------- 10c. JWKS with unusable keys

struct Fixed(Value);

#[async_trait]
impl JwksSource for Fixed {
    async fn fetch(&self) -> Result<Value, KeySetError> {
        Ok(self.0.clone())
    }
}

#[tokio::test]
async fn a_jwks_with_unusable_keys_loads_the_usable_ones() {
    let gw = demo(&[]).await;
    let (token, _) = tokens(&login(&gw, "bob", BOB).await);
    let mut jwks = get(gw.addr, "/.well-known/jwks.json").await.json();
    let mut enc = jwks["keys"][0].clone();
    enc["kid"] = json!("encryption");
    enc["use"] = json!("enc");
    let keys = jwks["keys"].as_array_mut().unwrap();
    keys.insert(0, enc);
    keys.push(json!({ "kty": "EC", "crv": "P-384", "kid": "p384",
        "x": "iA7lWQLzVrKGEFjfGMfMHfTEZ2KnLiKU7JuNT3E7ygsfE7ygsfE7ygsfE7ygsfE7",
        "y": "iA7lWQLzVrKGEFjfGMfMHfTEZ2KnLiKU7JuNT3E7ygsfE7ygsfE7ygsfE7ygsfE7" }));
    keys.push(json!({ "kty": "XYZ", "kid": "future" }));
    let remote = RemoteKeySet::load(Arc::new(Fixed(jwks)), Arc::new(SystemClock))
        .await
        .expect("the usable key loads");
    assert_eq!(remote.keys().len(), 1);
    let verifier = Verifier::builder(Arc::new(remote), "kailash-demo", "kailash-api")
        .token_type(TokenType::Access)
        .clock(Arc::new(SystemClock))
        .build();
    verifier
        .verify(&token)
        .await
        .expect("the gateway's token verifies");
    gw.stop().await;
}

// ------------------------------------------ 10d. a lost refresh answer

#[tokio::test]
async fn a_refresh_whose_answer_was_lost_is_retried_without_revoking_the_session() {
    for overrides in backends() {
        let c = custom(&overrides).await;
        let (access, refresh) = tokens(&login(&c.gw, "bob", BOB).await);
        // The rotation is stored, but the backend's reply times out.
        c.kv.lose_next.store(true, Ordering::SeqCst);
        post(&c.gw, "/auth/refresh", refresh_body(&refresh), None)
            .await
            .assert_problem(503);
        assert!(!c.kv.lose_next.load(Ordering::SeqCst), "the rotation ran");
        // The client retries at once: the same rotation's result, not "reuse".
        let (access2, refresh2) =
            tokens(&post(&c.gw, "/auth/refresh", refresh_body(&refresh), None).await);
        for t in [&access, &access2] {
            assert_eq!(get_auth(&c.gw, "/auth/sessions", t).await.status, 200);
        }
        tokens(&post(&c.gw, "/auth/refresh", refresh_body(&refresh2), None).await);
        c.gw.stop().await;
    }
}

// ----------------------------------------- 10e. two credentials refused

#[tokio::test]
async fn a_bearer_header_and_a_cookie_together_are_refused() {
    let gw = demo(&[("KAILASH_AUTH__COOKIE", "at".into())]).await;
    let (token, _) = tokens(&login(&gw, "bob", BOB).await);
    let with = |extra: String| {
        let addr = gw.addr;
        async move {
            request(
                addr,
                &format!("GET /auth/sessions HTTP/1.1\nHost: x{extra}"),
                b"",
            )
            .await
        }
    };
    assert_eq!(
        with(format!("\nAuthorization: Bearer {token}"))
            .await
            .status,
        200
    );
    assert_eq!(with(format!("\nCookie: at={token}")).await.status, 200);
    let both = with(format!(
        "\nAuthorization: Bearer {token}\nCookie: at={token}"
    ))
    .await;
    both.assert_problem(401);
    assert_eq!(
        both.header("www-authenticate"),
        Some("Bearer error=\"invalid_request\"")
    );
    gw.stop().await;
}
