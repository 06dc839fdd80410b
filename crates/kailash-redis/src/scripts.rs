//! The Lua scripts behind every read-modify-write operation.
//!
//! Each script touches exactly one key, runs atomically inside Redis and is
//! sent with `EVALSHA` (the `redis` crate loads it again after a Redis
//! restart). Time never comes from Redis: the caller passes `now` (from its
//! [`Clock`](kailash_core::clock::Clock)) and the deadline it computed, and
//! the scripts compare against those. Redis's own expiry is only garbage
//! collection, set relative (`PEXPIRE`) to at least the logical remaining
//! time plus a grace period, so it never removes a live value.

use std::sync::LazyLock;

use redis::Script;

/// Shared helpers: reading a `{v, e}` hash as live or absent.
macro_rules! prelude {
    () => {
        r#"
local function corrupt(what)
  error({err = 'KAILASH_CORRUPT ' .. what})
end
-- The live value of a {v, e} hash at `now`, or false.
local function live_value(key, now, field)
  local cur = redis.call('HMGET', key, field, 'e')
  local v, e = cur[1], cur[2]
  if not v then return false, false end
  if e then
    local at = tonumber(e)
    if not at then corrupt('unreadable deadline') end
    if at <= now then return false, false end
  end
  return v, e
end
-- Replaces the hash with {field = value, e = deadline}; '' means no deadline.
local function store(key, field, value, deadline, gc_ms)
  redis.call('DEL', key)
  if deadline == '' then
    redis.call('HSET', key, field, value)
  else
    redis.call('HSET', key, field, value, 'e', deadline)
    redis.call('PEXPIRE', key, gc_ms)
  end
end
"#
    };
}

/// `KEYS[1]` value hash. `ARGV`: value, deadline ms (`''` = none), gc ms.
pub(crate) static KV_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
store(KEYS[1], 'v', ARGV[1], ARGV[2], ARGV[3])
return 1
"#
    ))
});

/// `KEYS[1]` value hash. `ARGV`: now ms, has expected (`0`/`1`), expected,
/// has new (`0`/`1`), new, deadline ms (`''` = none), gc ms. Returns 1 when swapped.
pub(crate) static KV_CAS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local v = live_value(KEYS[1], tonumber(ARGV[1]), 'v')
if ARGV[2] == '1' then
  if v ~= ARGV[3] then return 0 end
elseif v then
  return 0
end
if ARGV[4] == '1' then
  store(KEYS[1], 'v', ARGV[5], ARGV[6], ARGV[7])
else
  redis.call('DEL', KEYS[1])
end
return 1
"#
    ))
});

/// `KEYS[1]` value hash. `ARGV`: now ms. Returns the live value (or nil) and deletes the key.
pub(crate) static KV_TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local v = live_value(KEYS[1], tonumber(ARGV[1]), 'v')
redis.call('DEL', KEYS[1])
return v
"#
    ))
});

/// `KEYS[1]` value hash. `ARGV`: now ms. Deletes; returns 1 when a live value was there.
pub(crate) static KV_DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local v = live_value(KEYS[1], tonumber(ARGV[1]), 'v')
redis.call('DEL', KEYS[1])
if v then return 1 end
return 0
"#
    ))
});

/// Which of the keys (a scan page) hold a live value at `ARGV[1]`: returns
/// the 1-based positions of the live ones. Read-only; reads no values. A
/// key with an unreadable deadline counts as live, so the reader of that
/// one key meets the corruption (one bad record never hides a page).
pub(crate) static KV_LIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('TYPE', key).ok == 'hash' and redis.call('HEXISTS', key, 'v') == 1 then
    local e = redis.call('HGET', key, 'e')
    local at = e and tonumber(e)
    if (not e) or (not at) or at > now then out[#out + 1] = i end
  end
end
return out
"#,
    )
});

