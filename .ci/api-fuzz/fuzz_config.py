#!/usr/bin/env python3
"""Derive the API fuzzer's gateway config from the shipped demo config.

usage: fuzz_config.py SRC DST

The demo config (examples/config/enterprise.toml) is copied line by line
with every limit that would answer 429 or 423 (or 503, or a quota 403) for
reasons that have nothing to do with the request's shape lifted: the
fuzzer sends thousands of requests as one user from one address in a few
minutes, and a refusal caused by that volume is not a contract failure.
Everything else — users, roles and their permissions, policies, tenants'
node types and features, body and header limits, timeouts — stays as
shipped, so the fuzzer sees the product's own behaviour. The source file is
never written. The result is read back with tomllib and checked, so a
renamed key in the demo config fails here instead of silently leaving a
limit in force.
"""

import re
import sys
import tomllib

BIG = 1_000_000
RATE = {"rate": str(BIG), "per": '"1s"', "burst": str(BIG)}
RATE_INLINE = f"{{ rate = {BIG}, per = \"1s\", burst = {BIG} }}"

# section -> {key: new value (TOML literal)}; a key the section lacks is added.
SET = {
    # Per-IP/user/tenant GCRA limits (429 "limit": ip | user | tenant).
    "rate_limit.per_ip": RATE,
    "rate_limit.per_user": RATE,
    "rate_limit.per_tenant": RATE,
    "auth": {
        # Logins the fuzzer makes must not evict the harness's session.
        "concurrent_sessions": str(BIG),
        # Wrong passwords sent to /auth/login and /auth/mfa/enroll must not
        # lock an account (423) nor trip the login throttle (429).
        "max_login_attempts": str(BIG),
        "lockout_duration": '"1s"',
        "login_rate_per_ip": RATE_INLINE,
        # Parallel logins must wait for a hashing slot, not get 503.
        "hash_queue_timeout": '"30s"',
    },
    # Daily API calls (429), workflow and storage quotas (403/429).
    "tenants": {
        "max_api_calls_per_day": "4000000000",
        "max_workflows_per_tenant": str(BIG),
        "max_storage_gb": str(BIG),
    },
    # Per-role workflow count (403 "limit") and executions per hour (429).
    "access.roles": {"max_workflows": str(BIG), "max_executions_per_hour": "1000000000"},
    # Open SSE streams per user and tenant.
    "realtime": {"max_connections_per_user": str(BIG), "max_connections_per_tenant": str(BIG)},
    # Agent sessions per user (429); 1000 is the highest value accepted.
    "runtime": {"max_sessions_per_user": "1000"},
    # Concurrent runs per process, tenant and user (429).
    "runtime.resource_limits.max_concurrent_workflows": {
        "process": str(BIG),
        "tenant": str(BIG),
        "user": str(BIG),
    },
}
# section -> keys removed. The memory watermark answers 503 when the
# machine (a debug build under CI load) is busy, not when the request is bad.
DROP = {"runtime.resource_limits": {"process_memory_watermark_mb"}}

HEADER = re.compile(r"\s*\[\[?\s*([A-Za-z0-9_.]+)\s*\]\]?\s*(#.*)?$")
KEY = re.compile(r"\s*([A-Za-z0-9_]+)\s*=")


def rewrite(section: str | None, block: list[str]) -> list[str]:
    """One section (its header and lines) with the edits above applied."""
    want = dict(SET.get(section or "", {}))
    drop = DROP.get(section or "", set())
    out = []
    for line in block:
        m = KEY.match(line)
        if m and m.group(1) in drop:
            continue
        if m and m.group(1) in want:
            line = f"{m.group(1)} = {want.pop(m.group(1))}"
        out.append(line)
    if want:
        last = max((i for i, l in enumerate(out) if KEY.match(l)), default=0)
        out[last + 1 : last + 1] = [f"{k} = {v}" for k, v in want.items()]
    return out


def main() -> None:
    src, dst = sys.argv[1:3]
    lines = open(src, encoding="utf-8").read().splitlines()
    out: list[str] = []
    section: str | None = None
    block: list[str] = []
    for line in lines:
        h = HEADER.match(line)
        if h:
            out.extend(rewrite(section, block))
            section, block = h.group(1), []
        block.append(line)
    out.extend(rewrite(section, block))
    with open(dst, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")

    # Read back: every limit above must be in force, the state in memory.
    c = tomllib.load(open(dst, "rb"))
    for k in ("per_ip", "per_user", "per_tenant"):
        q = c["rate_limit"][k]
        assert (q["rate"], q["per"], q["burst"]) == (BIG, "1s", BIG), (k, q)
    a = c["auth"]
    assert a["concurrent_sessions"] == BIG and a["max_login_attempts"] == BIG, a
    assert a["login_rate_per_ip"] == {"rate": BIG, "per": "1s", "burst": BIG}, a
    for t in c["tenants"]:
        assert t["max_api_calls_per_day"] == 4000000000, t
        assert t["max_workflows_per_tenant"] == BIG and t["max_storage_gb"] == BIG, t
    for r in c["access"]["roles"]:
        assert r["max_workflows"] == BIG and r["max_executions_per_hour"] == 1000000000, r
    assert c["realtime"]["max_connections_per_user"] == BIG, c["realtime"]
    assert c["runtime"]["max_sessions_per_user"] == 1000, c["runtime"]
    rl = c["runtime"]["resource_limits"]
    assert "process_memory_watermark_mb" not in rl, rl
    assert rl["max_concurrent_workflows"] == {"process": BIG, "tenant": BIG, "user": BIG}, rl
    assert "redis_url" not in c.get("state", {}), "the fuzz deployment runs on the memory backend"


if __name__ == "__main__":
    main()
