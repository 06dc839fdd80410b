//! Capped per-key event history: [`EventLog`], its ids and replies.
//!
//! A log is an append-only sequence of payloads under one [`StateKey`],
//! trimmed to its `cap` newest entries and forgotten `ttl` after the last
//! append. A realtime client that reconnects with the id of the last event
//! it saw reads everything after it ([`EventLog::read_after`]) and learns
//! whether the history still covered the gap ([`LogRead::complete`]); when it
//! did not, the client is told it missed events (`recovered: false`).
//!
//! Ids ([`LogId`]) are `ms-seq` pairs, the form Redis Streams use: the
//! millisecond comes from the backend's [`Clock`](crate::clock::Clock), the
//! sequence tells apart entries of the same millisecond, and every id is
//! greater than the one before it even when the clock steps back.
//!
//! Every input is bounded: a cap of at most [`MAX_LOG_CAP`] entries, payloads
//! of at most [`MAX_LOG_PAYLOAD`] bytes, reads of at most [`MAX_LOG_READ`]
//! entries, id text of at most [`MAX_LOG_ID_LEN`] characters. An expired
//! log is gone; the next append starts a new one, and a reader holding an id
//! of the old one is told its history is incomplete (its id is older than
//! the new log's first). Only a clock that stepped back by more than the
//! log's time to live could give a new log ids at or below an old reader's
//! id. The memory backend evicting a log from a full table reads the same
//! way as expiry.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use bytes::Bytes;
//! use kailash_core::clock::ManualClock;
//! use kailash_core::state::{EventLog, LogId, MemoryState, Namespace, StateKey};
//! use kailash_core::TenantId;
//!
//! const EVENTS: Namespace = Namespace::new("events");
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let state = MemoryState::new(Arc::new(ManualClock::starting_now()));
//! let log = StateKey::tenant(&TenantId::new("acme").unwrap(), EVENTS, "orders");
//! let ttl = Duration::from_secs(3600);
//!
//! let first = state.append(&log, Bytes::from_static(b"created"), 2, ttl).await?;
//! let second = state.append(&log, Bytes::from_static(b"paid"), 2, ttl).await?;
//! assert!(second > first);
//!
//! // A client that saw `first` resumes with everything after it.
//! let read = state.read_after(&log, first, 100).await?;
//! assert!(read.complete);
//! assert_eq!(read.entries.len(), 1);
//! assert_eq!(read.entries[0].payload, Bytes::from_static(b"paid"));
//!
//! // The cap is 2: a third append trims `first`, and a client that had seen
//! // nothing cannot be given the whole history any more.
//! state.append(&log, Bytes::from_static(b"shipped"), 2, ttl).await?;
//! assert!(!state.read_after(&log, LogId::ZERO, 100).await?.complete);
//! assert!(state.read_after(&log, first, 100).await?.complete);
//!
//! // Ids travel as text (an SSE `id:` line, a `Last-Event-ID` header).
//! let parsed: LogId = second.to_string().parse()?;
//! assert_eq!(parsed, second);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{StateError, StateKey};

/// The most entries a log may be capped at.
pub const MAX_LOG_CAP: u32 = 100_000;
/// The most entries one [`EventLog::read_after`] returns.
pub const MAX_LOG_READ: u32 = 10_000;
/// The largest payload an [`EventLog::append`] accepts (64 KiB: realtime
/// events are small messages); a backend may be configured lower.
pub const MAX_LOG_PAYLOAD: usize = 64 * 1024;
/// The longest text form of a [`LogId`]: two 20-digit numbers and a dash.
pub const MAX_LOG_ID_LEN: usize = 41;

/// A position in an event log: strictly increasing per log.
///
/// Ordered by millisecond, then sequence. The text form is `ms-seq` (as in
/// Redis Streams), both parts plain decimal without sign or leading zeros.
///
/// ```
/// use kailash_core::state::LogId;
///
/// let id: LogId = "1700000000123-4".parse().unwrap();
/// assert_eq!(id, LogId::new(1_700_000_000_123, 4));
/// assert_eq!(id.to_string(), "1700000000123-4");
/// assert!(LogId::new(5, 0) > LogId::new(4, 99));
/// assert!("17-".parse::<LogId>().is_err());
/// assert!("+17-1".parse::<LogId>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogId {
    /// Milliseconds since the Unix epoch, by the backend's clock (or the
    /// previous id's millisecond when the clock stepped back).
    pub ms: u64,
    /// Tells apart entries of the same millisecond, from 0.
    pub seq: u64,
}

impl LogId {
    /// `0-0`: before every entry. Reading after it reads the whole log.
    pub const ZERO: LogId = LogId { ms: 0, seq: 0 };

