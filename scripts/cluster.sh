#!/usr/bin/env bash
# A private PostgreSQL 15 cluster owned by the `postgres` OS user, for the demo and the
# benchmark runner. Usage: cluster.sh start|stop|status|port|url
#   PG_RECALL_DATA  data directory (default /var/tmp/pg_recall/demo, outside the work tree)
#   PG_RECALL_PORT  port (default: the one recorded in the data directory, else a free one)
set -euo pipefail

PGBIN=/usr/lib/postgresql/15/bin
DATA="${PG_RECALL_DATA:-/var/tmp/pg_recall/demo}"
PORT_FILE="$DATA/.pg_recall_port"

as_pg() { sudo -u postgres -- "$@"; }

free_port() {
  python3 - <<'PY'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

port() {
  if [ -n "${PG_RECALL_PORT:-}" ]; then echo "$PG_RECALL_PORT"; return; fi
  if [ -f "$PORT_FILE" ]; then cat "$PORT_FILE"; return; fi
  free_port
}

start() {
  mkdir -p "$(dirname "$DATA")"
  chown postgres:postgres "$(dirname "$DATA")"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    mkdir -p "$DATA" && chown postgres:postgres "$DATA"
    as_pg "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 >/dev/null
    p=$(port)
    echo "$p" > "$PORT_FILE"
    cat >> "$DATA/postgresql.conf" <<CONF
port = $p
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DATA'
shared_buffers = ${PG_RECALL_SHARED_BUFFERS:-4GB}
maintenance_work_mem = 4GB
max_parallel_maintenance_workers = 1
work_mem = 64MB
jit = off
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 8GB
CONF
  fi
  if ! as_pg "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w start >/dev/null
  fi
  echo "cluster running: data=$DATA port=$(port)"
}

stop() {
  if [ -f "$DATA/PG_VERSION" ] && as_pg "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    echo "cluster stopped: data=$DATA"
  else
    echo "cluster not running: data=$DATA"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) as_pg "$PGBIN/pg_ctl" -D "$DATA" status ;;
  port) port ;;
  url) echo "postgresql://postgres@127.0.0.1:$(port)/postgres" ;;
  *) echo "usage: $0 start|stop|status|port|url" >&2; exit 2 ;;
esac
