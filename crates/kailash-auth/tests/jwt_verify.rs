//! RFC 8725 verification: algorithms, header handling and claims.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use data_encoding::{BASE64, BASE64URL_NOPAD};
use jsonwebtoken::EncodingKey;
use kailash_auth::jwt::{
    Algorithm, Claims, KeySet, SigningKey, TokenType, Verifier, VerifyError, VerifyingKey,
};
use kailash_core::clock::ManualClock;
use kailash_core::{AttributeValue, TenantId};
use serde_json::{Value, json};

const NOW: i64 = 1_700_000_000;
const ISS: &str = "https://id.example";
const AUD: &str = "api";

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(jiff::Timestamp::from_second(NOW).unwrap()))
}

fn hs_key(kid: &str) -> SigningKey {
    SigningKey::hs256(kid, &[7u8; 32]).unwrap()
}

fn setup(key: SigningKey) -> (Arc<ManualClock>, Arc<KeySet>, Verifier) {
    let c = clock();
    let keys = Arc::new(KeySet::new(key, c.clone()));
    let v = Verifier::builder(keys.clone(), ISS, AUD)
        .clock(c.clone())
        .build();
    (c, keys, v)
}

fn claims() -> Claims {
    Claims::new(ISS, "alice", AUD, NOW, NOW + 300)
}

fn b64(v: &Value) -> String {
    BASE64URL_NOPAD.encode(v.to_string().as_bytes())
}

/// A token with an arbitrary header and payload, signed by `key` with `alg`.
fn forge(header: Value, payload: Value, key: &SigningKey) -> String {
    let message = format!("{}.{}", b64(&header), b64(&payload));
    let enc = encoding_key(key);
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &enc, key.algorithm_jwt()).unwrap();
    format!("{message}.{sig}")
}

trait JwtAlg {
    fn algorithm_jwt(&self) -> jsonwebtoken::Algorithm;
}
impl JwtAlg for SigningKey {
    fn algorithm_jwt(&self) -> jsonwebtoken::Algorithm {
        match self.algorithm() {
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
        }
    }
}

fn encoding_key(key: &SigningKey) -> EncodingKey {
    match key.to_pkcs8_pem() {
        None => EncodingKey::from_secret(&[7u8; 32]),
        Some(pem) => {
            let pem = pem.expose().as_bytes();
            match key.algorithm() {
                Algorithm::RS256 => EncodingKey::from_rsa_pem(pem),
                Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
                _ => EncodingKey::from_ed_pem(pem),
            }
            .unwrap()
        }
    }
}

fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "typ": "at+jwt", "kid": kid})
}

fn payload() -> Value {
    claims().to_json()
}

#[tokio::test]
async fn round_trip_for_each_algorithm() {
    for key in [
        SigningKey::generate(Algorithm::RS256, "rs").unwrap(),
        SigningKey::generate(Algorithm::ES256, "es").unwrap(),
        SigningKey::generate(Algorithm::EdDSA, "ed").unwrap(),
        hs_key("hs"),
    ] {
        let alg = key.algorithm();
        let (_c, keys, v) = setup(key);
        let mut c = claims();
        c.tid = Some(TenantId::new("acme").unwrap());
        c.roles = vec!["admin".into()];
        c.attrs.insert("dept".into(), AttributeValue::from("eng"));
        c.sid = Some("sess-1".into());
        c.jti = Some("jti-1".into());
        let token = keys.issue(&c, TokenType::Access).unwrap();
        let header: Value = serde_json::from_slice(
            &BASE64URL_NOPAD
                .decode(token.split('.').next().unwrap().as_bytes())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], alg.as_str());
        assert_eq!(header["typ"], "at+jwt");
        assert!(header["kid"].is_string());
        let got = v.verify(&token).await.unwrap();
        assert_eq!(got, c, "{alg}");
        let p = got.to_principal();
        assert_eq!(p.subject(), "alice");
        assert_eq!(p.tenant().unwrap().as_str(), "acme");
        assert!(p.has_role("admin"));
        assert_eq!(p.attribute("dept"), Some(&AttributeValue::from("eng")));
        assert_eq!(p.session_id(), Some("sess-1"));
        assert_eq!(p.token_id(), Some("jti-1"));
        assert_eq!(p.expires_at().unwrap().as_second(), NOW + 300);
        // The sync path agrees.
        assert!(v.verify_now(&token).is_ok());
    }
}