    /// The id `ms-seq`.
    pub const fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }

    /// The id an entry appended at `now_ms` after `self` gets: `now_ms-0`
    /// when the clock moved past `self`, else the next sequence of `self`'s
    /// millisecond (so ids increase even when the clock steps back).
    /// `None` only when no greater id exists.
    pub fn next_at(self, now_ms: u64) -> Option<LogId> {
        if now_ms > self.ms {
            Some(LogId::new(now_ms, 0))
        } else if let Some(seq) = self.seq.checked_add(1) {
            Some(LogId::new(self.ms, seq))
        } else {
            self.ms.checked_add(1).map(|ms| LogId::new(ms, 0))
        }
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Why a text is not a [`LogId`]. The message never echoes the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogIdError {
    /// Longer than [`MAX_LOG_ID_LEN`].
    #[error("event id is longer than {MAX_LOG_ID_LEN} characters")]
    TooLong,
    /// Not two decimal numbers joined by one `-`.
    #[error("event id must be two decimal numbers joined by '-' (ms-seq)")]
    Malformed,
    /// A part does not fit 64 bits.
    #[error("event id part is out of range")]
    OutOfRange,
}

impl From<LogIdError> for StateError {
    fn from(err: LogIdError) -> Self {
        StateError::InvalidArgument(match err {
            LogIdError::TooLong => "event id too long",
            LogIdError::Malformed => "event id malformed",
            LogIdError::OutOfRange => "event id out of range",
        })
    }
}

fn parse_part(part: &str) -> Result<u64, LogIdError> {
    let bytes = part.as_bytes();
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(LogIdError::Malformed);
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return Err(LogIdError::Malformed);
    }
    part.parse().map_err(|_| LogIdError::OutOfRange)
}

impl FromStr for LogId {
    type Err = LogIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_LOG_ID_LEN {
            return Err(LogIdError::TooLong);
        }
        let (ms, seq) = s.split_once('-').ok_or(LogIdError::Malformed)?;
        Ok(LogId::new(parse_part(ms)?, parse_part(seq)?))
    }
}

/// One entry of an event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Its position.
    pub id: LogId,
    /// What was appended.
    pub payload: Bytes,
}

/// The answer of [`EventLog::read_after`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRead {
    /// Entries with ids greater than `since`, oldest first, at most `limit`.
    pub entries: Vec<LogEntry>,
    /// Whether the log still holds every entry after `since` (the first
    /// page of them is `entries`).
    ///
    /// `false` when an entry after `since` was trimmed by the cap, when the
    /// log expired or never held `since` (`since` newer than the last id, or
    /// older than the log's first entry — the log was recreated since), so
    /// the caller must tell its client it missed events (`recovered: false`).
    /// [`LogId::ZERO`] ("I have seen nothing") is complete when the log
    /// has never been trimmed, including when it is empty or missing.
    pub complete: bool,
}

/// Capped per-key event history with expiry.
///
/// Every operation is atomic on its log. Entries are kept until the cap
/// trims them or the whole log expires; there is no per-entry expiry.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends `payload` with a fresh id greater than every id the log
    /// holds, trims the log to its `cap` newest entries, and (re)sets its
    /// time to live to `ttl`. Returns the new id.
    ///
    /// Refuses (changing nothing) a `cap` of 0 or above [`MAX_LOG_CAP`], a
    /// zero `ttl`, and a payload above the backend's limit (at most
    /// [`MAX_LOG_PAYLOAD`]).
    async fn append(
        &self,
        log: &StateKey,
        payload: Bytes,
        cap: u32,
        ttl: Duration,
    ) -> Result<LogId, StateError>;

    /// Entries with ids greater than `since`, oldest first, at most `limit`
    /// of them (more may exist: page on with the last id returned), and
    /// whether the history after `since` is complete (see [`LogRead`]).
    ///
    /// Refuses a `limit` of 0 or above [`MAX_LOG_READ`].
    async fn read_after(
        &self,
        log: &StateKey,
        since: LogId,
        limit: u32,
    ) -> Result<LogRead, StateError>;

    /// The newest id, if the log holds any entry.
    async fn last_id(&self, log: &StateKey) -> Result<Option<LogId>, StateError>;
}

/// The completeness rule every backend applies, so they agree exactly.
///
/// `log` is `None` for a missing (or expired) log, else its first-ever id
/// (`birth`), the highest id the cap trimmed (`trimmed`), and its last id.
pub fn read_complete(since: LogId, log: Option<(LogId, Option<LogId>, LogId)>) -> bool {
    match log {
        None => since == LogId::ZERO,
        Some((birth, trimmed, last)) => {
            if since == LogId::ZERO {
                trimmed.is_none()
            } else {
                since <= last && since >= birth && trimmed.is_none_or(|t| since >= t)
            }
        }
    }
}

/// Checks the arguments of [`EventLog::append`] against `max_payload` and
/// returns the ttl in whole milliseconds.
pub fn check_append(
    payload_len: usize,
    cap: u32,
    ttl: Duration,
    max_payload: usize,
) -> Result<i64, StateError> {
    if cap == 0 || cap > MAX_LOG_CAP {
        return Err(StateError::InvalidArgument(
            "log cap must be between 1 and 100000",
        ));
    }
    if payload_len > max_payload.min(MAX_LOG_PAYLOAD) {
        return Err(StateError::InvalidArgument("log payload too large"));
    }
    super::validate::ttl_millis(ttl)
}

