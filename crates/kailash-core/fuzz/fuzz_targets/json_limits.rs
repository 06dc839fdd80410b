//! The JSON shape limits on arbitrary bytes, against serde_json: see
//! `tests/fuzz_harness/json_limits.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../../tests/fuzz_harness/json_limits.rs");

fuzz_target!(|bytes: &[u8]| {
    json_limits_harness(bytes);
});
