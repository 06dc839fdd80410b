//! The `oidc_answer` fuzz harness, shared word for word by the fuzz target
//! (`fuzz/fuzz_targets/oidc_answer.rs`) and the stable corpus replay in
//! `tests/jwt_keys.rs`.
//!
//! The first byte picks what the rest is, the three things an OpenID
//! provider (or someone playing one) sends this service:
//! - `d`: a discovery document, checked against a fixed configuration;
//! - `t`: an ID token, verified against a fixed key set and sign-in;
//! - `c`: the claims of an ID token the fixture key signs, verified, then
//!   mapped to an identity (so every claim check and the mapping see
//!   arbitrary claims under a valid signature).
//!
//! Nothing may panic; what is accepted must keep the promises: a verified
//! token names this client and the sign-in's nonce; an identity's subject
//! is the provider's, its username never empty.

use std::sync::{Arc, OnceLock};

use kailash_auth::jwt::{Algorithm, KeySet, SigningKey};
use kailash_auth::oidc::{Discovery, IdTokenExpect, identity_from_claims, verify_id_token};
use kailash_auth::spec::OidcProviderSpec;
use kailash_core::clock::{Clock, ManualClock};

/// The fixed clock every check runs at.
pub(crate) const NOW: i64 = 1_700_000_000;
/// The sign-in's nonce.
pub(crate) const NONCE: &str = "n-0123456789";
/// The fixture's issuer.
pub(crate) const ISSUER: &str = "https://id.example.com";

struct Fixture {
    spec: OidcProviderSpec,
    keys: KeySet,
    key: SigningKey,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(
            jiff::Timestamp::from_second(NOW).expect("fixed time"),
        ));
        let spec: OidcProviderSpec = serde_json::from_value(serde_json::json!({
            "name": "fz",
            "issuer": ISSUER,
            "client_id": "kailash",
            "redirect_uri": "https://api.example.com/auth/oidc/fz/callback",
            "group_roles": {"g": ["r"]},
            "tenant_domains": {"acme.example": "acme"},
        }))
        .expect("spec");
        let key = SigningKey::generate(Algorithm::ES256, "fz").expect("key generation");
        let keys = KeySet::verify_only(vec![key.verifying_key()], clock).expect("keys");
        Fixture { spec, keys, key }
    })
}

fn expect(f: &Fixture) -> IdTokenExpect<'_> {
    IdTokenExpect {
        spec: &f.spec,
        issuer: ISSUER,
        algorithms: &[],
        nonce: NONCE,
        started: NOW - 10,
        access_token: None,
        now: NOW,
    }
}

/// Signs `payload` (any bytes) as an ES256 JWS with the fixture key.
fn sign(f: &Fixture, payload: &[u8]) -> String {
    let b64 = |b: &[u8]| data_encoding::BASE64URL_NOPAD.encode(b);
    let message = format!("{}.{}", b64(br#"{"alg":"ES256","kid":"fz"}"#), b64(payload));
    let pem = f.key.to_pkcs8_pem().expect("pem");
    let ek = jsonwebtoken::EncodingKey::from_ec_pem(pem.expose().as_bytes()).expect("key");
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &ek, jsonwebtoken::Algorithm::ES256)
        .expect("sign");
    format!("{message}.{sig}")
}

/// Whether the input was accepted (`None` for an input of no kind).
pub(crate) fn run(bytes: &[u8]) -> Option<bool> {
    let f = fixture();
    let (&kind, rest) = bytes.split_first()?;
    match kind {
        b'd' => {
            let doc: serde_json::Value = serde_json::from_slice(rest).ok()?;
            let found = Discovery::from_json(&doc, &f.spec);
            if let Ok(d) = &found {
                assert_eq!(d.issuer, ISSUER);
                for url in [&d.authorization_endpoint, &d.token_endpoint, &d.jwks_uri]
                    .into_iter()
                    .chain(d.userinfo_endpoint.as_ref())
                {
                    let loopback = url.host_str().is_some_and(|h| {
                        h == "localhost"
                            || h.trim_matches(['[', ']'])
                                .parse::<std::net::IpAddr>()
                                .is_ok_and(|ip| ip.is_loopback())
                    });
                    assert!(
                        url.scheme() == "https" || (url.scheme() == "http" && loopback),
                        "a plain-text endpoint off loopback was accepted"
                    );
                }
            }
            Some(found.is_ok())
        }
        b't' => {
            let token = std::str::from_utf8(rest).ok()?;
            let verified = verify_id_token(token, &f.keys, &expect(f));
            // Nothing this input can hold is signed by the fixture key.
            if let Ok(claims) = &verified {
                assert_eq!(claims.get("nonce").and_then(|v| v.as_str()), Some(NONCE));
            }
            Some(verified.is_ok())
        }
        b'c' => {
            let token = sign(f, rest);
            let Ok(claims) = verify_id_token(&token, &f.keys, &expect(f)) else {
                return Some(false);
            };
            assert_eq!(claims.get("nonce").and_then(|v| v.as_str()), Some(NONCE));
            assert_eq!(claims.get("iss").and_then(|v| v.as_str()), Some(ISSUER));
            match identity_from_claims(&f.spec, &claims) {
                Ok(id) => {
                    assert!(id.subject.starts_with("ext:fz:"));
                    assert!(!id.username.is_empty());
                    assert_eq!(id.tenant.as_ref().map(|t| t.as_ref()), Some("acme"));
                    Some(true)
                }
                Err(_) => Some(false),
            }
        }
        _ => None,
    }
}
