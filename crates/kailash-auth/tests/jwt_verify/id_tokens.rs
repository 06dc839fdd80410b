//! ID token checks of `kailash_auth::oidc::verify_id_token` that the
//! end-to-end tests do not reach: Microsoft's multi-tenant issuer, `nbf`,
//! the provider's algorithm list, `at_hash`.

use std::sync::Arc;

use data_encoding::BASE64URL_NOPAD;
use kailash_auth::jwt::{Algorithm, KeySet, SigningKey};
use kailash_auth::oidc::{IdTokenExpect, OidcError, verify_id_token};
use kailash_auth::spec::OidcProviderSpec;
use kailash_core::clock::ManualClock;
use serde_json::{Value, json};

const NOW: i64 = 1_700_000_000;
const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const MS: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";

fn key() -> &'static SigningKey {
    static KEY: std::sync::OnceLock<SigningKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(Algorithm::ES256, "k").unwrap())
}

fn keys() -> KeySet {
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::from_second(NOW).unwrap()));
    KeySet::verify_only(vec![key().verifying_key()], clock).unwrap()
}

fn sign(claims: &Value) -> String {
    let message = format!(
        "{}.{}",
        BASE64URL_NOPAD.encode(br#"{"alg":"ES256","kid":"k"}"#),
        BASE64URL_NOPAD.encode(claims.to_string().as_bytes())
    );
    let pem = key().to_pkcs8_pem().unwrap();
    let ek = jsonwebtoken::EncodingKey::from_ec_pem(pem.expose().as_bytes()).unwrap();
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &ek, jsonwebtoken::Algorithm::ES256)
        .unwrap();
    format!("{message}.{sig}")
}

fn microsoft(allowed: &[&str]) -> OidcProviderSpec {
    serde_json::from_value(json!({
        "name": "entra", "preset": "microsoft", "microsoft_tenant": "organizations",
        "microsoft_allowed_tenants": allowed, "allow_any_account": allowed.is_empty(),
        "client_id": "kailash",
        "redirect_uri": "https://api.example.com/auth/oidc/entra/callback",
    }))
    .unwrap()
}

fn expect<'a>(
    spec: &'a OidcProviderSpec,
    issuer: &'a str,
    algs: &'a [String],
) -> IdTokenExpect<'a> {
    IdTokenExpect {
        spec,
        issuer,
        algorithms: algs,
        nonce: "n",
        started: NOW - 5,
        access_token: Some("the-access-token"),
        now: NOW,
    }
}

fn claims(iss: &str) -> Value {
    json!({"iss": iss, "aud": "kailash", "sub": "s", "exp": NOW + 300, "iat": NOW, "nonce": "n"})
}

fn refused(r: Result<serde_json::Map<String, Value>, OidcError>) -> bool {
    matches!(r, Err(OidcError::Refused(_)))
}

#[test]
fn microsofts_shared_issuer_is_completed_by_the_tokens_directory() {
    let ks = keys();
    let iss = format!("https://login.microsoftonline.com/{TID}/v2.0");
    let mut c = claims(&iss);
    c["tid"] = TID.into();
    let spec = microsoft(&[TID]);
    verify_id_token(&sign(&c), &ks, &expect(&spec, MS, &[])).unwrap();
    // A token of another directory, under its own (valid) issuer.
    let other = "00000000-0000-0000-0000-000000000001";
    let mut c2 = claims(&format!("https://login.microsoftonline.com/{other}/v2.0"));
    c2["tid"] = other.into();
    assert!(refused(verify_id_token(
        &sign(&c2),
        &ks,
        &expect(&spec, MS, &[])
    )));
    // Allowed when every directory is.
    let any = microsoft(&[]);
    verify_id_token(&sign(&c2), &ks, &expect(&any, MS, &[])).unwrap();
    // The issuer must be the token's own directory's.
    let mut mixed = claims(&iss);
    mixed["tid"] = other.into();
    assert!(refused(verify_id_token(
        &sign(&mixed),
        &ks,
        &expect(&any, MS, &[])
    )));
    // No or a malformed tid.
    assert!(refused(verify_id_token(
        &sign(&claims(&iss)),
        &ks,
        &expect(&any, MS, &[])
    )));
    let mut bad = claims("https://login.microsoftonline.com/x/y/v2.0");
    bad["tid"] = "x/y".into();
    assert!(refused(verify_id_token(
        &sign(&bad),
        &ks,
        &expect(&any, MS, &[])
    )));
}

#[test]
fn nbf_algorithms_and_at_hash_are_checked() {
    let ks = keys();
    let spec: OidcProviderSpec = serde_json::from_value(json!({
        "name": "corp", "issuer": "https://id.example.com", "client_id": "kailash",
        "redirect_uri": "https://api.example.com/auth/oidc/corp/callback",
    }))
    .unwrap();
    let iss = "https://id.example.com";
    let ok = |c: &Value, algs: &[String]| verify_id_token(&sign(c), &ks, &expect(&spec, iss, algs));
    ok(&claims(iss), &[]).unwrap();
    let mut later = claims(iss);
    later["nbf"] = (NOW + 3600).into();
    assert!(refused(ok(&later, &[])));
    let mut bad_nbf = claims(iss);
    bad_nbf["nbf"] = "soon".into();
    assert!(refused(ok(&bad_nbf, &[])));
    // The provider announced RS256 only: an ES256 token is refused.
    assert!(refused(ok(&claims(iss), &["RS256".to_owned()])));
    ok(&claims(iss), &["RS256".to_owned(), "ES256".to_owned()]).unwrap();
    // at_hash: the left half of SHA-256 of the access token.
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"the-access-token");
    let mut bound = claims(iss);
    bound["at_hash"] = BASE64URL_NOPAD.encode(&digest.as_ref()[..16]).into();
    ok(&bound, &[]).unwrap();
    let mut wrong = claims(iss);
    wrong["at_hash"] = BASE64URL_NOPAD.encode(&[0u8; 16]).into();
    assert!(refused(ok(&wrong, &[])));
}
