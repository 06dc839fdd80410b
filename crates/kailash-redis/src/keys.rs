//! Key layout: every Redis key (and pub/sub channel) is
//! `<prefix><space tag><StateKey>`.

use kailash_core::state::StateKey;

/// The key spaces of the six primitives, so one [`StateKey`] used as a value
/// and as a counter never collide (as in the in-memory backend).
#[derive(Clone, Copy)]
pub(crate) enum Space {
    Kv,
    Counter,
    Rate,
    Set,
    Topic,
    /// An event log's stream.
    Log,
    /// An event log's meta hash (birth, trimmed and last ids, deadline).
    LogMeta,
}

impl Space {
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Space::Kv => "kv:",
            Space::Counter => "ctr:",
            Space::Rate => "rl:",
            Space::Set => "set:",
            Space::Topic => "ps:",
            Space::Log => "log:",
            Space::LogMeta => "logm:",
        }
    }
}

/// The Redis key (or channel) of `key` in `space`: prefix, space tag, key.
pub(crate) fn redis_key(prefix: &str, space: Space, key: &StateKey) -> String {
    let (tag, key) = (space.tag(), key.as_str());
    let mut s = String::with_capacity(prefix.len() + tag.len() + key.len());
    s.push_str(prefix);
    s.push_str(tag);
    s.push_str(key);
    s
}