/// `KEYS[1]` value hash. `ARGV`: now ms, new deadline ms, gc ms. Returns 1 when the key was live.
pub(crate) static KV_EXPIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local v = live_value(KEYS[1], tonumber(ARGV[1]), 'v')
if not v then return 0 end
redis.call('HSET', KEYS[1], 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"#
    ))
});

/// `KEYS[1]` counter hash `{n, e}`. `ARGV`: now ms, delta, limit (`''` =
/// none), deadline ms for a fresh counter (`''` = none), gc ms.
///
/// Returns `{applied (0/1), value, deadline ms or ''}`. An absent or expired
/// counter starts at zero with the fresh deadline; a live one keeps its own.
pub(crate) static COUNTER_ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local n, e = live_value(KEYS[1], tonumber(ARGV[1]), 'n')
local fresh = not n
local current = 0
if fresh then
  if ARGV[4] ~= '' then e = ARGV[4] end
else
  current = tonumber(n)
  if not current then corrupt('unreadable counter') end
end
if ARGV[3] ~= '' and current + tonumber(ARGV[2]) > tonumber(ARGV[3]) then
  return {0, fresh and '0' or n, e or ''}
end
if fresh then
  store(KEYS[1], 'n', ARGV[2], e or '', ARGV[5])
  return {1, ARGV[2], e or ''}
end
local next = redis.call('HINCRBY', KEYS[1], 'n', ARGV[2])
return {1, next, e or ''}
"#
    ))
});

/// GCRA. `KEYS[1]` holds the theoretical arrival time (µs since the epoch)
/// as a decimal string. `ARGV`: now µs, increment µs (emission interval ×
/// cost), tau µs (emission interval × burst), grace ms.
///
/// Exactly [`RateQuota::decide`](kailash_core::state::RateQuota::decide):
/// `tat = max(stored, now)`, `new = tat + increment`, allowed iff
/// `new - tau <= now`; when allowed the new TAT is stored and the key expires
/// when it passes. Returns `{allowed (0/1), stored TAT or ''}` so the caller
/// derives the full decision with the shared Rust code.
pub(crate) static RATE_CHECK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now = tonumber(ARGV[1])
local inc = tonumber(ARGV[2])
local tau = tonumber(ARGV[3])
local raw = redis.call('GET', KEYS[1])
local tat = now
if raw then
  local stored = tonumber(raw)
  if not stored then error({err = 'KAILASH_CORRUPT unreadable rate state'}) end
  if stored > now then tat = stored end
end
local new_tat = tat + inc
if new_tat - tau <= now then
  local ttl_ms = math.ceil((new_tat - now) / 1000)
  if ttl_ms > 0 then
    redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl_ms + tonumber(ARGV[4])))
  else
    redis.call('DEL', KEYS[1])
  end
  return {1, raw or ''}
end
return {0, raw or ''}
"#,
    )
});

/// Bounded set insert. `KEYS[1]` sorted set scored by expiry ms. `ARGV`:
/// now ms, member, expiry ms, cap, reject when full (`0`/`1`), grace ms.
///
/// Drops members with score <= now; an existing member only gets the new
/// expiry; at the cap either refuses or evicts the lowest scores (ties by
/// member). Returns `{inserted (0/1), evicted...}`.
pub(crate) static SET_INSERT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local result = {1}
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  local cap = tonumber(ARGV[4])
  local n = redis.call('ZCARD', KEYS[1])
  if n >= cap then
    if ARGV[5] == '1' then return {0} end
    local excess = n + 1 - cap
    local evicted = redis.call('ZRANGE', KEYS[1], 0, excess - 1)
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
    for i = 1, #evicted do result[i + 1] = evicted[i] end
  end
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local keep = math.ceil(tonumber(top[2]) - now) + tonumber(ARGV[6])
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', keep))
return result
"#,
    )
});

/// `KEYS[1]` sorted set. `ARGV`: now ms, member. Returns 1 when the member was live.
pub(crate) static SET_REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[2])
"#,
    )
});

