#!/usr/bin/env python3
"""Summarise a schemathesis NDJSON event report.

usage: summary.py EVENTS_NDJSON

Prints the number of requests sent, the operations they covered, failures
per check (failing requests, and distinct failures), and one line per
distinct failure: operation, status, check, and the reason (the server's
problem `detail` where it sent one, else schemathesis's message), sorted
by operation. Exit code 1 when any check failed or the report is missing,
else 0.
"""

import base64
import collections
import json
import re
import sys

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
)


# Generated values in messages, so one failure is listed once however many
# random field names or offsets it was found with.
NORMALISE = [
    (re.compile(r" at line \d+ column \d+"), ""),
    # Up to the serde message's next part: a generated name may hold a backtick.
    (re.compile(r"unknown field `.*?`(?=, expected| at line|$)"), "unknown field `…`"),
    (re.compile(r"Hint: The request body contains \d+ additional propert.*"),
     "additional properties (the schema allows them) refused"),
]
NAME = re.compile(r"[A-Za-z0-9_.:*/{}-]+")


def quoted(q: str) -> str:
    """A `quoted` part: kept when it is a plain name, else its generated part elided."""
    if NAME.fullmatch(q) or q == "…":
        return q
    head = q.split(".")[0]
    return f"{head}.…" if "." in q and NAME.fullmatch(head) else "…"


def normalise(text: str) -> str:
    for pattern, repl in NORMALISE:
        text = pattern.sub(repl, text)
    parts = text.split("`")
    if len(parts) % 2 == 1:  # backticks paired: every odd part is quoted
        parts = [quoted(p) if i % 2 else p for i, p in enumerate(parts)]
    return "`".join(parts)


def reason(check: dict, response: dict | None) -> str:
    """One line saying why: schemathesis's message, plus the problem detail."""
    failure = check.get("failure_info", {}).get("failure", {})
    lines = [l for l in str(failure.get("message", "")).splitlines() if l.strip()]
    why = failure.get("title", check["name"])
    # The line naming what was wrong (an invalid component, a missing header…).
    extra = [l.strip() for l in lines[1:] if not l.startswith(("Expected:", "Received:"))]
    # "Invalid component: parameter `limit` in query - violates `maximum` at …":
    # one failure however the generator phrased the violation.
    extra = [l.split(" - ")[0] if l.startswith("Invalid component:") else l for l in extra]
    if lines and not extra and lines[0] != why:
        extra = [lines[0].strip()]
    if extra:
        # Schemas and values span lines; one line each, spaces collapsed.
        why += ": " + normalise(re.sub(r"\s+", " ", " ".join(extra)))[:200]
    if response and response.get("content"):
        try:
            raw = base64.b64decode(response["content"].get("$base64", ""))
            detail = json.loads(raw).get("detail")
        except (ValueError, AttributeError, TypeError):
            detail = None
        if detail:
            why += f' — "{normalise(str(detail))[:160]}"'
    return why


def main() -> int:
    try:
        events = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
    except OSError as e:
        print(f"api-fuzz summary: no report: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"api-fuzz summary: the report is cut short ({e}); disk full?", file=sys.stderr)
        return 1
    requests, operations = 0, set()
    failing = collections.Counter()  # check -> failing requests
    distinct: dict[tuple, int] = {}  # (op, status, check, reason) -> requests
    stop = None
    for e in events:
        if "EngineFinished" in e:
            stop = e["EngineFinished"].get("stop_reason")
        s = e.get("ScenarioFinished")
        if not s:
            continue
        rec = s.get("recorder", {})
        label = rec.get("label")
        interactions = rec.get("interactions", {})
        requests += len(interactions)
        if interactions:
            operations.add(label)
        for case_id, checks in rec.get("checks", {}).items():
            response = (interactions.get(case_id) or {}).get("response") or {}
            for check in checks:
                if check.get("status") != "failure":
                    continue
                failing[check["name"]] += 1
                key = (label, response.get("status_code"), check["name"], reason(check, response))
                distinct[key] = distinct.get(key, 0) + 1
    print()
    print("=== API contract fuzz summary")
    print(f"requests generated and sent: {requests}")
    print(f"operations covered: {len(operations)}")
    if stop and stop != "completed":
        print(f"run stopped early: {stop}")
    per_check = collections.Counter(k[2] for k in distinct)
    print("failures per check (failing requests / distinct failures):")
    for name in sorted(set(CHECKS) | set(failing)):
        print(f"  {name:<30} {failing[name]:>5} / {per_check[name]}")
    total = sum(failing.values())
    print(f"  {'total':<30} {total:>5} / {len(distinct)}")
    if distinct:
        print("distinct failures (operation | status | check | reason | requests):")
        for (label, status, name, why), n in sorted(distinct.items(), key=lambda kv: (kv[0][0], kv[0][2], str(kv[0][1]), kv[0][3])):
            print(f"  {label} | {status} | {name} | {why} | {n}")
    return 1 if total or not requests else 0


if __name__ == "__main__":
    sys.exit(main())
