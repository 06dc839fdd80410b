#!/usr/bin/env bash
# Three instances of the reference deployment behave as one: they share a
# signing key and one Redis, and this script spreads a client over all
# three to show it (the automated version, with more cases, is the test
# `three_instances_behave_as_one` in examples/tests/demo_access/).
#
# usage: examples/three-instances.sh            # builds the binary first
#   BIN=target/release/enterprise_gateway      # use this binary instead
#   REDIS_URL=redis://127.0.0.1:6379           # the shared Redis (default)
#
# Needs curl and jq. Listens on three spare loopback ports, writes to a
# temporary directory, uses a fresh Redis key prefix, and stops everything
# it started (by PID) when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
if [ -z "${BIN:-}" ]; then
  cargo build --release -p kailash-examples --bin enterprise_gateway
  BIN=target/release/enterprise_gateway
fi
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

spare_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Every instance: the demo config, state in Redis under one prefix, this
# script trusted as the proxy (X-Forwarded-For names the client).
export KAILASH_STATE__REDIS_URL="$REDIS_URL"
export KAILASH_STATE__KEY_PREFIX="kailash-three-$$:"
export KAILASH_SERVER__TRUSTED_PROXIES='["127.0.0.1/32"]'
export RUST_LOG=warn

ports=()
start() { # <name>
  local port
  port=$(spare_port)
  mkdir -p "$work/$1"
  "$BIN" --listen "127.0.0.1:$port" --data-dir "$work/$1" 2>"$work/$1.log" &
  pids+=("$!")
  for _ in $(seq 1 300); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/health/ready" 2>/dev/null; then
      ports+=("$port")
      echo "instance $1 on 127.0.0.1:$port (pid $!)"
      return
    fi
    sleep 0.1
  done
  echo "instance $1 did not become ready; its log:" >&2
  cat "$work/$1.log" >&2
  exit 1
}

start 1
# The first start generated the signing key; the others share the file.
export KAILASH_AUTH__SIGNING_KEY="$work/1/keys/signing-rs256.pem"
start 2
start 3

url() { echo "http://127.0.0.1:${ports[$1 - 1]}$2"; } # <instance 1-3> <path>
login() { # <instance> <user> <password> -> access token
  curl -fsS "$(url "$1" /auth/login)" -H 'Content-Type: application/json' \
    -H "X-Forwarded-For: 10.0.0.$((RANDOM % 250 + 1))" \
    -d "{\"username\":\"$2\",\"password\":\"$3\"}" | jq -r .access_token
}
status() { # <instance> <path> <token> [client ip]
  curl -s -o /dev/null -w '%{http_code}' "$(url "$1" "$2")" \
    -H "Authorization: Bearer $3" -H "X-Forwarded-For: ${4:-10.0.1.$((RANDOM % 250 + 1))}"
}

echo
echo "== the session cap (3) holds across instances"
tokens=()
for i in 1 2 3 1; do tokens+=("$(login "$i" dave Dave-Demo-Passw0rd!)"); done
for i in 1 2 3; do
  echo "instance $i: oldest session $(status "$i" /api/workflows "${tokens[0]}"), newest three $(status "$i" /api/workflows "${tokens[1]}") $(status "$i" /api/workflows "${tokens[2]}") $(status "$i" /api/workflows "${tokens[3]}")"
done

echo
echo "== a logout on instance 3 ends the session on all three at once"
bob=$(login 1 bob Bob-Demo-Passw0rd!)
echo "before: $(status 1 /api/reports "$bob") $(status 2 /api/reports "$bob") $(status 3 /api/reports "$bob")"
curl -fsS -o /dev/null -X POST "$(url 3 /auth/logout)" -H "Authorization: Bearer $bob"
echo "after:  $(status 1 /api/reports "$bob") $(status 2 /api/reports "$bob") $(status 3 /api/reports "$bob")"

echo
echo "== one client's per-IP limit (600/min, bursts of 100) is one bucket, not three"
bob=$(login 2 bob Bob-Demo-Passw0rd!)
admitted=0
for n in $(seq 0 149); do
  code=$(status $((n % 3 + 1)) /api/reports "$bob" 10.9.9.9)
  [ "$code" = 200 ] && admitted=$((admitted + 1))
done
echo "150 requests round-robin over three instances: $admitted admitted (100 plus what refilled meanwhile)"
