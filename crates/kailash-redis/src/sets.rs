//! [`BoundedSetStore`] on Redis: one sorted set per owner, members scored by
//! their expiry in milliseconds; writes go through the `SET_*` scripts,
//! reads (`members`, `contains`, `len`) are single commands that skip the
//! scores at or before now.

use async_trait::async_trait;
use jiff::Timestamp;
use kailash_core::state::{
    BoundedSetStore, SetInsert, SetMember, StateError, StateKey, WhenFull, validate,
};

use crate::backend::RedisState;
use crate::error;
use crate::expiry::GC_GRACE_MS;
use crate::keys::Space;
use crate::reply::{as_array, as_bool, as_string, parse_ms, unexpected};
use crate::scripts;

#[async_trait]
impl BoundedSetStore for RedisState {
    async fn insert(
        &self,
        owner: &StateKey,
        member: &str,
        expires_at: Timestamp,
        cap: usize,
        when_full: WhenFull,
    ) -> Result<SetInsert, StateError> {
        let now = self.now_ms();
        let at = validate::set_insert(cap, expires_at, now)?;
        let (now_s, at, cap, grace) = (
            now.to_string(),
            at.to_string(),
            cap.to_string(),
            GC_GRACE_MS.to_string(),
        );
        let reject: &[u8] = if when_full == WhenFull::Reject {
            b"1"
        } else {
            b"0"
        };
        let key = self.key(Space::Set, owner);
        let args: [&[u8]; 6] = [
            now_s.as_bytes(),
            member.as_bytes(),
            at.as_bytes(),
            cap.as_bytes(),
            reject,
            grace.as_bytes(),
        ];
        let mut reply =
            as_array(self.script(&scripts::SET_INSERT, &key, &args).await?)?.into_iter();
        let inserted = as_bool(&reply.next().ok_or_else(unexpected)?)?;
        let evicted = reply.map(as_string).collect::<Result<Vec<_>, _>>()?;
        Ok(SetInsert { inserted, evicted })
    }

    async fn remove(&self, owner: &StateKey, member: &str) -> Result<bool, StateError> {
        let now = self.now_ms().to_string();
        let key = self.key(Space::Set, owner);
        let args: [&[u8]; 2] = [now.as_bytes(), member.as_bytes()];
        as_bool(&self.script(&scripts::SET_REMOVE, &key, &args).await?)
    }

    async fn members(&self, owner: &StateKey) -> Result<Vec<SetMember>, StateError> {
        let now = self.now_ms();
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(self.key(Space::Set, owner))
            .arg(format!("({now}"))
            .arg("+inf")
            .arg("WITHSCORES");
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = self.command(&cmd).await?;
        pairs
            .into_iter()
            .map(|(member, score)| {
                let member = String::from_utf8(member)
                    .map_err(|_| error::corrupt("set member is not UTF-8"))?;
                let at = parse_ms(&score).ok_or_else(|| error::corrupt("unreadable set score"))?;
                Ok(SetMember {
                    member,
                    expires_at: Timestamp::from_millisecond(at).unwrap_or(Timestamp::MAX),
                })
            })
            .collect()
    }

    async fn contains(&self, owner: &StateKey, member: &str) -> Result<bool, StateError> {
        let now = self.now_ms();
        let mut cmd = redis::cmd("ZSCORE");
        cmd.arg(self.key(Space::Set, owner)).arg(member);
        let score: Option<Vec<u8>> = self.command(&cmd).await?;
        match score {
            None => Ok(false),
            Some(raw) => {
                Ok(parse_ms(&raw).ok_or_else(|| error::corrupt("unreadable set score"))? > now)
            }
        }
    }

    /// `ZCOUNT` of the scores after now: one read-only command, logarithmic
    /// in the set's size. Expired members are left for the next write (every
    /// script drops them first) or the key's garbage-collection expiry.
    async fn len(&self, owner: &StateKey) -> Result<usize, StateError> {
        let now = self.now_ms();
        let mut cmd = redis::cmd("ZCOUNT");
        cmd.arg(self.key(Space::Set, owner))
            .arg(format!("({now}"))
            .arg("+inf");
        self.command(&cmd).await
    }

    async fn clear(&self, owner: &StateKey) -> Result<Vec<String>, StateError> {
        let now = self.now_ms().to_string();
        let key = self.key(Space::Set, owner);
        as_array(
            self.script(&scripts::SET_CLEAR, &key, &[now.as_bytes()])
                .await?,
        )?
        .into_iter()
        .map(as_string)
        .collect()
    }
}
