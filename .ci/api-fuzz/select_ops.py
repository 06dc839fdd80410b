#!/usr/bin/env python3
"""Decide, from the served OpenAPI document, what the fuzzer may call.

usage: select_ops.py OPENAPI_JSON GATEWAY_TOML USER...

Prints the per-run `[[operations]]` entries of schemathesis.toml on stdout
and a table of every operation (fuzzed, as whom, or left out and why) on
stderr. The rules read paths, methods, summaries, descriptions and
response codes, not a fixed list of operations, so a reworked document
with new or renamed operations is sorted the same way:

Left out (they would end the harness's own session or change other
users, so every later request would test a dead token, or the demo):
  - logout, password change, revoking one of the caller's sessions (the
    fuzzer reuses ids from earlier responses, e.g. GET /auth/sessions,
    and could revoke its own);
  - user administration: paths under /auth/users/ and any operation whose
    text names `user:manage`;
  - `system:configure` operations (tenant administration, publishing
    events): they change the deployment, and their answer depends on the
    clock (demo policy `time_based`, 09-17 UTC on weekdays). An operation
    that names another permission as an alternative (the read-only
    `audit:view` or `system:configure` of access explain) is fuzzed;
  - erasure (a path or summary naming erasure) and tenant administration
    (/api/tenants..., /api/admin/..., /admin/...);
  - WebSocket upgrades (a declared 101): a request/response client cannot
    do the handshake, and a plain GET is refused (400) by design.

Fuzzed with a bounded read: event streams (200 text/event-stream), read
for at most 2 s each; the demo stream sends nothing but a keep-alive
comment every 25 s, so each such request costs the full 2 s, and they get
fewer examples.

As whom: the admin's token (on every request, from schemathesis.toml)
unless the operation's text names permissions (of the config's roles) the
admin's roles lack and another of the given demo USERs holds them all:
then that user's token (`${KAILASH_FUZZ_TOKEN_<USER>}`), so the operation's
success answers are checked too, not only its 403.
"""

import json
import re
import sys
import tomllib

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
SSE_TIMEOUT = 2
SSE_MAX_EXAMPLES = 5


def permissions_named(op: dict, known: set[str]) -> set[str]:
    """The permissions of the config's roles this operation's text names."""
    text = " ".join(str(op.get(k, "")) for k in ("summary", "description"))
    return {p for p in known if re.search(rf"(?<![\w:]){re.escape(p)}(?![\w:])", text)}


def excluded(method: str, path: str, op: dict, named: set[str]) -> str | None:
    """Why this operation is left out, or None."""
    text = " ".join(str(op.get(k, "")) for k in ("summary", "description", "operationId"))
    if path == "/auth/logout":
        return "ends the token's session"
    if path == "/auth/password":
        return "changes the user's password and ends all their sessions"
    if method == "delete" and path.startswith("/auth/sessions/"):
        return "revokes a session of the caller (could be the token's own)"
    if path.startswith("/auth/users/") or "user:manage" in text:
        return "user:manage: changes other users"
    if "system:configure" in named and len(named) == 1:
        return "system:configure: changes the deployment; clock-dependent (time_based)"
    if re.search(r"erasure|\berase", f"{path} {text}", re.I):
        return "erasure"
    if re.match(r"^/(api/)?(admin|tenants)(/|$)", path):
        return "tenant administration"
    if "101" in op.get("responses", {}):
        return "WebSocket upgrade: not fuzzable by a request/response client"
    return None


def is_event_stream(op: dict) -> bool:
    for code, resp in op.get("responses", {}).items():
        if code.startswith("2") and "text/event-stream" in resp.get("content", {}):
            return True
    return False


def main() -> int:
    doc = json.load(open(sys.argv[1], encoding="utf-8"))
    config = tomllib.load(open(sys.argv[2], "rb"))
    users = [u.lower() for u in sys.argv[3:]]
    roles = {r["name"]: set(r.get("permissions", [])) for r in config["access"]["roles"]}
    known = set().union(*roles.values())
    active = {t["id"] for t in config.get("tenants", []) if t.get("active", True)}
    grants = {}
    for u in config["users"]:
        if u["username"] in users and u.get("tenant") in active:
            grants[u["username"]] = set().union(*(roles.get(r, set()) for r in u["roles"]))
    admin = users[0]

    entries, table, fuzzed = [], [], 0
    for path, item in sorted(doc.get("paths", {}).items()):
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            label = f"{method.upper()} {path}"
            needed = permissions_named(op, known)
            why = excluded(method, path, op, needed)
            if why:
                entries.append(f'[[operations]]\ninclude-name = "{label}"\nenabled = false\n')
                table.append(f"  skip  {label:<42} {why}")
                continue
            fuzzed += 1
            settings, notes = [], []
            if needed and not needed <= grants.get(admin, set()):
                who = next((u for u in users[1:] if needed <= grants.get(u, set())), None)
                if who:
                    var = f"KAILASH_FUZZ_TOKEN_{who.upper()}"
                    settings.append(f'headers = {{ Authorization = "Bearer ${{{var}}}" }}')
                    notes.append(f"as {who} (needs {', '.join(sorted(needed))})")
                else:
                    notes.append(f"as {admin}; no demo user holds {', '.join(sorted(needed))}")
            else:
                notes.append(f"as {admin}")
            if is_event_stream(op):
                settings += [
                    f"request-timeout = {SSE_TIMEOUT}",
                    "max-stream-events = 1",
                    f"generation.max-examples = {SSE_MAX_EXAMPLES}",
                ]
                notes.append(f"event stream: read {SSE_TIMEOUT} s, {SSE_MAX_EXAMPLES} examples")
            if settings:
                entries.append(
                    f'[[operations]]\ninclude-name = "{label}"\n' + "\n".join(settings) + "\n"
                )
            table.append(f"  fuzz  {label:<42} {'; '.join(notes)}")
    print("\n".join(entries))
    print(f"operations: {fuzzed} fuzzed, {len(table) - fuzzed} left out", file=sys.stderr)
    print("\n".join(table), file=sys.stderr)
    return 0 if fuzzed else 1


if __name__ == "__main__":
    sys.exit(main())
