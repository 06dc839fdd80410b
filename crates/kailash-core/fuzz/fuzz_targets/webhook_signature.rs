//! `X-Kailash-Signature` headers and bodies as a webhook receiver gets
//! them: see `tests/fuzz_harness/webhook_signature.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../../tests/fuzz_harness/webhook_signature.rs");

fuzz_target!(|bytes: &[u8]| {
    webhook_signature_harness(bytes);
});
