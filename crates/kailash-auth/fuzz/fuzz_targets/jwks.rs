//! Arbitrary bytes as a JWKS document, loaded, exported and used to verify;
//! nothing may panic. The harness is shared with the stable corpus replay
//! in `tests/jwt_keys.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../../tests/fuzz_harness/jwks.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    harness::run(bytes);
});