/// `KEYS[1]` sorted set. `ARGV`: now ms. Deletes the set, returning its live
/// members soonest-expiring first.
pub(crate) static SET_CLEAR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
redis.call('DEL', KEYS[1])
return live
"#,
    )
});

/// A whole admission (see `kailash_core::state::Admission`) in one call.
///
/// `ARGV`: now ms, now µs, gc grace ms, then per check its kind and
/// arguments; `KEYS` in the same order:
///
/// - `L member` — `KEYS`: the value hash, the sorted set. Live while the
///   value is live and the member's score is after now. Returns `{1, value}`
///   or `{0}`.
/// - `R increment tau` — `KEYS`: the GCRA key. Exactly `RATE_CHECK`;
///   returns `{allowed, stored TAT or ''}`.
/// - `F default` — `KEYS`: the value hash. On while the live value is
///   `1`, or absent and `default` is `1`; any value other than `0`/`1` is
///   corrupt. Returns `{1}` or `{0}`.
/// - `C delta limit deadline gc` — `KEYS`: the counter hash. Exactly
///   `COUNTER_ADD` (`limit`, `deadline`, `gc` may be `''`); returns
///   `{applied, value, deadline or ''}`.
///
/// The first check that does not pass stops the plan, and the counter
/// additions made before it are taken back. Returns the results of the
/// checks that ran, in order.
pub(crate) static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local now_ms = tonumber(ARGV[1])
local now_us = tonumber(ARGV[2])
local grace = tonumber(ARGV[3])
local k, a = 1, 4
local out = {}
local applied = {}
while a <= #ARGV do
  local kind = ARGV[a]
  local r, pass
  if kind == 'L' then
    local v = live_value(KEYS[k], now_ms, 'v')
    pass = false
    if v then
      local score = redis.call('ZSCORE', KEYS[k + 1], ARGV[a + 1])
      if score and tonumber(score) > now_ms then pass = true end
    end
    if pass then r = {1, v} else r = {0} end
    k, a = k + 2, a + 2
  elseif kind == 'R' then
    local inc, tau = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    local raw = redis.call('GET', KEYS[k])
    local tat = now_us
    if raw then
      local stored = tonumber(raw)
      if not stored then corrupt('unreadable rate state') end
      if stored > now_us then tat = stored end
    end
    local new_tat = tat + inc
    pass = new_tat - tau <= now_us
    if pass then
      local ttl_ms = math.ceil((new_tat - now_us) / 1000)
      if ttl_ms > 0 then
        redis.call('SET', KEYS[k], string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl_ms + grace))
      else
        redis.call('DEL', KEYS[k])
      end
      r = {1, raw or ''}
    else
      r = {0, raw or ''}
    end
    k, a = k + 1, a + 3
  elseif kind == 'F' then
    local v = live_value(KEYS[k], now_ms, 'v')
    if v == false or v == nil then
      pass = ARGV[a + 1] == '1'
    elseif v == '1' then
      pass = true
    elseif v == '0' then
      pass = false
    else
      corrupt('a switch entry is neither 0 nor 1')
    end
    if pass then r = {1} else r = {0} end
    k, a = k + 1, a + 2
  elseif kind == 'C' then
    local delta, limit, deadline, gc = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
    local n, e = live_value(KEYS[k], now_ms, 'n')
    local fresh = not n
    local current = 0
    if fresh then
      if deadline ~= '' then e = deadline end
    else
      current = tonumber(n)
      if not current then corrupt('unreadable counter') end
    end
    if limit ~= '' and current + tonumber(delta) > tonumber(limit) then
      pass = false
      r = {0, fresh and '0' or n, e or ''}
    else
      pass = true
      if fresh then
        store(KEYS[k], 'n', delta, e or '', gc)
        r = {1, delta, e or ''}
      else
        r = {1, redis.call('HINCRBY', KEYS[k], 'n', delta), e or ''}
      end
      applied[#applied + 1] = {KEYS[k], delta}
    end
    k, a = k + 1, a + 5
  else
    error({err = 'KAILASH_BADARG unknown admission check'})
  end
  out[#out + 1] = r
  if not pass then
    for i = 1, #applied do
      redis.call('HINCRBY', applied[i][1], 'n', -tonumber(applied[i][2]))
    end
    break
  end
end
return out
"#
    ))
});