#[tokio::test]
async fn forged_signature_is_refused() {
    let (_c, keys, v) = setup(SigningKey::generate(Algorithm::ES256, "es").unwrap());
    let token = keys.issue(&claims(), TokenType::Access).unwrap();
    // Change the payload, keep the signature.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut p = payload();
    p["sub"] = "mallory".into();
    parts[1] = b64(&p);
    assert_eq!(
        v.verify(&parts.join(".")).await,
        Err(VerifyError::BadSignature)
    );
    // A signature by another key with the same kid.
    let other = SigningKey::generate(Algorithm::ES256, "es").unwrap();
    let forged = forge(header("ES256", "es"), payload(), &other);
    assert_eq!(v.verify(&forged).await, Err(VerifyError::BadSignature));
}

fn rsa_public_pem(key: &SigningKey) -> String {
    let pem = key.to_pkcs8_pem().unwrap();
    let body: String = pem
        .expose()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = BASE64.decode(body.as_bytes()).unwrap();
    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&der).unwrap();
    let public: aws_lc_rs::encoding::PublicKeyX509Der<'static> =
        aws_lc_rs::signature::KeyPair::public_key(&pair)
            .as_der()
            .unwrap();
    let b64 = BASE64.encode(public.as_ref());
    let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str("-----END PUBLIC KEY-----\n");
    out
}

#[tokio::test]
async fn algorithm_confusion_is_refused() {
    let signer = SigningKey::generate(Algorithm::RS256, "rsa").unwrap();
    let pem = rsa_public_pem(&signer);
    let public = VerifyingKey::from_public_pem(Algorithm::RS256, "rsa", pem.as_bytes()).unwrap();
    let c = clock();
    let keys = Arc::new(KeySet::verify_only([public], c.clone()).unwrap());
    let v = Verifier::builder(keys, ISS, AUD).clock(c.clone()).build();

    // A genuine RS256 token verifies with the public-PEM key.
    let genuine = forge(header("RS256", "rsa"), payload(), &signer);
    assert!(v.verify(&genuine).await.is_ok());

    // HS256 "signed" with the public PEM bytes as the secret.
    let message = format!("{}.{}", b64(&header("HS256", "rsa")), b64(&payload()));
    let hkey = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, pem.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&hkey, message.as_bytes());
    let token = format!("{message}.{}", BASE64URL_NOPAD.encode(tag.as_ref()));
    assert_eq!(v.verify(&token).await, Err(VerifyError::AlgorithmMismatch));
}

#[tokio::test]
async fn alg_none_and_other_algorithms_are_refused() {
    let (_c, _keys, v) = setup(hs_key("hs"));
    let none = format!("{}.{}.", b64(&header("none", "hs")), b64(&payload()));
    assert!(v.verify(&none).await.is_err());
    let none_sig = format!("{}.{}.AAAA", b64(&header("none", "hs")), b64(&payload()));
    assert_eq!(
        v.verify(&none_sig).await,
        Err(VerifyError::AlgorithmMismatch)
    );
    for alg in ["HS512", "RS256", "ES256", "EdDSA", "NONE"] {
        let t = format!("{}.{}.AAAA", b64(&header(alg, "hs")), b64(&payload()));
        assert_eq!(
            v.verify(&t).await,
            Err(VerifyError::AlgorithmMismatch),
            "{alg}"
        );
    }
    // A well-signed token whose header claims another alg of the same family.
    let key = hs_key("hs");
    let msg = format!("{}.{}", b64(&header("HS384", "hs")), b64(&payload()));
    let sig = jsonwebtoken::crypto::sign(
        msg.as_bytes(),
        &encoding_key(&key),
        jsonwebtoken::Algorithm::HS384,
    )
    .unwrap();
    assert_eq!(
        v.verify(&format!("{msg}.{sig}")).await,
        Err(VerifyError::AlgorithmMismatch)
    );
}

