//! `gateway_from_toml`: the whole gateway from the demo configuration.

use crate::{Example, get, support};

#[tokio::test]
async fn the_demo_configuration_serves_the_gateway() {
    let data =
        std::env::temp_dir().join(format!("kailash-gw-example-{}", support::unique_suffix()));
    std::fs::create_dir_all(&data).unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/enterprise.toml");
    let ex = Example::start_in(
        "gateway_from_toml",
        &[config],
        &[("KAILASH_SERVER__LISTEN", "127.0.0.1:0")],
        &data,
    );
    assert_eq!(get(ex.addr, "/health/live", None, "").await.status, 200);

    let body = r#"{"username":"bob","password":"Bob-Demo-Passw0rd!"}"#;
    let head = format!(
        "POST /auth/login HTTP/1.1\nHost: localhost\nContent-Type: application/json\nContent-Length: {}",
        body.len()
    );
    let res = support::request(ex.addr, &head, body.as_bytes()).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let token = res.json()["access_token"].as_str().unwrap().to_owned();

    let res = get(ex.addr, "/api/tenant/usage", Some(&token), "").await;
    assert_eq!(res.status, 200, "{}", res.text());
    get(ex.addr, "/api/tenant/usage", None, "")
        .await
        .assert_problem(401);
    drop(ex);
    std::fs::remove_dir_all(&data).ok();
}

#[test]
fn a_missing_file_is_named() {
    let ran = crate::run("gateway_from_toml", &["/nonexistent/gateway.toml"], &[]);
    assert!(!ran.ok);
    assert!(
        ran.stderr.contains("/nonexistent/gateway.toml"),
        "{}",
        ran.stderr
    );
}