/// Shared helpers of the event-log scripts: reading the log's meta hash.
macro_rules! log_prelude {
    () => {
        r#"
local function corrupt(what)
  error({err = 'KAILASH_CORRUPT ' .. what})
end
-- The meta hash {b = birth id, t = highest trimmed id, l = last id,
-- e = deadline} of a live log at `now`, or false. A log whose stream is
-- gone (evicted under memory pressure) is not live either.
local function live_meta(stream, meta, now)
  local m = redis.call('HMGET', meta, 'b', 't', 'l', 'e')
  if not m[3] then return false end
  local at = tonumber(m[4])
  if not at then corrupt('unreadable log deadline') end
  if at <= now then return false end
  if redis.call('XLEN', stream) == 0 then return false end
  return m
end
"#
    };
}

/// `KEYS[1]` stream, `KEYS[2]` its meta hash. `ARGV`: now ms, payload,
/// cap, deadline ms, gc ms. Returns the new id.
///
/// Ids are computed here from the caller's `now` (never Redis's clock):
/// `now-0` when `now` is past the last id's millisecond, else the last id's
/// next sequence. The highest id the cap trims is kept in the meta hash
/// (`t`), read from the head just before `XADD … MAXLEN = cap` trims it:
/// exact, and unlike `XINFO STREAM`'s `max-deleted-entry-id` it needs no
/// Redis 7 and lives next to the logical deadline it must expire with.
pub(crate) static LOG_APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        log_prelude!(),
        r#"
local now, cap = tonumber(ARGV[1]), tonumber(ARGV[3])
local function num(s)
  local n = tonumber(s)
  if not n or n < 0 or n >= 9007199254740992 or n ~= math.floor(n) then
    corrupt('unreadable log id')
  end
  return n
end
local m = live_meta(KEYS[1], KEYS[2], now)
local birth, lms, lseq
if m then
  local dash = string.find(m[3], '-', 1, true)
  if not dash then corrupt('unreadable log id') end
  birth = m[1]
  lms, lseq = num(string.sub(m[3], 1, dash - 1)), num(string.sub(m[3], dash + 1))
else
  redis.call('DEL', KEYS[1], KEYS[2])
  lms, lseq = 0, 0
end
local id
if now > lms then
  id = string.format('%.0f', now) .. '-0'
else
  id = string.format('%.0f', lms) .. '-' .. string.format('%.0f', lseq + 1)
end
if not birth then birth = id end
local len = redis.call('XLEN', KEYS[1])
if len >= cap then
  local gone = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', len - cap + 1)
  redis.call('HSET', KEYS[2], 't', gone[#gone][1])
end
redis.call('XADD', KEYS[1], 'MAXLEN', '=', cap, id, 'p', ARGV[2])
redis.call('HSET', KEYS[2], 'b', birth, 'l', id, 'e', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return id
"#
    ))
});

/// `KEYS[1]` stream, `KEYS[2]` its meta hash. `ARGV`: now ms, first id to
/// return (`''` for none), count (`0` reads only the meta). Returns `{0}`
/// for a missing or expired log, else `{1, birth, trimmed or '', last,
/// entries}` with entries as `XRANGE` gives them.
pub(crate) static LOG_READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        log_prelude!(),
        r#"
local m = live_meta(KEYS[1], KEYS[2], tonumber(ARGV[1]))
if not m then return {0} end
local entries = {}
if ARGV[2] ~= '' and ARGV[3] ~= '0' then
  entries = redis.call('XRANGE', KEYS[1], ARGV[2], '+', 'COUNT', ARGV[3])
end
return {1, m[1], m[2] or '', m[3], entries}
"#
    ))
});
