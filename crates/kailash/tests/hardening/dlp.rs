//! Issue 19, item 5: response DLP through the gateway. A caller below a
//! rule's clearance gets personal data redacted (or the response blocked);
//! a cleared caller sees it; findings are counted; bad rules stop the start.

use crate::support::demo::*;
use crate::support::*;

fn metric(text: &str, kind: &str, action: &str) -> Option<String> {
    text.lines()
        .find(|l| {
            l.starts_with("kailash_dlp_findings_total{")
                && l.contains(&format!("kind=\"{kind}\""))
                && l.contains(&format!("action=\"{action}\""))
        })
        .map(|l| l.rsplit(' ').next().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn personal_data_is_redacted_or_blocked_below_the_clearance() {
    let rule = |action: &str| {
        format!(
            r#"[{{ path = "/auth/sessions", action = "{action}", kinds = ["ip_address"], clearance = "confidential" }}]"#
        )
    };
    let gw = demo(&[("KAILASH_SECURITY__DLP", rule("redact"))]).await;
    let (bob, _) = tokens(&login(&gw, "bob", "Bob-Demo-Passw0rd!").await);
    let (dave, _) = tokens(&login(&gw, "dave", "Dave-Demo-Passw0rd!").await);

    // bob (internal) sees his sessions without the addresses.
    let r = get_auth(&gw, "/auth/sessions", &bob).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sessions = r.json();
    assert_eq!(
        sessions[0]["client_ip"], "[REDACTED:ip_address]",
        "{sessions}"
    );
    assert!(!r.text().contains("127.0.0.1"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    // dave (confidential) is cleared.
    let r = get_auth(&gw, "/auth/sessions", &dave).await;
    assert_eq!(r.json()[0]["client_ip"], "127.0.0.1", "{}", r.text());
    let text = request(gw.addr, "GET /metrics HTTP/1.1\nHost: x", b"")
        .await
        .text();
    assert_eq!(
        metric(&text, "ip_address", "redacted").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        metric(&text, "ip_address", "allowed").as_deref(),
        Some("1"),
        "{text}"
    );
    gw.stop().await;

    let gw = demo(&[("KAILASH_SECURITY__DLP", rule("block"))]).await;
    let (bob, _) = tokens(&login(&gw, "bob", "Bob-Demo-Passw0rd!").await);
    let r = get_auth(&gw, "/auth/sessions", &bob).await;
    let p = r.assert_problem(403);
    assert_eq!(p["type"], "urn:kailash:problem:sensitive-data");
    assert_eq!(p["kinds"], serde_json::json!(["ip_address"]));
    assert!(!r.text().contains("127.0.0.1"));
    // A cleared caller is not blocked.
    let (dave, _) = tokens(&login(&gw, "dave", "Dave-Demo-Passw0rd!").await);
    let r = get_auth(&gw, "/auth/sessions", &dave).await;
    assert_eq!(r.status, 200, "{}", r.text());
    gw.stop().await;
}

#[test]
fn dlp_rules_that_cannot_work_stop_the_start_naming_the_key() {
    for (name, value, key) in [
        (
            "KAILASH_SECURITY__DLP",
            r#"[{ path = "auth", action = "redact" }]"#,
            "security.dlp.path",
        ),
        (
            "KAILASH_SECURITY__DLP",
            r#"[{ path = "/a", action = "redact", clearance = "top" }]"#,
            "security.dlp",
        ),
        (
            "KAILASH_SECURITY__DLP",
            r#"[{ path = "/a", action = "redact", kinds = [] }]"#,
            "security.dlp.kinds",
        ),
        (
            "KAILASH_SECURITY__DLP",
            r#"[{ path = "/a", action = "shred" }]"#,
            "security.dlp",
        ),
        (
            "KAILASH_SECURITY__DLP",
            r#"[{ path = "/a", action = "redact", kinds = ["dna"] }]"#,
            "security.dlp",
        ),
        (
            "KAILASH_SECURITY__CLEARANCE_LEVELS",
            r#"["a", "a"]"#,
            "security.clearance_levels",
        ),
    ] {
        let e = config_error(&[(name, value)]);
        assert!(e.contains(key), "{value}: {e}");
    }
}
