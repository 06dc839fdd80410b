//! [`EventLog`] on Redis: one stream per log (`log:` space, entries with one
//! field `p`, the payload) and a meta hash beside it (`logm:` space: `b` the
//! first id, `t` the highest id the cap trimmed, `l` the last id, `e` the
//! logical deadline). Both go through the `LOG_*` scripts, so an append is
//! one round trip and a read sees the entries and the meta of one moment.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kailash_core::state::log::{self, MAX_LOG_PAYLOAD};
use kailash_core::state::{EventLog, LogEntry, LogId, LogRead, StateError, StateKey};
use redis::Value;

use crate::backend::RedisState;
use crate::error;
use crate::expiry::GC_GRACE_MS;
use crate::keys::Space;
use crate::reply::{as_array, as_i64, unexpected};
use crate::scripts;

/// A log id as the scripts return it.
fn as_id(value: &Value) -> Result<LogId, StateError> {
    let text = match value {
        Value::BulkString(b) => std::str::from_utf8(b).map_err(|_| error::corrupt("log id"))?,
        Value::SimpleString(s) => s.as_str(),
        _ => return Err(unexpected()),
    };
    text.parse()
        .map_err(|_| error::corrupt("unreadable log id"))
}

/// An optional id: the empty string is none.
fn as_opt_id(value: &Value) -> Result<Option<LogId>, StateError> {
    match value {
        Value::BulkString(b) if b.is_empty() => Ok(None),
        Value::Nil => Ok(None),
        other => as_id(other).map(Some),
    }
}

/// One `XRANGE` entry: `[id, ["p", payload]]`.
fn as_entry(value: Value) -> Result<LogEntry, StateError> {
    let mut parts = as_array(value)?.into_iter();
    let (Some(id), Some(fields), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(unexpected());
    };
    let id = as_id(&id)?;
    let mut fields = as_array(fields)?.into_iter();
    match (fields.next(), fields.next(), fields.next()) {
        (Some(Value::BulkString(name)), Some(Value::BulkString(payload)), None) if name == b"p" => {
            Ok(LogEntry {
                id,
                payload: Bytes::from(payload),
            })
        }
        _ => Err(error::corrupt("log entry without a payload")),
    }
}

/// What the read script found: the log's (birth, trimmed, last) and the entries.
type Found = Option<((LogId, Option<LogId>, LogId), Vec<LogEntry>)>;

impl RedisState {
    async fn log_read(
        &self,
        key: &StateKey,
        since: LogId,
        limit: u32,
    ) -> Result<Found, StateError> {
        let now = self.now_ms().to_string();
        // The first id after `since`; none exists after the greatest id.
        let from = since
            .next_at(0)
            .map(|id| id.to_string())
            .unwrap_or_default();
        let limit = limit.to_string();
        let mut invocation = scripts::LOG_READ.prepare_invoke();
        invocation
            .key(self.key(Space::Log, key))
            .key(self.key(Space::LogMeta, key))
            .arg(now.as_bytes())
            .arg(from.as_bytes())
            .arg(limit.as_bytes());
        let mut reply = as_array(self.invoke(&invocation).await?)?.into_iter();
        match reply.next().as_ref().and_then(as_i64) {
            Some(0) => return Ok(None),
            Some(1) => {}
            _ => return Err(unexpected()),
        }
        let (Some(birth), Some(trimmed), Some(last), Some(entries), None) = (
            reply.next(),
            reply.next(),
            reply.next(),
            reply.next(),
            reply.next(),
        ) else {
            return Err(unexpected());
        };
        let meta = (as_id(&birth)?, as_opt_id(&trimmed)?, as_id(&last)?);
        let entries = as_array(entries)?
            .into_iter()
            .map(as_entry)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((meta, entries)))
    }
}

#[async_trait]
impl EventLog for RedisState {
    async fn append(
        &self,
        key: &StateKey,
        payload: Bytes,
        cap: u32,
        ttl: Duration,
    ) -> Result<LogId, StateError> {
        let ttl_ms = log::check_append(payload.len(), cap, ttl, MAX_LOG_PAYLOAD)?;
        let now = self.now_ms();
        let (now_s, cap, deadline, gc) = (
            now.max(0).to_string(),
            cap.to_string(),
            now.saturating_add(ttl_ms).to_string(),
            ttl_ms.saturating_add(GC_GRACE_MS).to_string(),
        );
        let mut invocation = scripts::LOG_APPEND.prepare_invoke();
        invocation
            .key(self.key(Space::Log, key))
            .key(self.key(Space::LogMeta, key))
            .arg(now_s.as_bytes())
            .arg(&payload[..])
            .arg(cap.as_bytes())
            .arg(deadline.as_bytes())
            .arg(gc.as_bytes());
        as_id(&self.invoke(&invocation).await?)
    }

    async fn read_after(
        &self,
        key: &StateKey,
        since: LogId,
        limit: u32,
    ) -> Result<LogRead, StateError> {
        log::check_read(limit)?;
        Ok(match self.log_read(key, since, limit).await? {
            None => LogRead {
                entries: Vec::new(),
                complete: log::read_complete(since, None),
            },
            Some((meta, entries)) => LogRead {
                entries,
                complete: log::read_complete(since, Some(meta)),
            },
        })
    }

    async fn last_id(&self, key: &StateKey) -> Result<Option<LogId>, StateError> {
        Ok(self
            .log_read(key, LogId::ZERO, 0)
            .await?
            .map(|((_, _, last), _)| last))
    }
}
