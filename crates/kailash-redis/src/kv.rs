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
use crate::keys::{self, Space};
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
        if self.is_cluster() {
            return self.scan_cluster(namespace, cursor).await;
        }
        let (next, found) = self.scan_node(namespace, cursor.position(), None).await?;
        Ok(ScanPage {
            keys: self.live_keys(namespace, found).await?,
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

/// On a cluster, a scan cursor is the slot of the primary being walked
/// (its lowest) above this many bits, and that primary's own `SCAN`
/// cursor below them.
const NODE_CURSOR_BITS: u32 = 48;

impl RedisState {
    /// One `SCAN` page of the value keys of `namespace`, on the one server
    /// or (`slot`) on the primary serving that slot.
    async fn scan_node(
        &self,
        namespace: Namespace,
        position: u64,
        slot: Option<u16>,
    ) -> Result<(u64, Vec<Vec<u8>>), StateError> {
        let prefix = self.space_prefix(Space::Kv);
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(position)
            .arg("MATCH")
            .arg(format!(
                "{}*:{}:*",
                glob_escape(&prefix),
                namespace.as_str()
            ))
            .arg("COUNT")
            .arg(SCAN_COUNT);
        match slot {
            Some(slot) => self.command_at_slot(&cmd, slot).await,
            None => self.command(&cmd).await,
        }
    }

    /// The live state keys of `namespace` among the Redis keys `found`.
    async fn live_keys(
        &self,
        namespace: Namespace,
        found: Vec<Vec<u8>>,
    ) -> Result<Vec<StateKey>, StateError> {
        let prefix = self.space_prefix(Space::Kv);
        // The pattern may also match ids containing `:<namespace>:`; keep
        // only keys of the namespace (a name that is not UTF-8 is not a
        // state key), then only the live ones (Redis keeps a logically
        // expired hash for a grace period).
        let mut candidates: Vec<(String, StateKey)> = found
            .into_iter()
            .filter_map(|raw| {
                let raw = String::from_utf8(raw).ok()?;
                let text = keys::state_key_text(raw.strip_prefix(&prefix)?, self.is_cluster())?;
                let key = StateKey::parse(text)?;
                key.in_namespace(namespace).then_some((raw, key))
            })
            .collect();
        let mut keys = Vec::with_capacity(candidates.len());
        // One script call per hash slot: a script's keys must share one
        // (on one server, all keys are one group).
        if self.is_cluster() {
            candidates.sort_by_key(|(raw, _)| keys::slot(raw));
        }
        let mut rest = &candidates[..];
        while let Some((first, _)) = rest.first() {
            let group = if self.is_cluster() {
                let slot = keys::slot(first);
                rest.iter()
                    .take_while(|(raw, _)| keys::slot(raw) == slot)
                    .count()
            } else {
                rest.len()
            };
            let (batch, after) = rest.split_at(group);
            rest = after;
            let mut invocation = scripts::KV_LIVE.prepare_invoke();
            for (raw, _) in batch {
                invocation.key(raw);
            }
            invocation.arg(self.now_ms());
            let live = as_array(self.invoke(&invocation).await?)?;
            for position in live {
                let i = as_i64(&position)
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| i.checked_sub(1))
                    .filter(|&i| i < batch.len())
                    .ok_or_else(unexpected)?;
                keys.push(batch[i].1.clone());
            }
        }
        Ok(keys)
    }

    /// A scan over every primary of the cluster in turn (by their lowest
    /// slot), each with its own `SCAN`.
    ///
    /// A resharding during the walk can move keys from a primary not yet
    /// walked to one already walked; those are missed, as Redis's own
    /// cluster-wide scans would miss them.
    async fn scan_cluster(
        &self,
        namespace: Namespace,
        cursor: ScanCursor,
    ) -> Result<ScanPage, StateError> {
        let primaries = self.cluster_primaries().await?;
        let position = cursor.position();
        let slot = u16::try_from(position >> NODE_CURSOR_BITS).map_err(|_| bad_cursor())?;
        let node_cursor = position & ((1 << NODE_CURSOR_BITS) - 1);
        // The primary serving the cursor's slot, or (after a resharding
        // moved it) the next one up.
        let Some(at) = primaries
            .iter()
            .position(|p| p.serves(slot))
            .or_else(|| primaries.iter().position(|p| p.lowest > slot))
        else {
            return Ok(ScanPage::default());
        };
        let lowest = primaries[at].lowest;
        let (next, found) = self.scan_node(namespace, node_cursor, Some(lowest)).await?;
        let next = if next != 0 {
            if next >> NODE_CURSOR_BITS != 0 {
                return Err(StateError::Backend(
                    "redis: a node's SCAN cursor is wider than 48 bits".to_owned(),
                ));
            }
            Some((u64::from(lowest) << NODE_CURSOR_BITS) | next)
        } else {
            // The first primary has slot 0, so the next one's lowest slot
            // is never 0 and its position never looks like `START`.
            primaries
                .get(at + 1)
                .map(|p| u64::from(p.lowest) << NODE_CURSOR_BITS)
        };
        Ok(ScanPage {
            keys: self.live_keys(namespace, found).await?,
            next: next.map(ScanCursor::from_backend),
        })
    }

    /// The cluster's primaries, ordered by their lowest slot
    /// (`CLUSTER SLOTS`).
    async fn cluster_primaries(&self) -> Result<Vec<Primary>, StateError> {
        let reply: Value = self
            .command(&redis::cmd("CLUSTER").arg("SLOTS").clone())
            .await?;
        let mut primaries: Vec<Primary> = Vec::new();
        for range in as_array(reply)? {
            let mut fields = as_array(range)?.into_iter();
            let (Some(start), Some(end), Some(node)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(unexpected());
            };
            let start = as_i64(&start)
                .and_then(|v| u16::try_from(v).ok())
                .ok_or_else(unexpected)?;
            let end = as_i64(&end)
                .and_then(|v| u16::try_from(v).ok())
                .ok_or_else(unexpected)?;
            let mut node = as_array(node)?.into_iter();
            let (Some(host), Some(port)) = (node.next(), node.next()) else {
                return Err(unexpected());
            };
            let id = (
                redis::from_redis_value::<String>(host).map_err(|_| unexpected())?,
                as_i64(&port).ok_or_else(unexpected)?,
            );
            match primaries.iter_mut().find(|p| p.id == id) {
                Some(p) => {
                    p.lowest = p.lowest.min(start);
                    p.ranges.push((start, end));
                }
                None => primaries.push(Primary {
                    id,
                    lowest: start,
                    ranges: vec![(start, end)],
                }),
            }
        }
        primaries.sort_by_key(|p| p.lowest);
        Ok(primaries)
    }
}

/// One primary of a cluster, as `CLUSTER SLOTS` describes it.
struct Primary {
    /// Host and port.
    id: (String, i64),
    /// Its lowest slot: the slot a scan routes by.
    lowest: u16,
    ranges: Vec<(u16, u16)>,
}

impl Primary {
    fn serves(&self, slot: u16) -> bool {
        self.ranges.iter().any(|&(a, b)| (a..=b).contains(&slot))
    }
}

fn bad_cursor() -> StateError {
    StateError::InvalidArgument("a scan cursor this backend did not make")
}

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
