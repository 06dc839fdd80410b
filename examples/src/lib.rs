//! The reference deployment of kailash-rs, as a library its binaries and
//! end-to-end tests share: the demo's protected routes ([`demo`]).
#![forbid(unsafe_code)]

pub mod demo;