/// Checks the `limit` of [`EventLog::read_after`].
pub fn check_read(limit: u32) -> Result<(), StateError> {
    if limit == 0 || limit > MAX_LOG_READ {
        return Err(StateError::InvalidArgument(
            "log read limit must be between 1 and 10000",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_order() {
        for id in [
            LogId::ZERO,
            LogId::new(1, 0),
            LogId::new(1_700_000_000_123, 42),
            LogId::new(u64::MAX, u64::MAX),
        ] {
            assert_eq!(id.to_string().parse::<LogId>(), Ok(id));
        }
        assert_eq!(
            LogId::new(u64::MAX, u64::MAX).to_string().len(),
            MAX_LOG_ID_LEN
        );
        assert!(LogId::new(2, 0) > LogId::new(1, u64::MAX));
        assert!(LogId::new(2, 1) > LogId::new(2, 0));
    }

    #[test]
    fn hostile_ids_are_refused_with_a_typed_error() {
        use LogIdError::*;
        let cases: &[(&str, LogIdError)] = &[
            ("", Malformed),
            ("-", Malformed),
            ("1", Malformed),
            ("1-", Malformed),
            ("-1", Malformed),
            ("1--1", Malformed),
            ("1-1-1", Malformed),
            ("+1-1", Malformed),
            ("1-+1", Malformed),
            ("-1-1", Malformed),
            (" 1-1", Malformed),
            ("1-1 ", Malformed),
            ("1-1\n", Malformed),
            ("01-1", Malformed),
            ("1-00", Malformed),
            ("1.5-1", Malformed),
            ("0x1-1", Malformed),
            ("١-١", Malformed),
            ("1-*", Malformed),
            ("*", Malformed),
            ("18446744073709551616-0", OutOfRange),
            ("0-18446744073709551616", OutOfRange),
            ("99999999999999999999-0", OutOfRange),
        ];
        for (text, err) in cases {
            assert_eq!(text.parse::<LogId>(), Err(*err), "{text:?}");
        }
        let long = "1".repeat(21) + "-" + &"1".repeat(20);
        assert_eq!(long.parse::<LogId>(), Err(TooLong));
        let huge = "9".repeat(1 << 20);
        assert_eq!(huge.parse::<LogId>(), Err(TooLong));
        // The error never carries the input.
        let err: StateError = "evil<script>-1".parse::<LogId>().unwrap_err().into();
        assert!(!err.to_string().contains("evil"));
    }

    #[test]
    fn next_ids_increase_even_when_the_clock_steps_back() {
        let id = LogId::new(1_000, 3);
        assert_eq!(id.next_at(2_000), Some(LogId::new(2_000, 0)));
        assert_eq!(id.next_at(1_000), Some(LogId::new(1_000, 4)));
        assert_eq!(id.next_at(10), Some(LogId::new(1_000, 4)));
        assert_eq!(LogId::new(7, u64::MAX).next_at(0), Some(LogId::new(8, 0)));
        assert_eq!(LogId::new(u64::MAX, u64::MAX).next_at(0), None);
    }

    #[test]
    fn completeness_rule() {
        let (b, l) = (LogId::new(10, 0), LogId::new(20, 0));
        assert!(read_complete(LogId::ZERO, None));
        assert!(!read_complete(b, None), "the log expired");
        assert!(read_complete(LogId::ZERO, Some((b, None, l))));
        assert!(read_complete(b, Some((b, None, l))));
        assert!(read_complete(l, Some((b, None, l))));
        assert!(!read_complete(LogId::new(21, 0), Some((b, None, l))));
        assert!(
            !read_complete(LogId::new(9, 0), Some((b, None, l))),
            "older than the log: recreated"
        );
        let t = Some(LogId::new(15, 0));
        assert!(!read_complete(LogId::ZERO, Some((b, t, l))));
        assert!(!read_complete(LogId::new(14, 0), Some((b, t, l))));
        assert!(read_complete(LogId::new(15, 0), Some((b, t, l))));
    }

    #[test]
    fn arguments_are_bounded() {
        let ttl = Duration::from_secs(1);
        assert!(check_append(10, 0, ttl, MAX_LOG_PAYLOAD).is_err());
        assert!(check_append(10, MAX_LOG_CAP + 1, ttl, MAX_LOG_PAYLOAD).is_err());
        assert!(check_append(10, MAX_LOG_CAP, Duration::ZERO, MAX_LOG_PAYLOAD).is_err());
        assert!(check_append(11, 1, ttl, 10).is_err());
        assert!(check_append(MAX_LOG_PAYLOAD + 1, 1, ttl, usize::MAX).is_err());
        assert_eq!(check_append(10, 1, ttl, 10), Ok(1000));
        assert!(check_read(0).is_err());
        assert!(check_read(MAX_LOG_READ + 1).is_err());
        assert!(check_read(MAX_LOG_READ).is_ok());
    }
}
