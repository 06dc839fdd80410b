//! [`KeyValueStore`] on Redis: one hash per key, `v` the value and `e` the
//! logical deadline in milliseconds; writes go through the `KV_*` scripts.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kailash_core::state::{KeyValueStore, Namespace, ScanCursor, ScanPage, StateError, StateKey};
use redis::Value;

use crate::backend::RedisState;
use crate::error;
use crate::expiry::{GC_GRACE_MS, expiry_args, ttl_deadline};
use crate::keys::Space;
use crate::reply::{as_array, as_bool, as_i64, parse_ms, unexpected};
use crate::scripts;

#[async_trait]
impl KeyValueStore for RedisState {
    async fn get(&self, key: &StateKey) -> Result<Option<Bytes>, StateError> {
        let now = self.now_ms();
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.key(Space::Kv, key)).arg("v").arg("e");
        let (value, deadline): (Option<Vec<u8>>, Option<Vec<u8>>) = self.command(&cmd).await?;
        let Some(value) = value else { return Ok(None) };
        if let Some(deadline) = deadline {
            let at = parse_ms(&deadline).ok_or_else(|| error::corrupt("unreadable deadline"))?;
            if at <= now {
                return Ok(None);
            }
        }
        Ok(Some(Bytes::from(value)))
    }

    async fn set(
        &self,
        key: &StateKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), StateError> {
        let (deadline, gc) = expiry_args(self.now_ms(), ttl)?;
        let key = self.key(Space::Kv, key);
        self.script(
            &scripts::KV_SET,
            &key,
            &[&value, deadline.as_bytes(), gc.as_bytes()],
        )
        .await
        .map(drop)
    }

    async fn compare_and_swap(
        &self,
        key: &StateKey,
        expected: Option<&[u8]>,
        new: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool, StateError> {
        let now = self.now_ms();
        let (deadline, gc) = expiry_args(now, ttl)?;
        let now = now.to_string();
        let key = self.key(Space::Kv, key);
        let args: [&[u8]; 7] = [
            now.as_bytes(),
            if expected.is_some() { b"1" } else { b"0" },
            expected.unwrap_or_default(),
            if new.is_some() { b"1" } else { b"0" },
            new.as_deref().unwrap_or_default(),
            deadline.as_bytes(),
            gc.as_bytes(),
        ];
        as_bool(&self.script(&scripts::KV_CAS, &key, &args).await?)
    }

    async fn take(&self, key: &StateKey) -> Result<Option<Bytes>, StateError> {
        let now = self.now_ms().to_string();
        let key = self.key(Space::Kv, key);
        match self
            .script(&scripts::KV_TAKE, &key, &[now.as_bytes()])
            .await?
        {
            Value::Nil => Ok(None),
            Value::BulkString(v) => Ok(Some(Bytes::from(v))),
            _ => Err(unexpected()),
        }
    }

    async fn delete(&self, key: &StateKey) -> Result<bool, StateError> {
        let now = self.now_ms().to_string();
        let key = self.key(Space::Kv, key);
        as_bool(
            &self
                .script(&scripts::KV_DELETE, &key, &[now.as_bytes()])
                .await?,
        )
    }

    async fn expire(&self, key: &StateKey, ttl: Duration) -> Result<bool, StateError> {
        let now = self.now_ms();
        let (ms, deadline) = ttl_deadline(now, ttl)?;
        let (now, deadline, gc) = (
            now.to_string(),
            deadline.to_string(),
            ms.saturating_add(GC_GRACE_MS).to_string(),
        );
        let key = self.key(Space::Kv, key);
        let args: [&[u8]; 3] = [now.as_bytes(), deadline.as_bytes(), gc.as_bytes()];
        as_bool(&self.script(&scripts::KV_EXPIRE, &key, &args).await?)
    }

    async fn scan(&self, namespace: Namespace, cursor: ScanCursor) -> Result<ScanPage, StateError> {
        let prefix = self.space_prefix(Space::Kv);
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor.position())
            .arg("MATCH")
            .arg(format!(
                "{}*:{}:*",
                glob_escape(&prefix),
                namespace.as_str()
            ))
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let (next, found): (u64, Vec<Vec<u8>>) = self.command(&cmd).await?;
        // The pattern may also match ids containing `:<namespace>:`; keep
        // only keys of the namespace (a name that is not UTF-8 is not a
        // state key), then only the live ones (Redis keeps a logically
        // expired hash for a grace period).
        let candidates: Vec<(String, StateKey)> = found
            .into_iter()
            .filter_map(|raw| {
                let raw = String::from_utf8(raw).ok()?;
                let key = StateKey::parse(raw.strip_prefix(&prefix)?)?;
                key.in_namespace(namespace).then_some((raw, key))
            })
            .collect();
        let mut keys = Vec::with_capacity(candidates.len());
        if !candidates.is_empty() {
            let mut invocation = scripts::KV_LIVE.prepare_invoke();
            for (raw, _) in &candidates {
                invocation.key(raw);
            }
            invocation.arg(self.now_ms());
            let live = as_array(self.invoke(&invocation).await?)?;
            for position in live {
                let i = as_i64(&position)
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| i.checked_sub(1))
                    .filter(|&i| i < candidates.len())
                    .ok_or_else(unexpected)?;
                keys.push(candidates[i].1.clone());
            }
        }
        Ok(ScanPage {
            keys,
            next: (next != 0).then(|| ScanCursor::from_backend(next)),
        })
    }

    async fn ping(&self) -> Result<(), StateError> {
        let reply: String = self.command(&redis::cmd("PING")).await?;
        if reply.eq_ignore_ascii_case("pong") {
            Ok(())
        } else {
            Err(unexpected())
        }
    }
}

/// Keys a `SCAN` page asks Redis to look at.
const SCAN_COUNT: u64 = 500;

/// `text` with Redis glob metacharacters escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
