//! Issue 19, item 2: the transport policy and the security headers through
//! the gateway. Plain requests are redirected (GET/HEAD) or refused when
//! HTTPS is required, health probes stay reachable, a trusted proxy's
//! `X-Forwarded-Proto` counts and an untrusted one does not, HSTS only on
//! secure answers; the security headers on every answer (refusals too),
//! the explorer keeps its strict policy; bad settings stop the start.

use crate::support::demo::*;
use crate::support::*;

fn vars(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

async fn send(gw: &Running, method: &str, path: &str, proto: Option<&str>, body: &str) -> Resp {
    let mut head = format!(
        "{method} {path} HTTP/1.1\nHost: api.example.com\nContent-Type: application/json\nContent-Length: {}",
        body.len()
    );
    if let Some(proto) = proto {
        head.push_str(&format!("\nX-Forwarded-Proto: {proto}"));
    }
    request(gw.addr, &head, body.as_bytes()).await
}

const LOGIN: &str = r#"{"username":"bob","password":"Bob-Demo-Passw0rd!"}"#;

#[tokio::test]
async fn https_required_redirects_reads_refuses_writes_and_spares_probes() {
    let dir = temp_dir();
    let gw = demo_in(
        &dir,
        &vars(&[
            ("KAILASH_SERVER__TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#),
            ("KAILASH_SECURITY__REQUIRE_SSL", "true"),
            ("KAILASH_SECURITY__HSTS_INCLUDE_SUBDOMAINS", "true"),
        ]),
    )
    .await;

    // A plain read goes to the same URL on https://.
    let r = send(&gw, "GET", "/openapi.json?x=1", Some("http"), "").await;
    assert_eq!(r.status, 308, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("https://api.example.com/openapi.json?x=1")
    );
    assert_eq!(r.header("strict-transport-security"), None);
    // A plain write is refused (its body already crossed in the clear):
    // nobody signs in.
    let r = send(&gw, "POST", "/auth/login", None, LOGIN).await;
    let p = r.assert_problem(400);
    assert_eq!(p["type"], "urn:kailash:problem:https-required");
    assert!(!r.text().contains("access_token"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    // Health probes stay on plain HTTP.
    for path in ["/health/live", "/health/ready"] {
        let r = send(&gw, "GET", path, None, "").await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("strict-transport-security"), None);
    }
    // Behind the trusted proxy that terminated TLS: served, with HSTS.
    let r = send(&gw, "POST", "/auth/login", Some("https"), LOGIN).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    // Only the proxy's own (last) word counts.
    let r = send(&gw, "POST", "/auth/login", Some("https, http"), LOGIN).await;
    r.assert_problem(400);

    // Counted; the published contract says so.
    let text = send(&gw, "GET", "/metrics", Some("https"), "").await.text();
    for line in [
        r#"kailash_security_https_refusals_total{outcome="redirected"} 1"#,
        r#"kailash_security_https_refusals_total{outcome="refused"} 2"#,
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    let doc = send(&gw, "GET", "/openapi.json", Some("https"), "")
        .await
        .json();
    assert!(doc["paths"]["/auth/login"]["post"]["responses"]["400"].is_object());
    assert!(doc["paths"]["/auth/sessions"]["get"]["responses"]["308"].is_object());
    assert!(doc["paths"]["/health/live"]["get"]["responses"]["308"].is_null());
    gw.stop().await;

    // Without trusted proxies the header is anybody's: still plain.
    let gw = demo(&vars(&[("KAILASH_SECURITY__REQUIRE_SSL", "true")])).await;
    send(&gw, "POST", "/auth/login", Some("https"), LOGIN)
        .await
        .assert_problem(400);
    gw.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn security_headers_on_every_answer_and_hsts_only_when_secure() {
    let gw = demo(&vars(&[(
        "KAILASH_SERVER__TRUSTED_PROXIES",
        r#"["127.0.0.1/32"]"#,
    )]))
    .await;
    // The default: plain HTTP served, no HSTS on it, the headers on an
    // answer, a refusal and a 404 alike.
    for (method, path, status) in [
        ("GET", "/health/live", 200),
        ("GET", "/auth/sessions", 401),
        ("POST", "/health/live", 405),
    ] {
        let r = send(&gw, method, path, None, "").await;
        assert_eq!(r.status, status, "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(
            r.header("content-security-policy"),
            Some("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(r.header("strict-transport-security"), None, "{path}");
    }
    let r = send(&gw, "GET", "/health/live", Some("https"), "").await;
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    // The explorer keeps its own strict policy.
    let r = send(&gw, "GET", "/docs", None, "").await;
    assert_eq!(r.status, 200);
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.starts_with("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    gw.stop().await;

    // Switched off and changed.
    let gw = demo(&vars(&[
        ("KAILASH_SERVER__TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#),
        ("KAILASH_SECURITY__HSTS", "false"),
        ("KAILASH_SECURITY__REFERRER_POLICY", r#""""#),
        (
            "KAILASH_SECURITY__CONTENT_SECURITY_POLICY",
            r#""frame-ancestors https://portal.example.com""#,
        ),
    ]))
    .await;
    let r = send(&gw, "GET", "/health/live", Some("https"), "").await;
    assert_eq!(r.header("strict-transport-security"), None);
    assert_eq!(r.header("referrer-policy"), None);
    assert_eq!(
        r.header("content-security-policy"),
        Some("frame-ancestors https://portal.example.com")
    );
    gw.stop().await;
    let gw = demo(&vars(&[("KAILASH_SECURITY__HEADERS", "false")])).await;
    let r = send(&gw, "GET", "/health/live", None, "").await;
    assert_eq!(r.header("x-content-type-options"), None);
    gw.stop().await;
}

#[test]
fn transport_settings_that_cannot_work_stop_the_start_naming_the_key() {
    for (pairs, key) in [
        (
            vec![("KAILASH_SECURITY__HSTS_PRELOAD", "true")],
            "security.hsts_preload",
        ),
        (
            vec![
                ("KAILASH_SECURITY__HSTS_PRELOAD", "true"),
                ("KAILASH_SECURITY__HSTS_INCLUDE_SUBDOMAINS", "true"),
                ("KAILASH_SECURITY__HSTS_MAX_AGE", r#""30d""#),
            ],
            "security.hsts_preload",
        ),
        (
            vec![("KAILASH_SECURITY__HSTS_MAX_AGE", r#""0s""#)],
            "security.hsts_max_age",
        ),
        (
            vec![
                ("KAILASH_SECURITY__REQUIRE_SSL", "true"),
                ("KAILASH_SECURITY__REQUIRE_SSL_EXEMPT", r#"["health"]"#),
            ],
            "security.require_ssl_exempt",
        ),
        (
            vec![
                ("KAILASH_SECURITY__REQUIRE_SSL", "true"),
                ("KAILASH_SECURITY__HTTPS_PORT", "0"),
            ],
            "security.https_port",
        ),
        (
            vec![(
                "KAILASH_SECURITY__CONTENT_SECURITY_POLICY",
                r#""default-src\n'none'""#,
            )],
            "security.content_security_policy",
        ),
    ] {
        let e = config_error(&pairs);
        assert!(e.contains(key), "{pairs:?}: {e}");
    }
}