#[tokio::test]
async fn kid_is_a_lookup() {
    let c = clock();
    let a = hs_key("a");
    let keys = Arc::new(KeySet::new(a, c.clone()));
    let v = Verifier::builder(keys.clone(), ISS, AUD)
        .clock(c.clone())
        .build();
    let signer = hs_key("a");
    // One key, no kid: that key is used.
    let no_kid = forge(json!({"alg": "HS256", "typ": "at+jwt"}), payload(), &signer);
    assert!(v.verify(&no_kid).await.is_ok());
    // Unknown kid.
    let unknown = forge(header("HS256", "zzz"), payload(), &signer);
    assert_eq!(v.verify(&unknown).await, Err(VerifyError::UnknownKey));
    // Two keys: a missing kid is refused.
    keys.add_verifier(VerifyingKey::hs256("b", &[9u8; 32]).unwrap())
        .unwrap();
    assert_eq!(v.verify(&no_kid).await, Err(VerifyError::UnknownKey));
    // A non-string kid is malformed.
    let odd = forge(
        json!({"alg": "HS256", "typ": "at+jwt", "kid": 5}),
        payload(),
        &signer,
    );
    assert_eq!(v.verify(&odd).await, Err(VerifyError::Malformed));
}

#[tokio::test]
async fn crit_is_refused() {
    let key = hs_key("hs");
    let (_c, _keys, v) = setup(hs_key("hs"));
    let mut h = header("HS256", "hs");
    h["crit"] = json!(["exp"]);
    h["exp"] = json!(NOW);
    let t = forge(h, payload(), &key);
    assert_eq!(v.verify(&t).await, Err(VerifyError::UnsupportedCritical));
    let mut h = header("HS256", "hs");
    h["crit"] = json!([]);
    assert_eq!(
        v.verify(&forge(h, payload(), &key)).await,
        Err(VerifyError::UnsupportedCritical)
    );
}

#[tokio::test]
async fn key_hint_headers_are_ignored() {
    let ours = SigningKey::generate(Algorithm::EdDSA, "ed").unwrap();
    let ours_copy = SigningKey::from_pkcs8_pem(
        Algorithm::EdDSA,
        "ed",
        ours.to_pkcs8_pem().unwrap().expose().as_bytes(),
    )
    .unwrap();
    let (_c, _keys, v) = setup(ours);
    let attacker = SigningKey::generate(Algorithm::EdDSA, "ed").unwrap();
    let attacker_jwk = attacker.verifying_key().to_jwk().unwrap();

    let mut h = header("EdDSA", "ed");
    h["jku"] = json!("https://evil.example/jwks.json");
    h["x5u"] = json!("https://evil.example/cert.pem");
    h["x5c"] = json!(["MIIB"]);
    h["jwk"] = attacker_jwk.clone();
    // Signed by our key: the hints are ignored and the token verifies.
    assert!(
        v.verify(&forge(h.clone(), payload(), &ours_copy))
            .await
            .is_ok()
    );
    // Signed by the attacker's embedded key: refused.
    assert_eq!(
        v.verify(&forge(h.clone(), payload(), &attacker)).await,
        Err(VerifyError::BadSignature)
    );
    h["kid"] = json!("attacker");
    assert_eq!(
        v.verify(&forge(h, payload(), &attacker)).await,
        Err(VerifyError::UnknownKey)
    );
    // A junk jwk header is also just ignored.
    let mut h = header("EdDSA", "ed");
    h["jwk"] = json!("not a key");
    assert!(v.verify(&forge(h, payload(), &ours_copy)).await.is_ok());
}

#[tokio::test]
async fn oversized_tokens_are_refused_before_parsing() {
    let (_c, _keys, v) = setup(hs_key("hs"));
    let junk = "x".repeat(8 * 1024 + 1);
    assert_eq!(
        v.verify(&junk).await,
        Err(VerifyError::TooLarge { limit: 8192 })
    );
    assert_eq!(
        v.verify(&"x".repeat(8192)).await,
        Err(VerifyError::Malformed)
    );
    let small = Verifier::builder(Arc::new(KeySet::new(hs_key("hs"), clock())), ISS, AUD)
        .max_token_size(10)
        .build();
    assert_eq!(
        small.verify_now("a.b.c.d.e.f"),
        Err(VerifyError::TooLarge { limit: 10 })
    );
    assert_eq!(
        VerifyError::TooLarge { limit: 1 }.rfc6750_code(),
        "invalid_request"
    );
    assert_eq!(VerifyError::Expired.rfc6750_code(), "invalid_token");
}

