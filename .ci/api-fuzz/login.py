#!/usr/bin/env python3
"""Log a demo user in and print the access token.

usage: login.py BASE_URL USERNAME PASSWORD [TOTP_SECRET]

With TOTP_SECRET (base32), the current RFC 6238 code (SHA-1, 30 s, 6
digits) goes along, as role `admin` needs one. The token is printed on
stdout and nothing else; on a refusal the status and the problem body
(which never holds the password) go to stderr and the exit code is 1.
"""

import base64
import hmac
import json
import struct
import sys
import time
import urllib.error
import urllib.request


def totp(secret: str, at: float) -> str:
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at) // 30), "sha1").digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


def main() -> int:
    base, username, password = sys.argv[1:4]
    body = {"username": username, "password": password}
    if len(sys.argv) > 4:
        body["totp"] = totp(sys.argv[4], time.time())
    req = urllib.request.Request(
        base.rstrip("/") + "/auth/login",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            token = json.load(resp).get("access_token")
    except urllib.error.HTTPError as e:
        print(f"login as {username}: HTTP {e.code}: {e.read()[:500]!r}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError, ValueError) as e:
        print(f"login as {username}: {e}", file=sys.stderr)
        return 1
    if not isinstance(token, str) or not token:
        print(f"login as {username}: no access_token in the answer", file=sys.stderr)
        return 1
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
