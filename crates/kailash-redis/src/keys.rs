//! Key layout: every Redis key (and pub/sub channel) is
//! `<prefix><space tag><StateKey>` on one server, and
//! `<prefix><space tag>{<StateKey>}` on Redis Cluster: the braces make the
//! state key the hash tag, so every key of one state key (an event log's
//! stream and its meta hash) lives in one slot, and different state keys
//! spread over all slots.

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

/// The Redis key (or channel) of `key` in `space`: prefix, space tag, key
/// (in braces, its hash tag, on a cluster).
pub(crate) fn redis_key(prefix: &str, space: Space, key: &StateKey, cluster: bool) -> String {
    let (tag, key) = (space.tag(), key.as_str());
    let mut s = String::with_capacity(prefix.len() + tag.len() + key.len() + 2);
    s.push_str(prefix);
    s.push_str(tag);
    if cluster {
        s.push('{');
        s.push_str(key);
        s.push('}');
    } else {
        s.push_str(key);
    }
    s
}

/// The state key of a Redis key read back from `SCAN`, after its prefix
/// and space tag (`rest`): as written by [`redis_key`].
pub(crate) fn state_key_text(rest: &str, cluster: bool) -> Option<&str> {
    if cluster {
        rest.strip_prefix('{')?.strip_suffix('}')
    } else {
        Some(rest)
    }
}

/// The hash slot of a Redis key (`CLUSTER KEYSLOT`): CRC16/XMODEM of its
/// hash tag — the text between the first `{` and the next `}`, when not
/// empty — or of the whole key, modulo 16384.
pub(crate) fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &bytes[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16_xmodem(tagged.unwrap_or(bytes)) % 16_384
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use kailash_core::state::Namespace;

    use super::*;

    #[test]
    fn slots_are_the_ones_redis_and_its_client_compute() {
        use redis::cluster_routing::{Route, SlotAddr};
        // CRC16/XMODEM's check value, and CLUSTER KEYSLOT answers.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        assert_eq!(slot("foo"), 12_182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        for key in [
            "foo",
            "a{b}c",
            "a{}c",
            "{",
            "}{x}",
            "p:kv:{t:acme:s:1}",
            "",
            "é{ü}",
        ] {
            assert_eq!(
                Route::new(slot(key), SlotAddr::Master),
                Route::with_key(key, SlotAddr::Master),
                "{key}"
            );
        }
    }

    #[test]
    fn on_a_cluster_the_state_key_is_the_hash_tag() {
        const NS: Namespace = Namespace::new("feed");
        // An id with braces of its own: the tag ends at its first `}`, for
        // the stream and the meta hash alike.
        for id in ["x", "a}b{c", "{}", "}"] {
            let key = StateKey::global(NS, id);
            let stream = redis_key("p:", Space::Log, &key, true);
            let meta = redis_key("p:", Space::LogMeta, &key, true);
            assert_eq!(slot(&stream), slot(&meta), "{stream} / {meta}");
            let rest = stream.strip_prefix("p:log:").unwrap();
            assert_eq!(state_key_text(rest, true), Some(key.as_str()));
        }
        let plain = redis_key("p:", Space::Kv, &StateKey::global(NS, "x"), false);
        assert_eq!(plain, "p:kv:g:feed:x");
        assert_eq!(state_key_text("g:feed:x", false), Some("g:feed:x"));
        // Different state keys spread.
        let slots: std::collections::HashSet<u16> = (0..64)
            .map(|i| {
                slot(&redis_key(
                    "p:",
                    Space::Kv,
                    &StateKey::global(NS, &i.to_string()),
                    true,
                ))
            })
            .collect();
        assert!(slots.len() > 50, "{}", slots.len());
    }
}