#[tokio::test]
async fn malformed_tokens() {
    let (_c, _keys, v) = setup(hs_key("hs"));
    for t in [
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "..",
        "!!.!!.!!",
        "e30.e30.",
        "W10.e30.AAAA",
    ] {
        assert!(v.verify(t).await.is_err(), "{t:?}");
    }
    assert_eq!(v.verify("W10.e30.AAAA").await, Err(VerifyError::Malformed));
}

#[tokio::test]
async fn required_claims() {
    let key = hs_key("hs");
    let (_c, _keys, v) = setup(hs_key("hs"));
    for (claim, name) in [
        ("exp", "exp"),
        ("iss", "iss"),
        ("aud", "aud"),
        ("sub", "sub"),
    ] {
        let mut p = payload();
        p.as_object_mut().unwrap().remove(claim);
        assert_eq!(
            v.verify(&forge(header("HS256", "hs"), p, &key)).await,
            Err(VerifyError::MissingClaim(name))
        );
    }
    let mut p = payload();
    p["exp"] = json!((NOW + 300).to_string());
    assert_eq!(
        v.verify(&forge(header("HS256", "hs"), p, &key)).await,
        Err(VerifyError::InvalidClaim("exp"))
    );
    let mut p = payload();
    p["roles"] = json!("admin");
    assert_eq!(
        v.verify(&forge(header("HS256", "hs"), p, &key)).await,
        Err(VerifyError::InvalidClaim("roles"))
    );
    let mut p = payload();
    p["tid"] = json!("Bad Tenant!");
    assert_eq!(
        v.verify(&forge(header("HS256", "hs"), p, &key)).await,
        Err(VerifyError::InvalidTenant)
    );
    let mut p = payload();
    p["aud"] = json!(["other", AUD]);
    assert!(
        v.verify(&forge(header("HS256", "hs"), p, &key))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn exp_nbf_iat_around_the_leeway() {
    let (c, keys, v) = setup(hs_key("hs"));
    let mut cl = claims();
    cl.exp = NOW + 60;
    let t = keys.issue(&cl, TokenType::Access).unwrap();
    c.advance(Duration::from_secs(60 + 29));
    assert!(v.verify(&t).await.is_ok(), "inside the leeway");
    c.advance(Duration::from_secs(1));
    assert_eq!(v.verify(&t).await, Err(VerifyError::Expired));

    let (c, keys, v) = setup(hs_key("hs"));
    let mut cl = claims();
    cl.nbf = Some(NOW + 100);
    let t = keys.issue(&cl, TokenType::Access).unwrap();
    assert_eq!(v.verify(&t).await, Err(VerifyError::NotYetValid));
    c.advance(Duration::from_secs(69));
    assert_eq!(v.verify(&t).await, Err(VerifyError::NotYetValid));
    c.advance(Duration::from_secs(1));
    assert!(v.verify(&t).await.is_ok());

    let (_c, keys, v) = setup(hs_key("hs"));
    let mut cl = claims();
    cl.iat = Some(NOW + 31);
    let t = keys.issue(&cl, TokenType::Access).unwrap();
    assert_eq!(v.verify(&t).await, Err(VerifyError::IssuedInFuture));
    cl.iat = Some(NOW + 30);
    let t = keys.issue(&cl, TokenType::Access).unwrap();
    assert!(v.verify(&t).await.is_ok());
}

#[tokio::test]
async fn wrong_issuer_and_audience() {
    let (_c, keys, v) = setup(hs_key("hs"));
    let mut cl = claims();
    cl.iss = "https://evil.example".into();
    let t = keys.issue(&cl, TokenType::Access).unwrap();
    assert_eq!(v.verify(&t).await, Err(VerifyError::WrongIssuer));
    let mut cl = claims();
    cl.aud = vec!["other".into()];
    let t = keys.issue(&cl, TokenType::Access).unwrap();
    assert_eq!(v.verify(&t).await, Err(VerifyError::WrongAudience));
}

#[tokio::test]
async fn access_and_refresh_tokens_do_not_mix() {
    let (c, keys, access) = setup(hs_key("hs"));
    let refresh = Verifier::builder(keys.clone(), ISS, AUD)
        .clock(c.clone())
        .token_type(TokenType::Refresh)
        .build();
    let at = keys.issue(&claims(), TokenType::Access).unwrap();
    let rt = keys.issue(&claims(), TokenType::Refresh).unwrap();
    assert!(access.verify(&at).await.is_ok());
    assert!(refresh.verify(&rt).await.is_ok());
    assert_eq!(access.verify(&rt).await, Err(VerifyError::WrongTokenType));
    assert_eq!(refresh.verify(&at).await, Err(VerifyError::WrongTokenType));
    let key = hs_key("hs");
    for typ in [json!("JWT"), json!(null), json!(1)] {
        let h = json!({"alg": "HS256", "kid": "hs", "typ": typ});
        assert_eq!(
            access.verify(&forge(h, payload(), &key)).await,
            Err(VerifyError::WrongTokenType)
        );
    }
    let h = json!({"alg": "HS256", "kid": "hs"});
    assert_eq!(
        access.verify(&forge(h, payload(), &key)).await,
        Err(VerifyError::WrongTokenType)
    );
    let h = json!({"alg": "HS256", "kid": "hs", "typ": "application/AT+JWT"});
    assert!(access.verify(&forge(h, payload(), &key)).await.is_ok());
}

#[tokio::test]
async fn errors_never_show_the_token() {
    let (_c, keys, v) = setup(hs_key("hs"));
    let mut cl = claims();
    cl.iss = "x".into();
    let t = keys.issue(&cl, TokenType::Access).unwrap();
    let e = v.verify(&t).await.unwrap_err();
    let shown = format!("{e} {e:?}");
    for part in t.split('.') {
        assert!(!shown.contains(part));
    }
}

#[tokio::test]
async fn odd_typ_values_do_not_panic() {
    let key = hs_key("hs");
    let (_c, _keys, v) = setup(hs_key("hs"));
    for typ in [
        "ééééééééééééé",
        "applicationé/at+jwt",
        "application/",
        "at+jwtx",
        "",
    ] {
        let h = json!({"alg": "HS256", "kid": "hs", "typ": typ});
        assert_eq!(
            v.verify(&forge(h, payload(), &key)).await,
            Err(VerifyError::WrongTokenType),
            "{typ}"
        );
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_input_never_panics(s in ".{0,300}", dots in "[A-Za-z0-9_.-]{0,300}") {
        let (_c, _keys, v) = setup(hs_key("hs"));
        proptest::prop_assert!(v.verify_now(&s).is_err());
        proptest::prop_assert!(v.verify_now(&dots).is_err());
    }
}

#[path = "fuzz_harness/bearer_token.rs"]
mod fuzz_bearer_token;

/// Replays the `bearer_token` fuzz corpus (`fuzz/corpus/bearer_token/`) on
/// stable through the fuzz target's own harness: no input panics, every
/// `seed_*` is accepted by some path and every `bad_*` by none.
#[test]
fn replay_bearer_token_fuzz_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/bearer_token");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let out = std::panic::catch_unwind(|| fuzz_bearer_token::run(&bytes))
            .unwrap_or_else(|_| panic!("panicked on {}", path.display()));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let any = out.token_ok || out.payload_ok || out.header_ok;
        if name.starts_with("seed_token") {
            assert!(out.token_ok, "{name} should verify as a token: {out:?}");
        } else if name.starts_with("seed_payload") {
            assert!(out.payload_ok, "{name} should verify as claims: {out:?}");
        } else if name.starts_with("seed_header") {
            assert!(out.header_ok, "{name} should verify as a header: {out:?}");
        } else if name.starts_with("bad_") {
            assert!(!any, "{name} should be refused: {out:?}");
        }
        files += 1;
    }
    assert!(files >= 10, "corpus has {files} files");
    // The harness's fixed values are the ones the corpus was made with.
    assert_eq!(
        (
            fuzz_bearer_token::NOW,
            fuzz_bearer_token::ISS,
            fuzz_bearer_token::AUD,
            fuzz_bearer_token::KID
        ),
        (NOW, ISS, AUD, "fuzz")
    );
}

#[path = "jwt_verify/id_tokens.rs"]
mod id_tokens;
