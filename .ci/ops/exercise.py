#!/usr/bin/env python3
"""Cause the events behind the shipped dashboard's and alerts' metrics.

usage: exercise.py BASE_URL

Runs against a fresh reference deployment with the demo config
(examples/config/enterprise.toml, memory backend): logins that succeed,
fail, need MFA and lock an account; a session evicted by the
concurrent-session limit; authenticated calls allowed and denied; bad and
missing bearer tokens; a refresh token presented again after its grace
period; a workflow created and run to completion; finally a burst that
trips the per-IP rate limit. Every step checks its answer's status, so a
changed demo fails here with the step named, not later as a missing metric.
Uses the demo's public passwords (examples/README.md); tokens are never
printed. Exit 0 when every step answered as expected, else 1.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ left in .ci/api-fuzz
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "api-fuzz"))
from login import totp  # noqa: E402  (the fuzz harness's RFC 6238 helper)

BASE = ""


def call(method, path, body=None, token=None):
    """(status, parsed JSON body or None) of one request."""
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(BASE + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    except (urllib.error.URLError, OSError) as e:
        raise SystemExit(f"exercise: {method} {path}: {e}")
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def expect(step, got, *want):
    if got not in want:
        raise SystemExit(f"exercise: {step}: expected HTTP {' or '.join(map(str, want))}, got {got}")
    print(f"exercise: {step}: {got}")


def login(user, password, code=None):
    body = {"username": user, "password": password}
    if code:
        body["totp"] = code
    return call("POST", "/auth/login", body)


def main():
    global BASE
    BASE = sys.argv[1].rstrip("/")

    # Logins: success, failure, mfa_required.
    status, bob_pair = login("bob", "Bob-Demo-Passw0rd!")
    expect("login bob", status, 200)
    bob = bob_pair["access_token"]
    expect("login bob, wrong password", login("bob", "not-the-password")[0], 401)
    expect("login alice without her TOTP code", login("alice", "Alice-Demo-Passw0rd!")[0], 401)
    status, _ = login("alice", "Alice-Demo-Passw0rd!", totp("JBSWY3DPEHPK3PXP", time.time()))
    expect("login alice with her TOTP code", status, 200)

    # Lockout: five wrong passwords, then the right one is refused (locked).
    for i in range(5):
        expect(f"login frank, wrong password {i + 1}/5", login("frank", "wrong")[0], 401)
    expect("login frank while locked", login("frank", "Frank-Demo-Passw0rd!")[0], 423)

    # Concurrent sessions (3 in the demo): the fourth login evicts the oldest.
    for i in range(3):
        status, pair = login("bob", "Bob-Demo-Passw0rd!")
        expect(f"login bob again ({i + 2} sessions asked)", status, 200)
        bob = pair["access_token"]

    # Authenticated calls: allowed twice (token cache miss, then hit), denied.
    expect("GET /api/workflows as bob", call("GET", "/api/workflows", token=bob)[0], 200)
    expect("GET /api/workflows as bob again", call("GET", "/api/workflows", token=bob)[0], 200)
    expect(
        "POST /api/workflows as bob (no workflow:create)",
        call("POST", "/api/workflows", {"name": "etl", "nodes": [{"id": "a", "type": "transform"}]}, bob)[0],
        403,
    )
    # Token rejections: malformed and missing.
    expect("GET /api/workflows with a malformed token", call("GET", "/api/workflows", token="not-a-jwt")[0], 401)
    expect("GET /api/workflows without a token", call("GET", "/api/workflows")[0], 401)

    # A workflow created and run to completion (runtime metrics).
    status, dave_pair = login("dave", "Dave-Demo-Passw0rd!")
    expect("login dave", status, 200)
    dave = dave_pair["access_token"]
    workflow = {
        "name": "ops-check-order-lines",
        "inputs": ["order"],
        "nodes": [
            {"id": "lines", "type": "transform", "config": {"expression": "o.items[?qty > `0`]"}},
            {"id": "count", "type": "transform", "config": {"expression": "length(l)"}},
        ],
        "connections": [
            {"from": {"input": "order"}, "to": {"node": "lines", "input": "o"}},
            {"from": {"node": "lines", "output": "result"}, "to": {"node": "count", "input": "l"}},
        ],
        "outputs": {"count": {"node": "count", "output": "result"}},
    }
    status, created = call("POST", "/api/workflows", workflow, dave)
    expect("POST /api/workflows as dave", status, 201)
    status, session = call("POST", "/api/sessions", {}, dave)
    expect("POST /api/sessions as dave", status, 201, 200)
    status, run = call(
        "POST",
        f"/api/sessions/{session['id']}/executions",
        {"workflow_id": created["id"], "inputs": {"order": {"items": [{"qty": 2}, {"qty": 0}]}}},
        dave,
    )
    expect("POST /api/sessions/{id}/executions as dave", status, 202)
    for _ in range(100):
        status, record = call("GET", f"/api/executions/{run['run_id']}", token=dave)
        if status == 200 and record.get("status") not in ("pending", "running"):
            break
        time.sleep(0.1)
    if record.get("status") != "completed":
        raise SystemExit(f"exercise: the workflow run ended {record.get('status')!r}, not completed")
    print("exercise: workflow run: completed")

    # Refresh-token reuse: rotate, wait past the 2 s grace, present the old one.
    old = dave_pair["refresh_token"]
    expect("POST /auth/refresh", call("POST", "/auth/refresh", {"refresh_token": old})[0], 200)
    time.sleep(2.5)
    expect("POST /auth/refresh with the rotated token", call("POST", "/auth/refresh", {"refresh_token": old})[0], 401)

    # Per-IP rate limit (burst 100 in the demo): requests until one is refused.
    for i in range(400):
        status, _ = call("GET", "/api/workflows")
        if status == 429:
            print(f"exercise: rate limit: 429 after {i + 1} requests")
            break
    else:
        raise SystemExit("exercise: the per-IP rate limit never answered 429 in 400 requests")


if __name__ == "__main__":
    main()
