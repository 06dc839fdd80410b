//! Arbitrary bytes as a create-workflow request body, through the real
//! workflow store on the memory backend; nothing may panic and nothing may
//! be left charged. The harness is shared with the stable corpus replay in
//! `tests/fuzz_corpus.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../../tests/fuzz_harness/workflow_definition.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    harness::run(bytes);
});
