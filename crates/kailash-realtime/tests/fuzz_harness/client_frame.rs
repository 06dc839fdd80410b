//! The `client_frame` fuzz harness, shared word for word by the fuzz target
//! (`fuzz/fuzz_targets/client_frame.rs`) and the stable corpus replay in
//! `tests/realtime.rs`.
//!
//! The input is read as a client text frame ([`parse_client_frame`]) and
//! as a serialised event body ([`Event::from_body`], what the bus and the
//! history carry). Invariants: nothing panics; an accepted frame is within
//! the size bound and holds only valid values (a channel name that passes
//! [`valid_channel`], a non-empty token); a refusal is one code of the
//! closed set whose error frame is well-formed JSON; an accepted event body
//! serialises back to a body that reads as the same event.

use kailash_realtime::event::{Event, valid_channel};
use kailash_realtime::protocol::{self, ClientFrame, MAX_CLIENT_FRAME, parse_client_frame};

/// Runs one input; whether it was accepted as a client frame.
pub(crate) fn run(bytes: &[u8]) -> bool {
    if let Ok(event) = Event::from_body(bytes) {
        let body = event.to_body().expect("an accepted event serialises");
        assert_eq!(Event::from_body(&body).expect("and reads back"), event);
    }
    match parse_client_frame(bytes) {
        Ok(frame) => {
            assert!(bytes.len() <= MAX_CLIENT_FRAME);
            match frame {
                ClientFrame::Subscribe { channel } | ClientFrame::Unsubscribe { channel } => {
                    assert!(valid_channel(&channel));
                }
                ClientFrame::Refresh { token } => assert!(!token.is_empty()),
                ClientFrame::Resume { since } => {
                    assert_eq!(since.to_string().parse().ok(), Some(since));
                }
            }
            true
        }
        Err(code) => {
            let frame = protocol::error(code);
            let v: serde_json::Value = serde_json::from_str(&frame).expect("error frames are JSON");
            assert_eq!(v["type"], "error");
            assert_eq!(v["code"], code.as_str());
            false
        }
    }
}
