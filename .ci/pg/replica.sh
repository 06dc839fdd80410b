#!/usr/bin/env bash
# A throwaway primary with a streaming hot standby, for the routing tests
# (never the shared server on 5432):
#   replica.sh init DIR PRIMARY_PORT REPLICA_PORT
#                           create a primary in DIR/primary, start it, clone it
#                           with pg_basebackup -R into DIR/replica and start
#                           that as a hot standby streaming from the primary
#   replica.sh stop-replica DIR    stop the standby abruptly (an outage)
#   replica.sh start-replica DIR   start it again (it catches up by itself)
#   replica.sh pause-replay DIR    stop applying WAL on the standby (lag)
#   replica.sh resume-replay DIR   apply it again
#   replica.sh destroy DIR         stop both and delete DIR
# As root it runs the servers as the `postgres` user (PostgreSQL refuses root).
set -euo pipefail
BIN=${KAILASH_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$BIN/pg_ctl" ] || { echo "no PostgreSQL server binaries (set KAILASH_PG_BIN)" >&2; exit 2; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
dir=$2
psql_replica() {
  as_pg "$BIN/psql" -h "$dir" -p "$(cat "$dir/replica.port")" -U postgres -d postgres -qAtc "$1" >/dev/null
}
case "$1" in
  init)
    pport=$3 rport=$4
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_pg "$BIN/initdb" -D "$dir/primary" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1
    cat >>"$dir/primary/postgresql.conf" <<CONF
port = $pport
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = off
shared_buffers = 16MB
max_connections = 60
wal_level = replica
max_wal_senders = 4
hot_standby = on
CONF
    as_pg "$BIN/pg_ctl" -D "$dir/primary" -l "$dir/primary.log" -w -t 30 start >/dev/null
    as_pg "$BIN/pg_basebackup" -h 127.0.0.1 -p "$pport" -U postgres -D "$dir/replica" -R -X stream >"$dir/basebackup.log" 2>&1
    echo "port = $rport" >>"$dir/replica/postgresql.conf"
    echo "$rport" >"$dir/replica.port"
    as_pg "$BIN/pg_ctl" -D "$dir/replica" -l "$dir/replica.log" -w -t 30 start >/dev/null
    ;;
  stop-replica)
    as_pg "$BIN/pg_ctl" -D "$dir/replica" -m immediate -w stop >/dev/null
    ;;
  start-replica)
    as_pg "$BIN/pg_ctl" -D "$dir/replica" -l "$dir/replica.log" -w -t 30 start >/dev/null
    ;;
  pause-replay)
    psql_replica "SELECT pg_wal_replay_pause()"
    ;;
  resume-replay)
    psql_replica "SELECT pg_wal_replay_resume()"
    ;;
  destroy)
    as_pg "$BIN/pg_ctl" -D "$dir/replica" -m immediate -w stop >/dev/null 2>&1 || true
    as_pg "$BIN/pg_ctl" -D "$dir/primary" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *) echo "usage: $0 init DIR PRIMARY_PORT REPLICA_PORT | stop-replica|start-replica|pause-replay|resume-replay|destroy DIR" >&2; exit 2 ;;
esac
