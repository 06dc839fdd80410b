//! The state conformance suite against the in-memory backend.

use std::sync::Arc;

use kailash_core::clock::ManualClock;
use kailash_core::state::SharedState;
use kailash_core::state::conformance::Harness;

async fn memory() -> Option<Harness> {
    let clock = Arc::new(ManualClock::starting_now());
    Some(Harness::new(SharedState::memory(clock.clone()), clock))
}

kailash_core::state_conformance_tests!(memory);
