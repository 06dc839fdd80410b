//! The `jwks` fuzz harness, shared word for word by the fuzz target
//! (`fuzz/fuzz_targets/jwks.rs`) and the stable corpus replay in
//! `tests/jwt_keys.rs`.
//!
//! The input is read as a JWKS document the way a [`FileJwksSource`] or a
//! fetched JWKS is (JSON, then [`KeySet::from_jwks`]). A set that loads must
//! export a JWKS that loads again with the same keys, and must refuse tokens
//! signed by private keys the input cannot know (one per algorithm, all with
//! `kid` [`KID`], so a fuzzed key with that `kid` is tried against them).
//!
//! Nothing may panic; every refusal must be a typed error.
//!
//! [`FileJwksSource`]: kailash_auth::jwt::FileJwksSource

use std::sync::{Arc, OnceLock};

use kailash_auth::jwt::{Algorithm, Claims, KeySet, SigningKey, TokenType, Verifier};
use kailash_core::clock::{Clock, ManualClock};

/// The fixed clock every check runs at.
pub(crate) const NOW: i64 = 1_700_000_000;
/// The `kid` of the tokens the fuzzed set is asked to verify.
pub(crate) const KID: &str = "fz";

struct Fixture {
    clock: Arc<dyn Clock>,
    /// One token per asymmetric algorithm, signed by a key made at start-up.
    tokens: Vec<String>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(
            jiff::Timestamp::from_second(NOW).expect("fixed time"),
        ));
        let claims = Claims::new("iss", "alice", "aud", NOW, NOW + 300);
        let tokens = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
            .into_iter()
            .map(|alg| {
                let key = SigningKey::generate(alg, KID).expect("key generation");
                KeySet::new(key, clock.clone())
                    .issue(&claims, TokenType::Access)
                    .expect("issue")
            })
            .collect();
        Fixture { clock, tokens }
    })
}

/// The number of keys the input loaded as, or `None` when it was refused.
pub(crate) fn run(bytes: &[u8]) -> Option<usize> {
    let f = fixture();
    let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let set = match KeySet::from_jwks(&doc, f.clock.clone()) {
        Ok(set) => set,
        Err(e) => {
            // Errors name at most the key's kid, never key material.
            let _ = e.to_string();
            return None;
        }
    };
    let n = set.len();
    assert!(set.signer_kid().is_none(), "a JWKS gave a signing key");

    // What the set exports, a set built from the export accepts again.
    let export = set.jwks();
    let again = KeySet::from_jwks(&export, f.clock.clone())
        .unwrap_or_else(|e| panic!("exported JWKS refused: {e}"));
    assert_eq!(again.len(), n, "export changed the key count");

    // Keys the input cannot hold the private half of verify nothing.
    let verifier = Verifier::builder(Arc::new(set), "iss", "aud")
        .clock(f.clock.clone())
        .build();
    for token in &f.tokens {
        assert!(
            verifier.verify_now(token).is_err(),
            "a fuzzed JWKS verified a token it has no key for"
        );
    }
    Some(n)
}
