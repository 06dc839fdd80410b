//! Keys, rotation and JWKS import/export.

use std::sync::Arc;
use std::time::Duration;

use kailash_auth::jwt::{
    Algorithm, Claims, KeyError, KeySet, KeySetError, SigningKey, TokenType, Verifier, VerifyError,
    VerifyingKey,
};
use kailash_core::clock::ManualClock;
use serde_json::{Value, json};

const NOW: i64 = 1_700_000_000;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(jiff::Timestamp::from_second(NOW).unwrap()))
}

fn claims(exp_in: i64) -> Claims {
    Claims::new("iss", "alice", "aud", NOW, NOW + exp_in)
}

#[tokio::test]
async fn rotation_keeps_the_old_key_until_retirement() {
    let c = clock();
    let keys = Arc::new(KeySet::new(
        SigningKey::generate(Algorithm::ES256, "old").unwrap(),
        c.clone(),
    ));
    let v = Verifier::builder(keys.clone(), "iss", "aud")
        .clock(c.clone())
        .build();
    let old_token = keys.issue(&claims(3600), TokenType::Access).unwrap();
    keys.rotate(
        SigningKey::generate(Algorithm::EdDSA, "new").unwrap(),
        Duration::from_secs(600),
    )
    .unwrap();
    assert_eq!(keys.signer_kid().as_deref(), Some("new"));
    let new_token = keys.issue(&claims(3600), TokenType::Access).unwrap();
    assert!(v.verify(&old_token).await.is_ok());
    assert!(v.verify(&new_token).await.is_ok());
    assert_eq!(keys.len(), 2);
    c.advance(Duration::from_secs(599));
    assert!(v.verify(&old_token).await.is_ok());
    c.advance(Duration::from_secs(1));
    assert_eq!(v.verify(&old_token).await, Err(VerifyError::UnknownKey));
    assert!(v.verify(&new_token).await.is_ok());
    assert_eq!(keys.len(), 1);
    assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 1);
    // A duplicate kid is refused.
    assert_eq!(
        keys.rotate(
            SigningKey::generate(Algorithm::EdDSA, "new").unwrap(),
            Duration::ZERO
        ),
        Err(KeySetError::DuplicateKid { kid: "new".into() })
    );
}

fn full_set(c: Arc<ManualClock>) -> KeySet {
    let keys = KeySet::new(SigningKey::generate(Algorithm::RS256, "rs").unwrap(), c);
    keys.add_verifier(
        SigningKey::generate(Algorithm::ES256, "es")
            .unwrap()
            .verifying_key(),
    )
    .unwrap();
    keys.add_verifier(
        SigningKey::generate(Algorithm::EdDSA, "ed")
            .unwrap()
            .verifying_key(),
    )
    .unwrap();
    keys.add_verifier(VerifyingKey::hs256("hs", b"0123456789abcdef0123456789abcdef").unwrap())
        .unwrap();
    keys
}

#[test]
fn jwks_export_holds_only_public_material() {
    let keys = full_set(clock());
    let jwks = keys.jwks();
    let list = jwks["keys"].as_array().unwrap();
    assert_eq!(list.len(), 3, "the HS256 secret is never exported");
    let text = jwks.to_string();
    assert!(!text.contains("\"d\""));
    assert!(!text.contains("\"k\""));
    assert!(!text.contains("oct"));
    assert!(
        !text.contains(&data_encoding::BASE64URL_NOPAD.encode(b"0123456789abcdef0123456789abcdef"))
    );
    for key in list {
        let obj = key.as_object().unwrap();
        assert_eq!(key["use"], "sig");
        let allowed: &[&str] = match key["kty"].as_str().unwrap() {
            "RSA" => {
                assert_eq!(key["alg"], "RS256");
                assert_eq!(key["kid"], "rs");
                &["kty", "kid", "alg", "use", "n", "e"]
            }
            "EC" => {
                assert_eq!(key["alg"], "ES256");
                assert_eq!(key["crv"], "P-256");
                &["kty", "kid", "alg", "use", "crv", "x", "y"]
            }
            "OKP" => {
                assert_eq!(key["alg"], "EdDSA");
                assert_eq!(key["crv"], "Ed25519");
                &["kty", "kid", "alg", "use", "crv", "x"]
            }
            other => panic!("unexpected kty {other}"),
        };
        let mut members: Vec<&str> = obj.keys().map(String::as_str).collect();
        members.sort_unstable();
        let mut expected = allowed.to_vec();
        expected.sort_unstable();
        assert_eq!(members, expected);
    }
}

#[tokio::test]
async fn from_jwks_round_trips_each_key_type() {
    let c = clock();
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let signer = KeySet::new(SigningKey::generate(alg, "k").unwrap(), c.clone());
        let token = signer.issue(&claims(300), TokenType::Access).unwrap();
        let imported = Arc::new(KeySet::from_jwks(&signer.jwks(), c.clone()).unwrap());
        assert_eq!(imported.jwks(), signer.jwks());
        assert!(imported.issue(&claims(300), TokenType::Access).is_err());
        let v = Verifier::builder(imported, "iss", "aud")
            .clock(c.clone())
            .build();
        assert!(v.verify(&token).await.is_ok(), "{alg}");
    }
}

