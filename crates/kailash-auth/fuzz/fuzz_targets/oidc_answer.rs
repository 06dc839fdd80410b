//! Arbitrary bytes as an OpenID provider's answers — a discovery document,
//! an ID token, or the claims of a validly signed ID token — checked and
//! mapped; nothing may panic. The harness is shared with the stable corpus
//! replay in `tests/jwt_keys.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../../tests/fuzz_harness/oidc_answer.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    harness::run(bytes);
});
