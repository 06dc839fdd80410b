//! The reference deployment of kailash-rs, as a library its binaries and
//! end-to-end tests share: the demo's protected routes ([`demo`]) and the
//! business metrics of its workflow runs ([`business`]).
#![forbid(unsafe_code)]

pub mod business;
pub mod demo;
