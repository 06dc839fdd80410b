//! Issue 19, item 4: field-level encryption through the gateway. Sessions'
//! client addresses and TOTP secrets are sealed in the shared state, read
//! back through the API, re-sealed by the gateway's own maintenance after
//! a rotation, and a wrong keyring or bad settings stop the start naming
//! the key.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kailash::GatewayBuilder;
use kailash::config::GatewayConfig;
use kailash_core::envelope::Keyring;
use kailash_core::field_encryption::{FieldKeys, key_id_of};
use kailash_core::state::{Namespace, ScanCursor, SharedState};
use serde_json::json;

use crate::support::demo::*;
use crate::support::*;

const BOB_PASSWORD: &str = "Bob-Demo-Passw0rd!";

fn section(keyring_file: &str) -> String {
    format!(
        "\n[security.field_encryption]\nkeyring_file = \"{keyring_file}\"\nkey_rotation_days = 90\nmaintenance_interval = \"1s\"\nretire_after = \"15m\"\n"
    )
}

fn write_keyring(dir: &Path, name: &str, lines: &[&str]) {
    let text: String = lines
        .iter()
        .map(|id| format!("{id} {}\n", Keyring::generate_key().unwrap()))
        .collect();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

/// A code of `secret` for a step the server accepts now (one either side
/// of the current) that no earlier login or enrolment used.
fn fresh_code(secret: &str, used: &mut Vec<u64>) -> String {
    use kailash::auth::totp::{TotpConfig, TotpSecret};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let step = (now / 30 - 1..=now / 30 + 1)
        .find(|s| !used.contains(s))
        .unwrap();
    used.push(step);
    TotpConfig::default().code_at(&TotpSecret::from_base32(secret).unwrap(), step * 30)
}

/// The demo gateway with field encryption, its state and keys.
async fn gateway(
    dir: &Path,
    keyring_file: &str,
    overrides: &[(&str, String)],
) -> Result<(Running, SharedState, Arc<FieldKeys>), kailash::GatewayError> {
    let vars: Vec<(String, String)> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let text = format!("{}{}", demo_config_text(), section(keyring_file));
    let config = GatewayConfig::from_toml_with_env(&text, "gateway.toml", vars).expect("config");
    let gateway = GatewayBuilder::from_config_with_backends(&config, dir)
        .await?
        .build()?;
    let state = gateway.state().clone();
    let keys = gateway.field_keys().expect("field keys").clone();
    Ok((start_gateway(gateway).await, state, keys))
}

/// Every stored value in `ns`, over all tenants.
async fn stored(state: &SharedState, ns: Namespace) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = Some(ScanCursor::START);
    while let Some(at) = cursor {
        let page = state.kv.scan(ns, at).await.unwrap();
        cursor = page.next;
        for key in page.keys {
            if let Some(v) = state.kv.get(&key).await.unwrap() {
                out.push(String::from_utf8(v.to_vec()).unwrap());
            }
        }
    }
    out
}

