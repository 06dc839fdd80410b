"""The bench config: the demo config with every limit out of the way.

usage: python3 benches/lib/bench_config.py <demo config> <out> <key prefix>

Derived at run time from examples/config/enterprise.toml so it never goes
stale (per-IP, per-user and per-tenant rate limits at a million a second,
acme's daily quota at four billion, the given state key prefix); tomllib
then checks the result says what the benches assume. Used by
benches/fullstack.sh and benches/redis-failover.sh.
"""
import re, sys, tomllib
src, dst, prefix = sys.argv[1:4]
lines = open(src, encoding="utf-8").read().splitlines()
LIMITS = {"rate": "1000000", "per": '"1s"', "burst": "1000000"}
out, section, block = [], None, []
def flush():
    """Rewrite one section (a header and its lines) and append it to out."""
    global block
    if not block:
        return
    want = {}
    if section in ("rate_limit.per_ip", "rate_limit.per_user", "rate_limit.per_tenant"):
        want = dict(LIMITS)
    elif section == "tenants" and any(re.match(r'\s*id\s*=\s*"acme"', l) for l in block):
        want = {"max_api_calls_per_day": "4000000000"}
    elif section == "state":
        want = {"key_prefix": f'"{prefix}"'}
    for i, l in enumerate(block):
        m = re.match(r"\s*([A-Za-z0-9_]+)\s*=", l)
        if m and m.group(1) in want:
            block[i] = f"{m.group(1)} = {want.pop(m.group(1))}"
    # Keys the section did not have go after its last key line.
    last = max((i for i, l in enumerate(block) if re.match(r"\s*[A-Za-z0-9_]+\s*=", l)), default=0)
    block[last + 1:last + 1] = [f"{k} = {v}" for k, v in want.items()]
    out.extend(block)
    block = []
for l in lines:
    h = re.match(r"\s*\[\[?\s*([A-Za-z0-9_.]+)\s*\]\]?\s*(#.*)?$", l)
    if h:
        flush()
        section = h.group(1)
    block.append(l)
flush()
open(dst, "w", encoding="utf-8").write("\n".join(out) + "\n")
c = tomllib.load(open(dst, "rb"))
for k in ("per_ip", "per_user", "per_tenant"):
    q = c["rate_limit"][k]
    assert (q["rate"], q["per"], q["burst"]) == (1000000, "1s", 1000000), (k, q)
acme = [t for t in c["tenants"] if t["id"] == "acme"]
assert acme and acme[0]["max_api_calls_per_day"] == 4000000000, acme
assert c["state"]["key_prefix"] == prefix
assert c["auth"]["algorithm"] == "RS256", "the peers verify RS256"
