//! Issue 19, item 1: IP allow-lists on the resolved client address,
//! globally and per route group; IPv4-mapped IPv6 clients; refusals are
//! problem+json, audited and counted; a forwarded header from an untrusted
//! peer changes nothing.

use crate::support::demo::*;
use crate::support::*;

fn vars(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

async fn from(gw: &Running, method: &str, path: &str, client: &str, body: &str) -> Resp {
    let head = format!(
        "{method} {path} HTTP/1.1\nHost: x\nX-Forwarded-For: {client}\nContent-Type: application/json\nContent-Length: {}",
        body.len()
    );
    request(gw.addr, &head, body.as_bytes()).await
}

#[tokio::test]
async fn allow_lists_refuse_other_networks_globally_and_per_route_group() {
    let dir = temp_dir();
    let gw = demo_in(
        &dir,
        &vars(&[
            ("KAILASH_SERVER__TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#),
            (
                "KAILASH_SECURITY__IP_ALLOW",
                r#"["10.0.0.0/8", "192.0.2.0/24"]"#,
            ),
            (
                "KAILASH_SECURITY__IP_ALLOW_PATHS",
                r#"{ "/auth" = ["10.0.0.0/8"] }"#,
            ),
        ]),
    )
    .await;
    let login = r#"{"username":"bob","password":"Bob-Demo-Passw0rd!"}"#;

    // Inside the global list.
    for client in ["10.1.2.3", "192.0.2.200", "::ffff:10.1.2.3"] {
        assert_eq!(
            from(&gw, "GET", "/health/live", client, "").await.status,
            200,
            "{client}"
        );
    }
    // Outside it: refused before anything else, naming the scope only.
    let r = from(&gw, "GET", "/health/live", "203.0.113.9", "").await;
    let p = r.assert_problem(403);
    assert_eq!(p["type"], "urn:kailash:problem:ip-not-allowed");
    assert_eq!(p["scope"], "global");
    assert!(!r.text().contains("203.0.113.9"), "{}", r.text());
    for client in ["::ffff:203.0.113.9", "2001:db8::1"] {
        from(&gw, "GET", "/health/live", client, "")
            .await
            .assert_problem(403);
    }

    // The /auth group is narrower: 192.0.2.x may reach the API but not sign in.
    let r = from(&gw, "POST", "/auth/login", "192.0.2.5", login).await;
    assert_eq!(r.assert_problem(403)["scope"], "/auth");
    let r = from(&gw, "POST", "/auth/login", "10.7.7.7", login).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = from(&gw, "POST", "/auth/login", "::ffff:10.7.7.8", login).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Audited (before the answer) and counted.
    let refused: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e.to_string().contains("security.ip_refused"))
        .collect();
    assert_eq!(refused.len(), 4, "{refused:?}");
    let metrics = from(&gw, "GET", "/metrics", "10.1.2.3", "").await;
    let text = metrics.text();
    assert!(
        text.contains(r#"kailash_security_ip_refusals_total{scope="/auth"} 1"#),
        "{text}"
    );
    // The published contract says so.
    let doc = from(&gw, "GET", "/openapi.json", "10.1.2.3", "")
        .await
        .json();
    for (path, method) in [("/auth/login", "post"), ("/health/live", "get")] {
        assert!(
            doc["paths"][path][method]["responses"]["403"].is_object(),
            "{path}"
        );
    }
    gw.stop().await;

    // Without trusted proxies the forwarded header is ignored: the client
    // is the loopback peer, which the list does not hold.
    let gw = demo(&vars(&[(
        "KAILASH_SECURITY__IP_ALLOW",
        r#"["10.0.0.0/8"]"#,
    )]))
    .await;
    from(&gw, "GET", "/health/live", "10.1.2.3", "")
        .await
        .assert_problem(403);
    gw.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn malformed_networks_and_prefixes_stop_the_start_naming_the_key() {
    let text = demo_config_text();
    for (name, value, key) in [
        (
            "KAILASH_SECURITY__IP_ALLOW",
            r#"["10.0.0.0/33"]"#,
            "security.ip_allow",
        ),
        ("KAILASH_SECURITY__IP_ALLOW", r#"[]"#, "security.ip_allow"),
        (
            "KAILASH_SECURITY__IP_ALLOW_PATHS",
            r#"{ "admin" = ["10.0.0.0/8"] }"#,
            "security.ip_allow_paths",
        ),
        (
            "KAILASH_SECURITY__IP_ALLOW_PATHS",
            r#"{ "/a" = ["nope"] }"#,
            "security.ip_allow_paths",
        ),
    ] {
        let e = config_error(&[(name, value)]);
        assert!(e.contains(key), "{value}: {e}");
    }
    let bad = format!("{text}\n[security]\nip_allow = [\"10.0.0.0/8\", \"10.0.0/8\"]\n");
    let e = kailash::config::GatewayConfig::from_toml_with_env(
        &bad,
        "gateway.toml",
        Vec::<(String, String)>::new(),
    )
    .unwrap_err()
    .to_string();
    // The file and line of the bad entry.
    let line = bad.lines().position(|l| l.starts_with("ip_allow")).unwrap() + 1;
    assert!(
        e.starts_with(&format!("gateway.toml:{line}: key `security.ip_allow`"))
            && e.contains("10.0.0/8"),
        "{e}"
    );
}
