//! Issue 19, item 3: the shape of every JSON body is bounded before it is
//! parsed (depth, strings, arrays, objects, numbers), refusals name the
//! JSON pointer and change nothing; no endpoint reflects input into HTML.

use serde_json::json;

use crate::support::demo::*;
use crate::support::*;

async fn post_raw(gw: &Running, path: &str, body: &str) -> Resp {
    let head = format!(
        "POST {path} HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: {}",
        body.len()
    );
    request(gw.addr, &head, body.as_bytes()).await
}

fn only_error(r: &Resp) -> (String, String) {
    let p = r.assert_problem(422);
    assert_eq!(p["type"], "urn:kailash:problem:invalid-request", "{p}");
    let errors = p["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{p}");
    (
        errors[0]["pointer"].as_str().unwrap().to_owned(),
        errors[0]["detail"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn json_over_a_limit_is_refused_before_parsing_naming_where() {
    let gw = demo(&[
        (
            "KAILASH_GATEWAY__JSON_LIMITS__MAX_STRING_BYTES",
            "256".to_owned(),
        ),
        (
            "KAILASH_GATEWAY__JSON_LIMITS__MAX_ARRAY_ITEMS",
            "100".to_owned(),
        ),
    ])
    .await;

    // Nested past the default depth (32): a million brackets cost one pass.
    let deep = format!(
        r#"{{"username": {}1{}, "password": "x"}}"#,
        "[".repeat(500_000),
        "]".repeat(500_000)
    );
    let r = post_raw(&gw, "/auth/login", &deep).await;
    let (pointer, detail) = only_error(&r);
    assert_eq!(pointer, format!("/username{}", "/0".repeat(31)));
    assert!(detail.contains("deeper than 32"), "{detail}");

    // A string past the configured 256 bytes; the body is never quoted.
    let secret = "S3cret-".repeat(100);
    let r = post_raw(
        &gw,
        "/auth/login",
        &json!({"username": "bob", "password": secret}).to_string(),
    )
    .await;
    assert_eq!(only_error(&r).0, "/password");
    assert!(!r.text().contains("S3cret"));

    // An array and a number.
    let r = post_raw(
        &gw,
        "/auth/login",
        &json!({"username": "bob", "password": "x", "extra": vec![0; 101]}).to_string(),
    )
    .await;
    assert_eq!(only_error(&r).0, "/extra");
    let r = post_raw(
        &gw,
        "/auth/login",
        &format!(r#"{{"username": {}, "password": "x"}}"#, "9".repeat(65)),
    )
    .await;
    let (pointer, detail) = only_error(&r);
    assert_eq!(pointer, "/username");
    assert!(detail.contains("number longer than 64"), "{detail}");

    // Nothing was counted against bob: five refused bodies would otherwise
    // be five failures toward the lockout of five.
    for _ in 0..2 {
        post_raw(&gw, "/auth/login", &deep).await;
    }
    let r = login(&gw, "bob", "Bob-Demo-Passw0rd!").await;
    assert_eq!(r.status, 200, "{}", r.text());
    gw.stop().await;
}

#[test]
fn a_zero_json_limit_stops_the_start_naming_the_key() {
    let e = config_error(&[("KAILASH_GATEWAY__JSON_LIMITS__MAX_DEPTH", "0")]);
    assert!(e.contains("gateway.json_limits.max_depth"), "{e}");
}

/// Script and SQL payloads in every place a client can put text — a JSON
/// member, a path segment, a query, a header — never come back as HTML
/// or verbatim.
#[tokio::test]
async fn payloads_are_never_reflected_into_html() {
    let gw = demo(&[]).await;
    let payloads = [
        "<script>alert(1)</script>",
        "\"><img src=x onerror=alert(1)>",
        "javascript:alert(1)",
        "' OR '1'='1' --",
        "1; DROP TABLE users; --",
        "{{7*7}}",
    ];
    let mut seen = 0;
    for payload in payloads {
        let enc: String = payload
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let mut answers = vec![
            login(&gw, payload, payload).await,
            post(
                &gw,
                "/auth/refresh",
                json!({"refresh_token": payload}),
                None,
            )
            .await,
            post(&gw, &format!("/auth/users/{enc}/disable"), json!({}), None).await,
            request(
                gw.addr,
                &format!("GET /no/{enc}?q={enc} HTTP/1.1\nHost: x"),
                b"",
            )
            .await,
            request(
                gw.addr,
                &format!("GET /docs?q={enc} HTTP/1.1\nHost: x"),
                b"",
            )
            .await,
            request(
                gw.addr,
                &format!("GET /auth/sessions HTTP/1.1\nHost: x\nAuthorization: Bearer {enc}"),
                b"",
            )
            .await,
        ];
        answers.push(
            request(
                gw.addr,
                &format!("GET /health/live HTTP/1.1\nHost: x\nX-Request-Id: {enc}"),
                b"",
            )
            .await,
        );
        for r in answers {
            seen += 1;
            let html = r
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/html"));
            assert!(
                !r.text().contains(payload),
                "{payload} reflected ({}): {}",
                r.status,
                r.text()
            );
            // The explorer's own page is the only HTML, and it is static.
            if html {
                assert!(
                    !r.text().contains(&enc) && !r.text().contains("alert("),
                    "{}",
                    r.text()
                );
            }
        }
    }
    assert_eq!(seen, payloads.len() * 7);
    gw.stop().await;
}
