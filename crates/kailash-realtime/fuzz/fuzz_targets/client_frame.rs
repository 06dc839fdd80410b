//! Arbitrary bytes as a WebSocket client frame and as a bus/history event
//! body; nothing may panic and every refusal is a documented error code.
//! The harness is shared with the stable corpus replay in
//! `tests/realtime.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../../tests/fuzz_harness/client_frame.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    harness::run(bytes);
});
