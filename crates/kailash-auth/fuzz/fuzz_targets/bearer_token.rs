//! Arbitrary bytes as an `Authorization` header, a compact JWS, and the
//! header and payload of a signed token, through the real layer and
//! verifier; nothing may panic. The harness is shared with the stable
//! corpus replay in `tests/jwt_verify.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../../tests/fuzz_harness/bearer_token.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    harness::run(bytes);
});
