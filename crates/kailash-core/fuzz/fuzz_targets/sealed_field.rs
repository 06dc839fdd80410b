//! Sealed field values from the state, parsed and opened: see
//! `tests/fuzz_harness/sealed_field.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../../tests/fuzz_harness/sealed_field.rs");

fuzz_target!(|bytes: &[u8]| {
    sealed_field_harness(bytes);
});