/// The data-key ids sealed values in `values` name.
fn key_ids(values: &[String]) -> Vec<String> {
    values
        .iter()
        .filter_map(|v| {
            let at = v.find("kf1.")?;
            let end = v[at..].find('"').map_or(v.len(), |e| at + e);
            key_id_of(&v[at..end]).map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn addresses_and_totp_secrets_are_sealed_at_rest_and_resealed_after_rotation() {
    for overrides in backends() {
        let dir = temp_dir();
        write_keyring(&dir, "fields.keyring", &["kek-1"]);
        let (gw, state, keys) = gateway(&dir, "fields.keyring", &overrides).await.unwrap();

        // Bob enrols a second factor; his sessions are listed with their
        // address, but the state holds neither address nor secret.
        let (bob, _) = tokens(&login(&gw, "bob", BOB_PASSWORD).await);
        let secret = enrolment_secret(&gw, &bob, BOB_PASSWORD).await;
        let mut used = Vec::new();
        let code = fresh_code(&secret, &mut used);
        let r = post(&gw, "/auth/mfa/verify", json!({ "code": code }), Some(&bob)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = get_auth(&gw, "/auth/sessions", &bob).await;
        assert_eq!(r.json()[0]["client_ip"], "127.0.0.1", "{}", r.text());

        let sessions = stored(&state, Namespace::new("session")).await;
        let secrets = stored(&state, Namespace::new("mfa.secret")).await;
        assert!(!sessions.is_empty() && secrets.len() == 1);
        for v in sessions.iter().chain(&secrets) {
            assert!(v.contains("kf1."), "{v}");
            assert!(!v.contains("127.0.0.1"), "{v}");
            assert!(!v.contains(&secret), "the secret is stored in clear");
        }
        let first = keys.keys()[0].id.clone();
        assert!(key_ids(&sessions).iter().all(|id| *id == first));

        // A login with the sealed secret works.
        let body = json!({ "username": "bob", "password": BOB_PASSWORD, "totp": fresh_code(&secret, &mut used) });
        let r = post(&gw, "/auth/login", body, None).await;
        assert_eq!(r.status, 200, "{}", r.text());

        // A rotation (as when key_rotation_days passes): the gateway's own
        // maintenance round re-seals every address and secret under the
        // new key within a few rounds.
        keys.rotate().await.unwrap();
        let active = keys.keys().last().unwrap().id.clone();
        let mut done = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let ids = key_ids(&stored(&state, Namespace::new("session")).await);
            let secret_ids = key_ids(&stored(&state, Namespace::new("mfa.secret")).await);
            if ids.iter().chain(&secret_ids).all(|id| *id == active) {
                done = true;
                break;
            }
        }
        assert!(done, "the maintenance did not re-seal everything");
        let r = get_auth(&gw, "/auth/sessions", &bob).await;
        assert!(
            r.json()
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["client_ip"] == "127.0.0.1"),
            "{}",
            r.text()
        );
        let body = json!({ "username": "bob", "password": BOB_PASSWORD, "totp": fresh_code(&secret, &mut used) });
        let r = post(&gw, "/auth/login", body, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let metrics = request(gw.addr, "GET /metrics HTTP/1.1\nHost: x", b"")
            .await
            .text();
        assert!(
            sample(
                &metrics,
                "kailash_field_reencrypted_total{target=\"sessions\"}"
            ) >= 1.0,
            "{metrics}"
        );
        assert!(
            sample(
                &metrics,
                "kailash_field_reencrypted_total{target=\"totp_secrets\"}"
            ) >= 1.0
        );
        gw.stop().await;

        // On a shared state a second instance with another KEK cannot open
        // the key set: it refuses to start rather than seal with keys the
        // first cannot read.
        if !overrides.is_empty() {
            write_keyring(&dir, "other.keyring", &["kek-1"]);
            let err = gateway(&dir, "other.keyring", &overrides)
                .await
                .err()
                .expect("refused");
            let text = err.to_string();
            assert!(text.contains("security.field_encryption"), "{text}");
            assert!(text.contains("does not open"), "{text}");
        }
    }
}

#[test]
fn bad_field_encryption_settings_stop_the_start_naming_the_key() {
    let cases = [
        (
            "KAILASH_SECURITY__FIELD_ENCRYPTION__KEYRING_FILE",
            "",
            "security.field_encryption.keyring_env",
        ),
        (
            "KAILASH_SECURITY__FIELD_ENCRYPTION__KEY_ROTATION_DAYS",
            "4000",
            "security.field_encryption.key_rotation_days",
        ),
        (
            "KAILASH_SECURITY__FIELD_ENCRYPTION__RETIRE_AFTER",
            "1m",
            "security.field_encryption.retire_after",
        ),
        (
            "KAILASH_SECURITY__FIELD_ENCRYPTION__MAINTENANCE_INTERVAL",
            "0s",
            "security.field_encryption.maintenance_interval",
        ),
    ];
    for (var, value, key) in cases {
        let text = format!("{}{}", demo_config_text(), section("fields.keyring"));
        let text = if value.is_empty() {
            text.replace("keyring_file = \"fields.keyring\"\n", "")
        } else {
            text
        };
        let vars = if value.is_empty() {
            vec![]
        } else {
            vec![(var.to_owned(), value.to_owned())]
        };
        let err = GatewayConfig::from_toml_with_env(&text, "gateway.toml", vars)
            .expect_err("refused")
            .to_string();
        assert!(err.contains(key), "{var}={value}: {err}");
    }
}

#[tokio::test]
async fn a_malformed_keyring_stops_the_start_naming_the_line_never_a_key() {
    let dir = temp_dir();
    let key = Keyring::generate_key().unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("fields.keyring"),
        format!("kek-1 {key}\nkek-2 not-base64\n"),
    )
    .unwrap();
    let err = gateway(&dir, "fields.keyring", &[])
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("security.field_encryption"), "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains(&key), "{err}");
}
