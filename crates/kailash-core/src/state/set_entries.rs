//! The members of one in-memory bounded set.
//!
//! Small sets (a user's sessions: a handful) are a `Vec` scanned linearly,
//! which beats any index at that size. Past [`LARGE`] members a set becomes
//! a map plus an expiry-ordered index, so inserting, moving, removing,
//! evicting and counting stay logarithmic for a set of millions (every
//! live session of a deployment); it turns back into a `Vec` once it has
//! shrunk to [`SMALL_AGAIN`] members.
//!
//! A member is live while its expiry (milliseconds) is after `now`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Members above which a set switches to the indexed form.
pub(super) const LARGE: usize = 64;
/// Members at or below which an indexed set switches back (well below
/// [`LARGE`], so a set hovering around the boundary does not flip back and
/// forth on every call).
pub(super) const SMALL_AGAIN: usize = 16;

/// One set's members and their expiries.
#[derive(Debug)]
pub(super) enum SetEntries {
    /// Up to about [`LARGE`] members, in no particular order.
    Small(Vec<(String, i64)>),
    /// Many members, indexed by name and by expiry.
    Large(Box<Indexed>),
}

/// The indexed form: `by_expiry` holds exactly the pairs of `by_member`,
/// ordered by expiry, then member (the eviction order).
#[derive(Debug, Default)]
pub(super) struct Indexed {
    by_member: HashMap<Arc<str>, i64>,
    by_expiry: BTreeSet<(i64, Arc<str>)>,
}

impl Indexed {
    fn insert(&mut self, member: Arc<str>, at: i64) {
        if let Some(old) = self.by_member.insert(member.clone(), at) {
            self.by_expiry.remove(&(old, member.clone()));
        }
        self.by_expiry.insert((at, member));
    }

    fn remove(&mut self, member: &str) -> Option<i64> {
        let (name, at) = self.by_member.remove_entry(member)?;
        self.by_expiry.remove(&(at, name));
        Some(at)
    }

    /// Removes and returns the member expiring soonest (ties: by name).
    fn pop_soonest(&mut self) -> Option<(i64, Arc<str>)> {
        let (at, name) = self.by_expiry.pop_first()?;
        self.by_member.remove(&name);
        Some((at, name))
    }

    fn soonest(&self) -> Option<i64> {
        self.by_expiry.first().map(|(at, _)| *at)
    }
}

impl Default for SetEntries {
    fn default() -> Self {
        Self::Small(Vec::new())
    }
}

impl SetEntries {
    /// Drops the members expired at `now`.
    pub(super) fn drop_expired(&mut self, now: i64) {
        match self {
            Self::Small(v) => v.retain(|(_, at)| *at > now),
            Self::Large(ix) => {
                while ix.soonest().is_some_and(|at| at <= now) {
                    ix.pop_soonest();
                }
            }
        }
        self.shrink();
    }

    /// How many members are held (call [`drop_expired`](Self::drop_expired)
    /// first to count only live ones).
    pub(super) fn len(&self) -> usize {
        match self {
            Self::Small(v) => v.len(),
            Self::Large(ix) => ix.by_member.len(),
        }
    }

    /// Whether no member is held.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `member` is held and live at `now`.
    pub(super) fn contains_live(&self, member: &str, now: i64) -> bool {
        match self {
            Self::Small(v) => v.iter().any(|(m, at)| m == member && *at > now),
            Self::Large(ix) => ix.by_member.get(member).is_some_and(|at| *at > now),
        }
    }

    /// Moves an existing member's expiry to `at`; `false` when absent.
    pub(super) fn move_existing(&mut self, member: &str, at: i64) -> bool {
        match self {
            Self::Small(v) => match v.iter_mut().find(|(m, _)| m == member) {
                Some(existing) => {
                    existing.1 = at;
                    true
                }
                None => false,
            },
            Self::Large(ix) => match ix.by_member.get_key_value(member) {
                Some((name, _)) => {
                    let name = name.clone();
                    ix.insert(name, at);
                    true
                }
                None => false,
            },
        }
    }

    /// Removes the `n` members expiring soonest (ties: by name), returning them.
    pub(super) fn evict_soonest(&mut self, n: usize) -> Vec<String> {
        let evicted = match self {
            Self::Small(v) => {
                v.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
                v.drain(..n.min(v.len())).map(|(m, _)| m).collect()
            }
            Self::Large(ix) => (0..n)
                .map_while(|_| ix.pop_soonest())
                .map(|(_, name)| name.as_ref().to_owned())
                .collect(),
        };
        self.shrink();
        evicted
    }

    /// Adds a member known to be absent.
    pub(super) fn push_new(&mut self, member: &str, at: i64) {
        match self {
            Self::Small(v) => {
                v.push((member.to_owned(), at));
                if v.len() > LARGE {
                    let mut ix = Indexed::default();
                    for (m, at) in v.drain(..) {
                        ix.insert(Arc::from(m), at);
                    }
                    *self = Self::Large(Box::new(ix));
                }
            }
            Self::Large(ix) => ix.insert(Arc::from(member), at),
        }
    }

