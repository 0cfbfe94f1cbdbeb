#!/usr/bin/env bash
# A private PostgreSQL 15 cluster owned by the `postgres` OS user, for the demo and the
# benchmark runner. Usage: cluster.sh start|stop|status|port|url
#   PG_RECALL_DATA  data directory (default /var/tmp/pg_recall/demo, outside the work tree)
#   PG_RECALL_PORT  port (default: the one recorded in the data directory, else a free one)
#   PG_RECALL_HUGE_PAGES=0  do not reserve huge pages for shared_buffers (see reserve_huge_pages)
set -euo pipefail

PGBIN=/usr/lib/postgresql/15/bin
DATA="${PG_RECALL_DATA:-/var/tmp/pg_recall/demo}"
PORT_FILE="$DATA/.pg_recall_port"
HUGE_FILE="$DATA/.pg_recall_huge_pages"
SHARED_BUFFERS="${PG_RECALL_SHARED_BUFFERS:-4GB}"

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

# Reserves enough 2 MB huge pages for this cluster's shared memory when the machine lets us
# (root, a writable vm.nr_hugepages), and records how many it added so that `stop` gives them
# back. PostgreSQL's default `huge_pages = try` then maps shared_buffers on them; without,
# PostgreSQL falls back to 4 kB pages. An index scan reads a different shared buffer for
# nearly every element, and with 4 GB of 4 kB pages each read risks a TLB miss: 1M x 128
# top-500 loops took 14 % less backend CPU on huge pages (same binary, same queries, three
# restarts each way). Both engines of `make bench-compare` run on the same cluster.
reserve_huge_pages() {
  [ "${PG_RECALL_HUGE_PAGES:-1}" = 1 ] && [ -w /proc/sys/vm/nr_hugepages ] || return 0
  [ -f "$HUGE_FILE" ] && return 0
  local mb need total free added
  case "$SHARED_BUFFERS" in
    *GB) mb=$(( ${SHARED_BUFFERS%GB} * 1024 )) ;;
    *MB) mb=${SHARED_BUFFERS%MB} ;;
    *) return 0 ;;
  esac
  # shared_buffers plus PostgreSQL's other shared memory (about 3 %, and a fixed part).
  need=$(( mb / 2 + mb / 64 + 64 ))
  total=$(cat /proc/sys/vm/nr_hugepages)
  free=$(awk '/^HugePages_Free/ {print $2}' /proc/meminfo)
  [ "$free" -ge "$need" ] && return 0
  echo $(( total + need - free )) > /proc/sys/vm/nr_hugepages 2>/dev/null || return 0
  added=$(( $(cat /proc/sys/vm/nr_hugepages) - total ))
  [ "$added" -gt 0 ] && echo "$added" > "$HUGE_FILE"
  return 0
}

release_huge_pages() {
  [ -f "$HUGE_FILE" ] || return 0
  local added total
  added=$(cat "$HUGE_FILE")
  total=$(cat /proc/sys/vm/nr_hugepages)
  echo $(( total > added ? total - added : 0 )) > /proc/sys/vm/nr_hugepages 2>/dev/null || true
  rm -f "$HUGE_FILE"
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
shared_buffers = $SHARED_BUFFERS
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
    reserve_huge_pages
    as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w start >/dev/null
  fi
  echo "cluster running: data=$DATA port=$(port)"
}

stop() {
  if [ -f "$DATA/PG_VERSION" ] && as_pg "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    release_huge_pages
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
