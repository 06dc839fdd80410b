//! `jwt_auth_axum`: login against your own user store, then the token.

use crate::{Example, get};

async fn post_json(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> crate::support::Resp {
    let mut head = format!(
        "POST {path} HTTP/1.1\nHost: localhost\nContent-Type: application/json\nContent-Length: {}",
        body.len()
    );
    if let Some(t) = token {
        head.push_str(&format!("\nAuthorization: Bearer {t}"));
    }
    crate::support::request(addr, &head, body.as_bytes()).await
}

#[tokio::test]
async fn login_then_me_then_logout() {
    let ex = Example::start("jwt_auth_axum", &["127.0.0.1:0"], &[]);
    let res = get(ex.addr, "/me", None, "").await;
    res.assert_problem(401);
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));

    let wrong = r#"{"username":"alice","password":"not-her-password"}"#;
    post_json(ex.addr, "/auth/login", None, wrong)
        .await
        .assert_problem(401);

    let right = r#"{"username":"alice","password":"Alice-Example-Passw0rd!"}"#;
    let res = post_json(ex.addr, "/auth/login", None, right).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let token = res.json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();

    let res = get(ex.addr, "/me", Some(&token), "").await;
    assert_eq!((res.status, res.text().as_str()), (200, "hello alice\n"));

    // Logged out: the unexpired token is refused, because its session ended.
    let res = post_json(ex.addr, "/auth/logout", Some(&token), "{}").await;
    assert!(res.status < 300, "logout: {} {}", res.status, res.text());
    get(ex.addr, "/me", Some(&token), "")
        .await
        .assert_problem(401);
}