#[test]
fn from_jwks_skips_the_keys_it_cannot_use_and_keeps_the_rest() {
    let c = clock();
    let good = KeySet::new(
        SigningKey::generate(Algorithm::ES256, "es").unwrap(),
        c.clone(),
    )
    .jwks();
    let ec = good["keys"][0].clone();
    let other = KeySet::new(
        SigningKey::generate(Algorithm::EdDSA, "ed").unwrap(),
        c.clone(),
    )
    .jwks()["keys"][0]
        .clone();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut k = ec.clone();
        f(&mut k);
        k
    };
    let kids = |doc: Value| {
        let mut kids: Vec<String> = KeySet::from_jwks(&doc, c.clone()).unwrap().jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        kids.sort();
        kids
    };
    // Each unusable key beside a good one: the good one loads, the bad one
    // is skipped.
    for bad in [
        with(&|k| {
            k.as_object_mut().unwrap().remove("kid");
        }),
        json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"}),
        with(&|k| k["crv"] = json!("P-384")),
        with(&|k| k["use"] = json!("enc")),
        with(&|k| k["kty"] = json!("XYZ")),
        with(&|k| k["alg"] = json!("RS256")),
        with(&|k| k["alg"] = json!("none")),
        with(&|k| k["x"] = json!("AAAA")),
        // Well-formed coordinates of a point that is not on P-256.
        with(&|k| k["y"] = json!("A".repeat(43))),
        json!("not an object"),
    ] {
        assert_eq!(
            kids(json!({"keys": [other.clone(), bad.clone()]})),
            ["ed"],
            "{bad}"
        );
        assert!(
            KeySet::from_jwks(&json!({"keys": [bad.clone()]}), c.clone())
                .unwrap()
                .is_empty(),
            "{bad}"
        );
    }
    // Two keys under one kid: neither can be chosen by it.
    assert_eq!(
        kids(json!({"keys": [ec.clone(), other.clone(), ec.clone()]})),
        ["ed"]
    );
    assert_eq!(
        kids(json!({"keys": [ec.clone(), other.clone()]})),
        ["ed", "es"]
    );
    assert_eq!(
        KeySet::from_jwks(&json!([]), c.clone()).unwrap_err(),
        KeySetError::NotAJwks
    );
    // Messages name the kid, never key material.
    let shown = KeySetError::Unsupported { kid: "es".into() }.to_string();
    assert!(shown.contains("es"));
}

#[test]
fn keys_round_trip_through_pkcs8_pem_and_hide_secrets() {
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let key = SigningKey::generate(alg, "k1").unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.expose().starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(!format!("{pem:?}").contains("BEGIN"));
        assert!(!format!("{key:?}").contains("BEGIN"));
        let again = SigningKey::from_pkcs8_pem(alg, "k1", pem.expose().as_bytes()).unwrap();
        assert_eq!(again.verifying_key().to_jwk(), key.verifying_key().to_jwk());
        assert_eq!(again.algorithm(), alg);
        assert_eq!(again.kid(), "k1");
        // The PEM of one algorithm does not load as another.
        let other = if alg == Algorithm::EdDSA {
            Algorithm::ES256
        } else {
            Algorithm::EdDSA
        };
        assert!(SigningKey::from_pkcs8_pem(other, "k1", pem.expose().as_bytes()).is_err());
    }
    assert!(matches!(
        SigningKey::hs256("h", &[1; 31]),
        Err(KeyError::SecretTooShort { .. })
    ));
    assert_eq!(
        SigningKey::hs256("", &[1; 32]).unwrap_err(),
        KeyError::EmptyKid
    );
    let hs = SigningKey::hs256("h", &[0x41; 32]).unwrap();
    assert!(hs.to_pkcs8_pem().is_none());
    assert!(hs.verifying_key().to_jwk().is_none());
    assert!(!format!("{hs:?}").contains("AAAA"));
    assert_eq!(
        SigningKey::generate(Algorithm::HS256, "h").unwrap_err(),
        KeyError::GenerationUnsupported
    );
    assert!(SigningKey::from_pkcs8_pem(Algorithm::ES256, "k", b"garbage").is_err());
}

#[path = "fuzz_harness/jwks.rs"]
mod fuzz_jwks;

/// Replays the `jwks` fuzz corpus (`fuzz/corpus/jwks/`) on stable through
/// the fuzz target's own harness: no input panics, every `seed_*` loads
/// (with at least one key) and every `bad_*` loads no key. Files with
/// neither prefix are inputs whose outcome is not pinned here (a point off
/// the P-256 curve loads and only fails at verification, for one).
#[test]
fn replay_jwks_fuzz_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/jwks");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let loaded = std::panic::catch_unwind(|| fuzz_jwks::run(&bytes))
            .unwrap_or_else(|_| panic!("panicked on {}", path.display()));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("seed_") {
            assert!(
                loaded.is_some_and(|n| n > 0),
                "{name} should load: {loaded:?}"
            );
        } else if name.starts_with("bad_") {
            assert_eq!(loaded.unwrap_or(0), 0, "{name} should load no key");
        }
        files += 1;
    }
    assert!(files >= 8, "corpus has {files} files");
    assert_eq!((fuzz_jwks::NOW, fuzz_jwks::KID), (NOW, "fz"));
}

#[path = "fuzz_harness/oidc_answer.rs"]
mod fuzz_oidc;

/// Replays the `oidc_answer` fuzz corpus (`fuzz/corpus/oidc_answer/`) on
/// stable through the fuzz target's own harness: no input panics, every
/// `seed_*` is accepted and every `bad_*` refused.
#[test]
fn replay_oidc_answer_fuzz_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/oidc_answer");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let accepted = std::panic::catch_unwind(|| fuzz_oidc::run(&bytes))
            .unwrap_or_else(|_| panic!("panicked on {}", path.display()));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("seed_") {
            assert_eq!(accepted, Some(true), "{name} should be accepted");
        } else if name.starts_with("bad_") {
            assert_eq!(accepted, Some(false), "{name} should be refused");
        }
        files += 1;
    }
    assert!(files >= 20, "corpus has {files} files");
    assert_eq!(fuzz_oidc::NOW, NOW);
}
