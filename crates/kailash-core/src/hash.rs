//! A fast hasher for short keys that come from configuration, not clients.
//!
//! FNV-1a hashes a role name or a route template in a few nanoseconds,
//! where the standard library's keyed SipHash costs tens. Use it only for
//! maps whose *keys* are chosen by the operator or the code (route tables,
//! role and permission sets): a client may look keys up, but cannot insert
//! any, so hash flooding is not possible. Maps keyed by client input keep
//! `RandomState`.
//!
//! ```
//! use kailash_core::hash::FnvHashMap;
//!
//! let mut roles: FnvHashMap<&str, u32> = FnvHashMap::default();
//! roles.insert("admin", 1);
//! assert_eq!(roles.get("admin"), Some(&1));
//! ```

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a (64-bit).
#[derive(Debug, Default, Clone, Copy)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Builds [`Fnv`] hashers.
pub type FnvBuildHasher = BuildHasherDefault<Fnv>;

/// A `HashMap` with [`Fnv`].
pub type FnvHashMap<K, V> = HashMap<K, V, FnvBuildHasher>;

/// A `HashSet` with [`Fnv`].
pub type FnvHashSet<T> = HashSet<T, FnvBuildHasher>;