    /// Removes `member`; whether it was held and live at `now`.
    pub(super) fn remove(&mut self, member: &str, now: i64) -> bool {
        let was_live = match self {
            Self::Small(v) => match v.iter().position(|(m, _)| m == member) {
                Some(i) => v.swap_remove(i).1 > now,
                None => false,
            },
            Self::Large(ix) => ix.remove(member).is_some_and(|at| at > now),
        };
        self.shrink();
        was_live
    }

    /// The members live at `now`, soonest-expiring first (ties: by name).
    pub(super) fn live_sorted(&self, now: i64) -> Vec<(&str, i64)> {
        match self {
            Self::Small(v) => {
                let mut live: Vec<_> = v
                    .iter()
                    .filter(|(_, at)| *at > now)
                    .map(|(m, at)| (m.as_str(), *at))
                    .collect();
                live.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(b.0)));
                live
            }
            Self::Large(ix) => ix
                .by_expiry
                .iter()
                .filter(|(at, _)| *at > now)
                .map(|(at, m)| (m.as_ref(), *at))
                .collect(),
        }
    }

    /// Whether every member is expired at `now` (the set can go).
    pub(super) fn all_expired(&self, now: i64) -> bool {
        match self {
            Self::Small(v) => v.iter().all(|(_, at)| *at <= now),
            Self::Large(ix) => ix.by_expiry.last().is_none_or(|(at, _)| *at <= now),
        }
    }

    /// Back to the `Vec` form once an indexed set is small again.
    fn shrink(&mut self) {
        if let Self::Large(ix) = self
            && ix.by_member.len() <= SMALL_AGAIN
        {
            let v = std::mem::take(&mut ix.by_member)
                .into_iter()
                .map(|(m, at)| (m.as_ref().to_owned(), at))
                .collect();
            *self = Self::Small(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[(&str, i64)]) -> Vec<String> {
        v.iter().map(|(m, _)| (*m).to_owned()).collect()
    }

    /// The indexed form answers exactly as the `Vec` form, across both
    /// switches, for a mixed sequence of operations.
    #[test]
    fn both_forms_agree() {
        let mut reference: Vec<(String, i64)> = Vec::new();
        let mut set = SetEntries::default();
        let mut now = 0;
        let mut seen_large = false;
        for step in 0..5_000i64 {
            let member = format!("m{}", (step * 7919) % 211);
            let at = now + 1 + (step * 104_729) % 1000;
            match step % 7 {
                0..=3 => {
                    reference.retain(|(_, a)| *a > now);
                    set.drop_expired(now);
                    match reference.iter_mut().find(|(m, _)| *m == member) {
                        Some(e) => {
                            e.1 = at;
                            assert!(set.move_existing(&member, at));
                        }
                        None => {
                            assert!(!set.move_existing(&member, at));
                            reference.push((member.clone(), at));
                            set.push_new(&member, at);
                        }
                    }
                }
                4 => {
                    let was = reference.iter().any(|(m, a)| *m == member && *a > now);
                    reference.retain(|(m, _)| *m != member);
                    assert_eq!(set.remove(&member, now), was);
                }
                5 => {
                    reference.retain(|(_, a)| *a > now);
                    set.drop_expired(now);
                    reference.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
                    let n = (step % 3) as usize;
                    let expected: Vec<String> = reference
                        .drain(..n.min(reference.len()))
                        .map(|(m, _)| m)
                        .collect();
                    assert_eq!(set.evict_soonest(n), expected);
                }
                _ => now += 3,
            }
            seen_large |= matches!(set, SetEntries::Large(_));
            let mut live: Vec<_> = reference
                .iter()
                .filter(|(_, a)| *a > now)
                .map(|(m, a)| (m.as_str(), *a))
                .collect();
            live.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(b.0)));
            assert_eq!(names(&set.live_sorted(now)), names(&live), "step {step}");
            assert_eq!(
                set.contains_live(&member, now),
                live.iter().any(|(m, _)| *m == member)
            );
            assert_eq!(set.all_expired(now), live.is_empty());
        }
        assert!(seen_large, "the sequence reached the indexed form");
        assert!(
            matches!(set, SetEntries::Small(_)) || set.len() > SMALL_AGAIN,
            "a small indexed set went back"
        );
    }

    #[test]
    fn switches_at_the_documented_sizes() {
        let mut set = SetEntries::default();
        for i in 0..=LARGE {
            set.push_new(&format!("m{i:03}"), 1000 + i as i64);
        }
        assert!(matches!(set, SetEntries::Large(_)));
        assert_eq!(set.len(), LARGE + 1);
        let gone = set.evict_soonest(LARGE + 1 - SMALL_AGAIN - 1);
        assert_eq!(gone.first().map(String::as_str), Some("m000"));
        assert!(
            matches!(set, SetEntries::Large(_)),
            "still above SMALL_AGAIN"
        );
        assert!(set.remove(&format!("m{LARGE:03}"), 0));
        assert!(matches!(set, SetEntries::Small(_)));
        assert_eq!(set.len(), SMALL_AGAIN);
        set.drop_expired(i64::MAX);
        assert!(set.is_empty());
    }
}
