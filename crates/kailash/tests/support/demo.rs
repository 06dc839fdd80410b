//! The gateway of the fixture config (`fixtures/gateway.toml`: DEMO.md's
//! users, tenants and settings) for end-to-end tests, on memory and on
//! Redis, and small JSON/HTTP helpers against it.

use std::path::PathBuf;

use kailash::GatewayBuilder;
use kailash::auth::totp::{TotpConfig, TotpSecret};
use kailash::config::GatewayConfig;
use serde_json::{Value, json};

use super::{Resp, Running, request, start_gateway, unique_suffix};

/// Alice's demo TOTP secret.
pub const ALICE_TOTP: &str = "JBSWY3DPEHPK3PXP";

pub fn demo_config_text() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gateway.toml");
    std::fs::read_to_string(path).expect("demo config")
}

/// The error of loading the demo config with `vars` from the environment
/// (it must fail).
pub fn config_error(vars: &[(&str, &str)]) -> String {
    let env: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    kailash::config::GatewayConfig::from_toml_with_env(&demo_config_text(), "gateway.toml", env)
        .unwrap_err()
        .to_string()
}

pub fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("kailash-demo-e2e-{}", unique_suffix()))
}

/// The demo gateway with `overrides` (as KAILASH_* environment variables).
pub async fn demo(overrides: &[(&str, String)]) -> Running {
    demo_in(&temp_dir(), overrides).await
}

/// [`demo`] with its data (signing keys, …) in `dir`: two gateways on one
/// `dir` and one Redis act as two instances of one deployment.
#[allow(dead_code)] // not every test binary runs two instances
pub async fn demo_in(dir: &std::path::Path, overrides: &[(&str, String)]) -> Running {
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

/// Memory, plus Redis, a Redis Cluster and Redis through Sentinel (each
/// with a fresh key prefix) when configured.
pub fn backends() -> Vec<Vec<(&'static str, String)>> {
    let mut out = vec![vec![]];
    match std::env::var("KAILASH_TEST_REDIS_URL") {
        Ok(_) if !cfg!(feature = "redis") => {
            eprintln!("skipped the Redis half: built without the `redis` feature");
        }
        Ok(url) => {
            out.push(vec![
                ("KAILASH_STATE__REDIS_URL", url),
                (
                    "KAILASH_STATE__KEY_PREFIX",
                    format!("kailash-e2e-{}:", unique_suffix()),
                ),
            ]);
        }
        Err(_) => eprintln!("skipped the Redis half: KAILASH_TEST_REDIS_URL is not set"),
    }
    // The same again on a Redis Cluster and through Redis Sentinel:
    // nothing in the request path may depend on the topology.
    for (var, name) in [
        ("KAILASH_TEST_REDIS_CLUSTER_URL", "cluster"),
        ("KAILASH_TEST_REDIS_SENTINEL_URL", "sentinel"),
    ] {
        match std::env::var(var) {
            Ok(url) if cfg!(feature = "redis") => {
                out.push(vec![
                    ("KAILASH_STATE__REDIS_URL", url),
                    (
                        "KAILASH_STATE__KEY_PREFIX",
                        format!("kailash-e2e-{name}-{}:", unique_suffix()),
                    ),
                ]);
            }
            Ok(_) => {}
            Err(_) => eprintln!("skipped the Redis {name} part: {var} is not set"),
        }
    }
    out
}

pub async fn post(gw: &Running, path: &str, body: Value, token: Option<&str>) -> Resp {
    let body = body.to_string();
    let auth = token
        .map(|t| format!("\nAuthorization: Bearer {t}"))
        .unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: {}{auth}",
        body.len()
    );
    request(gw.addr, &head, body.as_bytes()).await
}

pub async fn get_auth(gw: &Running, path: &str, token: &str) -> Resp {
    request(
        gw.addr,
        &format!("GET {path} HTTP/1.1\nHost: x\nAuthorization: Bearer {token}"),
        b"",
    )
    .await
}

pub async fn delete_auth(gw: &Running, path: &str, token: &str) -> Resp {
    request(
        gw.addr,
        &format!("DELETE {path} HTTP/1.1\nHost: x\nAuthorization: Bearer {token}"),
        b"",
    )
    .await
}

pub async fn login(gw: &Running, user: &str, password: &str) -> Resp {
    post(
        gw,
        "/auth/login",
        json!({ "username": user, "password": password }),
        None,
    )
    .await
}

pub fn tokens(r: &Resp) -> (String, String) {
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert!(
        v["expires_in"].as_u64().unwrap() > 7 * 3600,
        "8 h access tokens"
    );
    (
        v["access_token"].as_str().unwrap().to_owned(),
        v["refresh_token"].as_str().unwrap().to_owned(),
    )
}

pub fn totp_now(secret: &str) -> String {
    let secret = TotpSecret::from_base32(secret).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    TotpConfig::default().code_at(&secret, now)
}

/// Starts a TOTP enrolment for the caller of `token` with `password` and
/// returns the new secret (asserting the `200`).
#[allow(dead_code)] // not every test binary enrols
pub async fn enrolment_secret(gw: &Running, token: &str, password: &str) -> String {
    let r = post(
        gw,
        "/auth/mfa/enroll",
        serde_json::json!({ "password": password }),
        Some(token),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["secret"].as_str().unwrap().to_owned()
}
