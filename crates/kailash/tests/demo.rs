//! The reference deployment's demo configuration (DEMO.md's users, tenants
//! and settings) end to end over HTTP — authentication and tenancy — on
//! memory, and on Redis when `KAILASH_TEST_REDIS_URL` is set.

mod support;

use std::time::Duration;

use kailash::GatewayBuilder;
use kailash::config::GatewayConfig;
use serde_json::json;
use support::demo::*;
use support::{Resp, Running, request, start_gateway};

#[tokio::test]
async fn bob_logs_in_calls_refreshes_lists_and_logs_out() {
    for overrides in backends() {
        let gw = demo(&overrides).await;
        let (access, refresh) = tokens(&login(&gw, "Bob", "Bob-Demo-Passw0rd!").await);
        let sessions = get_auth(&gw, "/auth/sessions", &access).await;
        assert_eq!(sessions.status, 200);
        assert_eq!(sessions.json().as_array().unwrap().len(), 1);
        assert_eq!(sessions.json()[0]["current"], true);
        assert_eq!(sessions.header("cache-control"), Some("no-store"));

        let (access2, _refresh2) = tokens(
            &post(
                &gw,
                "/auth/refresh",
                json!({ "refresh_token": refresh }),
                None,
            )
            .await,
        );
        assert_eq!(get_auth(&gw, "/auth/sessions", &access2).await.status, 200);
        // A refresh token is not an access token, nor the reverse.
        get_auth(&gw, "/auth/sessions", &refresh)
            .await
            .assert_problem(401);
        post(
            &gw,
            "/auth/refresh",
            json!({ "refresh_token": access2 }),
            None,
        )
        .await
        .assert_problem(401);

        assert_eq!(
            post(&gw, "/auth/logout", json!({}), Some(&access2))
                .await
                .status,
            204
        );
        let after = get_auth(&gw, "/auth/sessions", &access).await;
        after.assert_problem(401);
        assert!(
            after
                .header("www-authenticate")
                .unwrap()
                .contains("invalid_token")
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn alice_needs_her_totp_code_once() {
    for overrides in backends() {
        let gw = demo(&overrides).await;
        let without = login(&gw, "alice", "Alice-Demo-Passw0rd!").await;
        assert_eq!(without.assert_problem(401)["mfa_required"], true);
        let code = totp_now(ALICE_TOTP);
        let body = json!({ "username": "alice", "password": "Alice-Demo-Passw0rd!", "totp": code });
        let ok = post(&gw, "/auth/login", body.clone(), None).await;
        let (access, _) = tokens(&ok);
        assert_eq!(get_auth(&gw, "/auth/sessions", &access).await.status, 200);
        // An access token and the password cannot replace an enrolled
        // second factor: a current code is needed too.
        let enrol = json!({ "password": "Alice-Demo-Passw0rd!" });
        let refused = post(&gw, "/auth/mfa/enroll", enrol, Some(&access)).await;
        assert_eq!(refused.assert_problem(401)["mfa_required"], true);
        let replay = post(&gw, "/auth/login", body, None).await;
        assert_eq!(
            replay.assert_problem(401)["mfa_required"],
            true,
            "a code is accepted once"
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_look_the_same() {
    let gw = demo(&[]).await;
    let unknown = login(&gw, "mallory", "Whatever-Passw0rd!").await;
    let wrong = login(&gw, "bob", "Whatever-Passw0rd!").await;
    assert_eq!(unknown.status, 401);
    assert_eq!(
        (unknown.status, unknown.json()),
        (wrong.status, wrong.json())
    );
    gw.stop().await;
}

#[tokio::test]
async fn five_failures_lock_the_account_for_fifteen_minutes() {
    for overrides in backends() {
        let gw = demo(&overrides).await;
        for _ in 0..5 {
            login(&gw, "dave", "Not-Daves-Passw0rd!")
                .await
                .assert_problem(401);
        }
        let locked = login(&gw, "DAVE", "Dave-Demo-Passw0rd!").await;
        locked.assert_problem(423);
        let retry: u64 = locked.header("retry-after").unwrap().parse().unwrap();
        assert!((890..=900).contains(&retry), "{retry}");
        // Other users are unaffected.
        tokens(&login(&gw, "frank", "Frank-Demo-Passw0rd!").await);
        gw.stop().await;
    }
}

#[tokio::test]
async fn ten_parallel_refreshes_with_one_token_rotate_once_and_share_the_result() {
    for overrides in backends() {
        let gw = demo(&overrides).await;
        let (_, refresh) = tokens(&login(&gw, "bob", "Bob-Demo-Passw0rd!").await);
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let addr = gw.addr;
            let body = json!({ "refresh_token": refresh }).to_string();
            tasks.push(tokio::spawn(async move {
                let head = format!(
                    "POST /auth/refresh HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: {}",
                    body.len()
                );
                request(addr, &head, body.as_bytes()).await
            }));
        }
        // One rotation; the duplicates within the reuse grace get its
        // generation again (rotation is idempotent), nothing is revoked.
        let mut pairs = Vec::new();
        for t in tasks {
            pairs.push(tokens(&t.await.unwrap()));
        }
        let (access, refresh2) = pairs.pop().unwrap();
        assert_eq!(get_auth(&gw, "/auth/sessions", &access).await.status, 200);
        tokens(
            &post(
                &gw,
                "/auth/refresh",
                json!({ "refresh_token": refresh2 }),
                None,
            )
            .await,
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_family_and_session() {
    for mut overrides in backends() {
        // No grace: a replay is reuse at once (the grace only absorbs concurrent retries).
        overrides.push(("KAILASH_AUTH__REFRESH_REUSE_GRACE", "1ms".into()));
        let gw = demo(&overrides).await;
        let (access, refresh) = tokens(&login(&gw, "bob", "Bob-Demo-Passw0rd!").await);
        let (_, refresh2) = tokens(
            &post(
                &gw,
                "/auth/refresh",
                json!({ "refresh_token": refresh }),
                None,
            )
            .await,
        );
        tokio::time::sleep(Duration::from_millis(5)).await; // past the 1 ms grace, not an expiry wait
        post(
            &gw,
            "/auth/refresh",
            json!({ "refresh_token": refresh }),
            None,
        )
        .await
        .assert_problem(401);
        post(
            &gw,
            "/auth/refresh",
            json!({ "refresh_token": refresh2 }),
            None,
        )
        .await
        .assert_problem(401);
        get_auth(&gw, "/auth/sessions", &access)
            .await
            .assert_problem(401);
        gw.stop().await;
    }
}

#[tokio::test]
async fn a_fourth_login_evicts_the_oldest_session() {
    let gw = demo(&[]).await;
    let (first, _) = tokens(&login(&gw, "carol", "Carol-Demo-Passw0rd!").await);
    let mut latest = String::new();
    for _ in 0..3 {
        latest = tokens(&login(&gw, "carol", "Carol-Demo-Passw0rd!").await).0;
    }
    get_auth(&gw, "/auth/sessions", &first)
        .await
        .assert_problem(401);
    let sessions = get_auth(&gw, "/auth/sessions", &latest).await.json();
    assert_eq!(sessions.as_array().unwrap().len(), 3);

    // Revoke another of one's own sessions; someone else's id is "not found".
    let other = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        delete_auth(&gw, &format!("/auth/sessions/{other}"), &latest)
            .await
            .status,
        204
    );
    assert_eq!(
        get_auth(&gw, "/auth/sessions", &latest)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (bob, _) = tokens(&login(&gw, "bob", "Bob-Demo-Passw0rd!").await);
    let carol_current = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    delete_auth(&gw, &format!("/auth/sessions/{carol_current}"), &bob)
        .await
        .assert_problem(404);
    assert_eq!(
        get_auth(&gw, "/auth/sessions", &latest).await.status,
        200,
        "carol's session survived bob's attempt"
    );
    gw.stop().await;
}

#[tokio::test]
async fn changing_the_password_checks_the_policy_and_ends_every_session() {
    let gw = demo(&[]).await;
    let (access, _) = tokens(&login(&gw, "frank", "Frank-Demo-Passw0rd!").await);
    let (other, _) = tokens(&login(&gw, "frank", "Frank-Demo-Passw0rd!").await);
    let change =
        |current: &str, new: &str| json!({ "current_password": current, "new_password": new });
    post(
        &gw,
        "/auth/password",
        change("wrong-wrong-wrong", "Brand-New-Secret-42"),
        Some(&access),
    )
    .await
    .assert_problem(401);
    let weak = post(
        &gw,
        "/auth/password",
        change("Frank-Demo-Passw0rd!", "frank"),
        Some(&access),
    )
    .await;
    weak.assert_problem(400);
    assert!(
        !weak.text().contains("\"frank\""),
        "the body never echoes the password"
    );
    let ok = post(
        &gw,
        "/auth/password",
        change("Frank-Demo-Passw0rd!", "Brand-New-Secret-42"),
        Some(&access),
    )
    .await;
    assert_eq!(ok.status, 204, "{}", ok.text());
    get_auth(&gw, "/auth/sessions", &other)
        .await
        .assert_problem(401);
    login(&gw, "frank", "Frank-Demo-Passw0rd!")
        .await
        .assert_problem(401);
    tokens(&login(&gw, "frank", "Brand-New-Secret-42").await);
    gw.stop().await;
}

#[tokio::test]
async fn enrolling_mfa_then_logging_in_with_a_code_or_a_recovery_code() {
    let gw = demo(&[]).await;
    let (access, _) = tokens(&login(&gw, "bob", "Bob-Demo-Passw0rd!").await);
    let enrol = post(
        &gw,
        "/auth/mfa/enroll",
        json!({ "password": "Bob-Demo-Passw0rd!" }),
        Some(&access),
    )
    .await;
    assert_eq!(enrol.status, 200, "{}", enrol.text());
    let e = enrol.json();
    let secret = e["secret"].as_str().unwrap().to_owned();
    assert!(
        e["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    post(
        &gw,
        "/auth/mfa/verify",
        json!({ "code": "000000" }),
        Some(&access),
    )
    .await
    .assert_problem(401);
    let verified = post(
        &gw,
        "/auth/mfa/verify",
        json!({ "code": totp_now(&secret) }),
        Some(&access),
    )
    .await;
    assert_eq!(verified.status, 200, "{}", verified.text());
    let codes = verified.json()["recovery_codes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(codes.len(), 10);

    assert_eq!(
        login(&gw, "bob", "Bob-Demo-Passw0rd!")
            .await
            .assert_problem(401)["mfa_required"],
        true
    );
    let recovery = codes[0].as_str().unwrap();
    let with_recovery =
        json!({ "username": "bob", "password": "Bob-Demo-Passw0rd!", "recovery_code": recovery });
    tokens(&post(&gw, "/auth/login", with_recovery.clone(), None).await);
    post(&gw, "/auth/login", with_recovery, None)
        .await
        .assert_problem(401);
    gw.stop().await;
}

#[tokio::test]
async fn tokens_are_verified_against_the_published_keys_and_documented() {
    let gw = demo(&[]).await;
    let jwks = request(gw.addr, "GET /.well-known/jwks.json HTTP/1.1\nHost: x", b"").await;
    assert_eq!(jwks.status, 200);
    let keys = jwks.json();
    let key = &keys["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str()),
        (Some("RSA"), Some("RS256"))
    );
    assert!(key.get("d").is_none(), "no private material");
    let doc = request(gw.addr, "GET /openapi.json HTTP/1.1\nHost: x", b"")
        .await
        .json();
    for path in [
        "/auth/login",
        "/auth/refresh",
        "/auth/sessions/{id}",
        "/.well-known/jwks.json",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    // Garbage tokens, malformed bodies and unknown fields are clear errors.
    get_auth(&gw, "/auth/sessions", "not.a.token")
        .await
        .assert_problem(401);
    let r = request(
        gw.addr,
        "POST /auth/login HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 5",
        b"{oops",
    )
    .await;
    assert_eq!(r.status, 400, "not JSON");
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let extra = post(
        &gw,
        "/auth/login",
        json!({ "username": "bob", "password": "x", "admin": true }),
        None,
    )
    .await;
    // An unknown property: the schema forbids it, the pointer names it.
    assert_eq!(extra.assert_problem(422)["errors"][0]["pointer"], "/admin");
    gw.stop().await;
}

#[tokio::test]
async fn rotated_keys_keep_verifying_tokens_they_signed() {
    let data = temp_dir();
    let mut shared_state = Vec::new();
    if let (Ok(url), true) = (
        std::env::var("KAILASH_TEST_REDIS_URL"),
        cfg!(feature = "redis"),
    ) {
        // Sessions must outlive the restart for the old token to stay usable.
        shared_state.push(("KAILASH_STATE__REDIS_URL".to_owned(), url));
        shared_state.push((
            "KAILASH_STATE__KEY_PREFIX".to_owned(),
            format!("kailash-rot-{}:", std::process::id()),
        ));
    }
    let start_with = |extra: Vec<(String, String)>| {
        let data = data.clone();
        async move {
            let config =
                GatewayConfig::from_toml_with_env(&demo_config_text(), "gateway.toml", extra)
                    .unwrap();
            start_gateway(
                GatewayBuilder::from_config_with_backends(&config, &data)
                    .await
                    .unwrap()
                    .build()
                    .unwrap(),
            )
            .await
        }
    };
    let a = start_with(shared_state.clone()).await;
    let (token, _) = tokens(&login(&a, "bob", "Bob-Demo-Passw0rd!").await);
    let old_kid = request(a.addr, "GET /.well-known/jwks.json HTTP/1.1\nHost: x", b"")
        .await
        .json()["keys"][0]["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    a.stop().await;

    std::fs::rename(
        data.join("keys/signing-rs256.pem"),
        data.join("keys/previous.pem"),
    )
    .unwrap();
    let mut rotated = shared_state.clone();
    rotated.push((
        "KAILASH_AUTH__PREVIOUS_SIGNING_KEYS".to_owned(),
        "[\"keys/previous.pem\"]".to_owned(),
    ));
    let b = start_with(rotated).await;
    let jwks = request(b.addr, "GET /.well-known/jwks.json HTTP/1.1\nHost: x", b"")
        .await
        .json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert!(
        kids.contains(&old_kid.as_str()),
        "the previous key still verifies"
    );
    let (new_token, _) = tokens(&login(&b, "bob", "Bob-Demo-Passw0rd!").await);
    assert_eq!(get_auth(&b, "/auth/sessions", &new_token).await.status, 200);
    if !shared_state.is_empty() {
        assert_eq!(
            get_auth(&b, "/auth/sessions", &token).await.status,
            200,
            "old token, new instance"
        );
    }
    b.stop().await;
    std::fs::remove_dir_all(&data).ok();
}

async fn get_with(gw: &Running, path: &str, token: &str, extra: &str) -> Resp {
    request(
        gw.addr,
        &format!("GET {path} HTTP/1.1\nHost: x\nAuthorization: Bearer {token}{extra}"),
        b"",
    )
    .await
}

#[tokio::test]
async fn a_globex_token_naming_acme_is_refused() {
    for overrides in backends() {
        let gw = demo(&overrides).await;
        let (carol, _) = tokens(&login(&gw, "carol", "Carol-Demo-Passw0rd!").await);
        let own = get_auth(&gw, "/api/tenant/usage", &carol).await;
        assert_eq!(own.status, 200, "{}", own.text());
        assert_eq!(own.json()["tenant"], "globex");
        let agreeing = get_with(&gw, "/api/tenant/usage", &carol, "\nX-Tenant-ID: globex").await;
        assert_eq!(agreeing.status, 200);
        let spoofed = get_with(&gw, "/api/tenant/usage", &carol, "\nX-Tenant-ID: acme").await;
        assert_eq!(spoofed.assert_problem(403)["detail"], "tenant mismatch");
        get_with(&gw, "/api/tenant/usage", &carol, "\nX-Tenant-ID: AC ME")
            .await
            .assert_problem(400);
        gw.stop().await;
    }
}

#[tokio::test]
async fn users_of_an_inactive_tenant_cannot_log_in() {
    for overrides in backends() {
        let gw = demo(&overrides).await;
        let erin = login(&gw, "erin", "Erin-Demo-Passw0rd!").await;
        assert_eq!(erin.assert_problem(403)["detail"], "tenant is inactive");
        // A wrong password still looks like any other wrong password.
        login(&gw, "erin", "Not-Erins-Passw0rd!")
            .await
            .assert_problem(401);
        gw.stop().await;
    }
}

#[tokio::test]
async fn the_tenant_usage_counter_moves_with_each_call() {
    for overrides in backends() {
        let gw = demo(&overrides).await;
        let (bob, _) = tokens(&login(&gw, "bob", "Bob-Demo-Passw0rd!").await);
        let first = get_auth(&gw, "/api/tenant/usage", &bob).await.json();
        assert_eq!(first["tenant"], "acme");
        assert_eq!(first["max_api_calls_per_day"], 10000);
        assert_eq!(first["max_workflows"], 100);
        assert_eq!(first["max_storage_bytes"], 10u64 << 30);
        get_auth(&gw, "/auth/sessions", &bob).await;
        let second = get_auth(&gw, "/api/tenant/usage", &bob).await.json();
        let (a, b) = (
            first["api_calls_today"].as_u64().unwrap(),
            second["api_calls_today"].as_u64().unwrap(),
        );
        assert_eq!(b, a + 2, "each authenticated call is counted");
        // Another tenant's counter is its own.
        let (carol, _) = tokens(&login(&gw, "carol", "Carol-Demo-Passw0rd!").await);
        assert_eq!(
            get_auth(&gw, "/api/tenant/usage", &carol).await.json()["api_calls_today"],
            1
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn a_relative_signing_key_is_found_under_the_data_directory() {
    let data = temp_dir();
    std::fs::create_dir_all(data.join("custom")).unwrap();
    let key = kailash::auth::jwt::SigningKey::generate(kailash::auth::jwt::Algorithm::RS256, "x")
        .unwrap();
    std::fs::write(
        data.join("custom/key.pem"),
        key.to_pkcs8_pem().unwrap().expose(),
    )
    .unwrap();
    let vars = vec![(
        "KAILASH_AUTH__SIGNING_KEY".to_owned(),
        "custom/key.pem".to_owned(),
    )];
    let config =
        GatewayConfig::from_toml_with_env(&demo_config_text(), "gateway.toml", vars).unwrap();
    let gateway = GatewayBuilder::from_config_with_backends(&config, &data)
        .await
        .expect("key under the data dir");
    let gw = start_gateway(gateway.build().unwrap()).await;
    tokens(&login(&gw, "bob", "Bob-Demo-Passw0rd!").await);
    assert!(
        !data.join("keys").exists(),
        "no key generated when one is configured"
    );
    gw.stop().await;
    std::fs::remove_dir_all(&data).ok();
}

/// Issue 13, end to end through the gateway: `/ws` authenticates with the
/// gateway's own verifier and session check, events reach the right
/// tenant's sockets only (on memory and Redis), a bad token closes with
/// 4001 and a logout closes the socket, and the OpenAPI document lists the
/// realtime routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_sockets_are_authenticated_and_tenant_scoped() {
    use futures_util::StreamExt;
    use kailash::TenantId;
    use kailash::realtime::event::Event;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    type Socket = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;
    async fn connect(gw: &Running, token: &str) -> Socket {
        let mut req = format!("ws://{}/ws", gw.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        tokio_tungstenite::connect_async(req)
            .await
            .expect("upgrade")
            .0
    }
    /// The next text frame as JSON, or the close frame's code.
    async fn next(ws: &mut Socket) -> Result<serde_json::Value, u16> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("a frame within 5 s");
            match msg {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(frame))) => {
                    return Err(frame.map_or(1005, |f| u16::from(f.code)));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(1006),
            }
        }
    }

    for backend in backends() {
        let vars: Vec<(String, String)> = backend
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let config = GatewayConfig::from_toml_with_env(&demo_config_text(), "gateway.toml", vars)
            .expect("config");
        let gateway = GatewayBuilder::from_config_with_backends(&config, &temp_dir())
            .await
            .expect("backends")
            .build()
            .expect("gateway");
        let hub = gateway
            .realtime()
            .cloned()
            .expect("the fixture enables realtime");
        let gw = start_gateway(gateway).await;

        let (bob, _) = tokens(&login(&gw, "bob", "Bob-Demo-Passw0rd!").await);
        let (carol, _) = tokens(&login(&gw, "carol", "Carol-Demo-Passw0rd!").await);
        let mut bob_ws = connect(&gw, &bob).await;
        let welcome = next(&mut bob_ws).await.unwrap();
        assert_eq!(
            (&welcome["type"], &welcome["user_id"], &welcome["tenant_id"]),
            (&json!("welcome"), &json!("bob"), &json!("acme"))
        );
        let mut carol_ws = connect(&gw, &carol).await;
        assert_eq!(next(&mut carol_ws).await.unwrap()["tenant_id"], "globex");

        // An acme event reaches bob, never carol (globex).
        let event = Event::new(
            TenantId::new("acme").unwrap(),
            "workflows",
            "workflow.created",
        )
        .unwrap()
        .required_permission("workflow:execute")
        .unwrap()
        .data(json!({ "id": "wf-1" }));
        hub.send_to_tenant(&event).await.unwrap();
        let got = next(&mut bob_ws).await.unwrap();
        assert_eq!(
            (
                &got["type"],
                &got["event"],
                &got["tenant_id"],
                &got["data"]["id"]
            ),
            (
                &json!("event"),
                &json!("workflow.created"),
                &json!("acme"),
                &json!("wf-1")
            )
        );
        let globex = Event::new(
            TenantId::new("globex").unwrap(),
            "workflows",
            "workflow.created",
        )
        .unwrap()
        .data(json!({ "id": "wf-g" }));
        hub.send_to_tenant(&globex).await.unwrap();
        let got = next(&mut carol_ws).await.unwrap();
        assert_eq!(
            got["data"]["id"], "wf-g",
            "carol sees only her tenant's event"
        );

        // A bad token: the upgrade succeeds and the socket closes with 4001.
        let mut bad = connect(&gw, "not-a-token").await;
        assert_eq!(next(&mut bad).await, Err(4001));

        // A browser upgrade from an origin outside [cors] origins is refused
        // before the upgrade (cross-site WebSocket hijacking); an allowed one
        // is welcomed.
        let upgrade_from = |origin: &str| {
            let mut req = format!("ws://{}/ws", gw.addr)
                .into_client_request()
                .unwrap();
            req.headers_mut()
                .insert("authorization", format!("Bearer {carol}").parse().unwrap());
            req.headers_mut().insert("origin", origin.parse().unwrap());
            tokio_tungstenite::connect_async(req)
        };
        match upgrade_from("https://evil.example").await {
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                assert_eq!(res.status(), 403);
            }
            other => panic!("a foreign origin must get 403: {:?}", other.map(|_| ())),
        }
        let (mut allowed, _) = upgrade_from("http://localhost:3000")
            .await
            .expect("allowed origin");
        assert_eq!(next(&mut allowed).await.unwrap()["type"], "welcome");
        drop(allowed);

        // The same events as server-sent events, with their ids.
        let sse = {
            use tokio::io::AsyncWriteExt;
            let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
            let head = format!(
                "GET /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bob}\r\nAccept: text/event-stream\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            tokio::io::BufReader::new(stream)
        };
        let mut sse = sse;
        let mut status = String::new();
        use tokio::io::AsyncBufReadExt as _;
        sse.read_line(&mut status).await.unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        // Give the stream a moment to be registered with the hub.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sse_event = Event::new(
            TenantId::new("acme").unwrap(),
            "workflows",
            "workflow.deleted",
        )
        .unwrap()
        .data(json!({ "id": "wf-sse" }));
        let sent_id = hub.send_to_tenant(&sse_event).await.unwrap().to_string();
        let (mut id_line, mut data_line) = (None, None);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while data_line.is_none() {
            let mut line = String::new();
            tokio::time::timeout_at(deadline, sse.read_line(&mut line))
                .await
                .expect("an SSE event within 5 s")
                .unwrap();
            if let Some(id) = line.strip_prefix("id:") {
                id_line = Some(id.trim().to_owned());
            } else if let Some(data) = line.strip_prefix("data:")
                && data.contains("wf-sse")
            {
                data_line = Some(data.trim().to_owned());
            }
        }
        assert_eq!(
            id_line.as_deref(),
            Some(sent_id.as_str()),
            "the id: line is the event id"
        );
        let data: serde_json::Value = serde_json::from_str(data_line.as_deref().unwrap()).unwrap();
        assert_eq!(
            (&data["event"], &data["tenant_id"]),
            (&json!("workflow.deleted"), &json!("acme"))
        );
        drop(sse);

        // The hub's counters are series of /metrics. The dropped SSE stream
        // counts as closed once the server notices (its next write).
        let mut metrics = String::new();
        for _ in 0..100 {
            metrics = support::get(gw.addr, "/metrics").await.text();
            if metrics.contains("realtime_connections_open 2\n") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for line in [
            "realtime_connections_open 2\n",
            "realtime_closes_total{reason=\"invalid_token\"} 1\n",
        ] {
            assert!(metrics.contains(line), "{line} in {metrics}");
        }

        // Logging out closes the session's socket (4001), after the events
        // it was sent before.
        let out = post(&gw, "/auth/logout", json!({}), Some(&bob)).await;
        assert!(out.status < 300, "{}", out.text());
        let closed = loop {
            match next(&mut bob_ws).await {
                Ok(frame) => assert_eq!(frame["type"], "event"),
                Err(code) => break code,
            }
        };
        assert_eq!(closed, 4001);

        // The contract lists the realtime routes.
        let doc = support::get(gw.addr, "/openapi.json").await.json();
        for path in ["/ws", "/events", "/api/events"] {
            assert!(
                doc["paths"][path].is_object(),
                "{path} in the OpenAPI document"
            );
        }
        gw.stop().await;
    }
}

/// Every family of security and domain metrics moves on real requests.
/// `/metrics` is process-wide and tests run in parallel, so each check is
/// "went up by at least this much".
#[tokio::test]
async fn security_and_domain_metrics_move_on_real_requests() {
    use support::sample;
    for overrides in backends() {
        let redis = !overrides.is_empty();
        let gw = demo(&overrides).await;
        let scrape = |gw: &Running| {
            let addr = gw.addr;
            async move { support::get(addr, "/metrics").await.text() }
        };
        let before = scrape(&gw).await;

        let (bob, _) = tokens(&login(&gw, "bob", "Bob-Demo-Passw0rd!").await);
        for _ in 0..5 {
            login(&gw, "dave", "Not-Daves-Passw0rd!")
                .await
                .assert_problem(401);
        }
        login(&gw, "dave", "Dave-Demo-Passw0rd!")
            .await
            .assert_problem(423);
        get_auth(&gw, "/api/tenant/usage", &bob).await;
        get_auth(&gw, "/api/tenant/usage", &bob).await;
        get_auth(&gw, "/api/tenant/usage", "not-a-jwt")
            .await
            .assert_problem(401);

        let after = scrape(&gw).await;
        let moved = |series: &str, by: f64| {
            let delta = sample(&after, series) - sample(&before, series);
            assert!(delta >= by, "{series} moved {delta}, wanted {by}:\n{after}");
        };
        moved(r#"kailash_auth_logins_total{outcome="success"}"#, 1.0);
        moved(r#"kailash_auth_logins_total{outcome="failure"}"#, 5.0);
        moved(r#"kailash_auth_logins_total{outcome="locked"}"#, 1.0);
        moved("kailash_auth_lockouts_total", 1.0);
        moved(
            r#"kailash_auth_token_rejections_total{reason="malformed"}"#,
            1.0,
        );
        moved(r#"kailash_auth_token_cache_total{result="hit"}"#, 1.0);
        moved(r#"kailash_auth_token_cache_total{result="miss"}"#, 1.0);
        moved(
            r#"http_requests_total{method="GET",route="/api/tenant/usage",status="2xx"}"#,
            2.0,
        );
        if redis {
            moved(
                r#"kailash_state_backend_seconds_count{backend="redis"}"#,
                5.0,
            );
        }
        // The audit trail's writer counts whole batches once written.
        let mut audited = after.clone();
        for _ in 0..100 {
            let key = r#"kailash_audit_events_total{outcome="written"}"#;
            if sample(&audited, key) > sample(&before, key) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            audited = scrape(&gw).await;
        }
        let key = r#"kailash_audit_events_total{outcome="written"}"#;
        assert!(sample(&audited, key) > sample(&before, key), "{audited}");
        for family in [
            "# TYPE http_request_duration_seconds histogram",
            "# TYPE kailash_auth_logins_total counter",
            "# HELP kailash_auth_lockouts_total ",
            "\nprocess_resident_memory_bytes ",
            "\nprocess_open_fds ",
        ] {
            assert!(after.contains(family), "{family} in {after}");
        }
        assert!(!after.contains("bob") && !after.contains("Passw0rd"));
        gw.stop().await;
    }
}

/// The configured gateway registers the built-in checks: readiness ones
/// (`state`, `pubsub`, `audit`) and reported ones carrying their value and
/// threshold (`memory_usage`, `disk_usage`; the fixture has no runtime, so
/// no `workflow_failure_rate`).
#[tokio::test]
async fn the_built_in_checks_report_their_values_and_thresholds() {
    let gw = demo(&[("KAILASH_HEALTH__DISK_THRESHOLD", "0.97".to_owned())]).await;
    let ready = support::get(gw.addr, "/health/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    let report = ready.json();
    let check = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} check: {report}"))
            .clone()
    };
    for name in ["state", "pubsub", "audit"] {
        let c = check(name);
        assert_eq!(
            (c["required"].as_bool(), c["status"].as_str()),
            (Some(true), Some("pass"))
        );
        assert_eq!(c["consecutive_successes"], 1);
    }
    for (name, threshold) in [("memory_usage", 0.9), ("disk_usage", 0.97)] {
        let c = check(name);
        assert_eq!(c["required"], false, "{name}");
        assert_eq!(c["threshold"].as_f64(), Some(threshold), "{name}");
        let value = c["value"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&value), "{name}: {value}");
        // The status agrees with the value and the threshold.
        assert_eq!(c["status"] == "pass", value <= threshold, "{name}: {c}");
    }
    gw.stop().await;
}

/// Issue 17: `[database.primary]` + `[database.replica]` from the config
/// (URLs from files) give handlers routed pools — reads on the hot standby,
/// read-only — and register the `database_replica` check. Needs
/// `KAILASH_TEST_PG_REPLICA` (`.ci/pg/replica.sh`).
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_sections_route_reads_to_the_replica() {
    use kailash::postgres::routing::ReadTarget;
    let script = match std::env::var("KAILASH_TEST_PG_REPLICA") {
        Ok(s) if !s.is_empty() => s,
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but KAILASH_TEST_PG_REPLICA is not set"
            );
            eprintln!("skipped: KAILASH_TEST_PG_REPLICA is not set");
            return;
        }
    };
    let spare = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (primary, replica) = (spare(), spare());
    let dir = std::env::temp_dir().join(format!("kailash-gw-pgr-{primary}-{replica}"));
    let run = |args: &[&str]| {
        assert!(
            std::process::Command::new(&script)
                .args(args)
                .status()
                .unwrap()
                .success()
        );
    };
    let d = dir.to_string_lossy().into_owned();
    run(&["init", &d, &primary.to_string(), &replica.to_string()]);
    let files = std::env::temp_dir().join(format!("kailash-gw-urls-{primary}"));
    std::fs::create_dir_all(&files).unwrap();
    let url = |port: u16| format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable");
    std::fs::write(files.join("primary"), url(primary)).unwrap();
    std::fs::write(files.join("replica"), url(replica)).unwrap();
    let vars = vec![
        (
            "KAILASH_DATABASE__PRIMARY__URL_FILE".to_owned(),
            files.join("primary").to_string_lossy().into_owned(),
        ),
        (
            "KAILASH_DATABASE__REPLICA__URL_FILE".to_owned(),
            files.join("replica").to_string_lossy().into_owned(),
        ),
        (
            "KAILASH_DATABASE__REPLICA__POOL_SIZE".to_owned(),
            "2".to_owned(),
        ),
    ];
    let config =
        GatewayConfig::from_toml_with_env(&demo_config_text(), "gateway.toml", vars).unwrap();
    let data = std::env::temp_dir().join(format!("kailash-gw-data-{primary}"));
    std::fs::create_dir_all(&data).unwrap();
    let builder = GatewayBuilder::from_config_with_backends(&config, &data)
        .await
        .unwrap();
    let dbs = builder.databases().expect("routed pools").clone();
    let conn = dbs.reader().get(None).await.unwrap();
    assert_eq!(conn.target, ReadTarget::Replica);
    let standby: bool = conn
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(standby);
    drop(conn);
    let w = dbs.writer().get().await.unwrap();
    w.batch_execute("CREATE TABLE gw (x int)").await.unwrap();
    let report = format!("{:?}", builder.health_check_names());
    assert!(report.contains("database_replica"), "{report}");
    drop(builder);
    run(&["destroy", &d]);
    std::fs::remove_dir_all(&files).ok();
    std::fs::remove_dir_all(&data).ok();
}
