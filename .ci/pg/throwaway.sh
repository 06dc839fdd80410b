#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for outage tests, never the shared one:
#   throwaway.sh init DIR PORT   create a cluster in DIR listening on 127.0.0.1:PORT
#   throwaway.sh start DIR       start it (waits until it accepts connections)
#   throwaway.sh stop DIR        stop it abruptly (-m immediate: a crash, not a shutdown)
#   throwaway.sh destroy DIR     stop it if running and delete DIR
# As root it runs the server as the `postgres` user (PostgreSQL refuses root).
set -euo pipefail
BIN=${KAILASH_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$BIN/pg_ctl" ] || { echo "no PostgreSQL server binaries (set KAILASH_PG_BIN)" >&2; exit 2; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
dir=$2
case "$1" in
  init)
    port=$3
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_pg "$BIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1
    cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = off
shared_buffers = 16MB
max_connections = 50
CONF
    ;;
  start)
    as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start >/dev/null
    ;;
  stop)
    as_pg "$BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
    ;;
  destroy)
    as_pg "$BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *) echo "usage: $0 init|start|stop|destroy DIR [PORT]" >&2; exit 2 ;;
esac
