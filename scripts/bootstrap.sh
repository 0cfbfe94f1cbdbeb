#!/usr/bin/env bash
# Installs everything pg_recall needs to build, test and demo on Debian 12 as root.
# Idempotent: each step checks first, so a second run only verifies.
set -euo pipefail

PGVER=15
PGRX_VERSION=0.18.0
CACHE_DIR="${PG_RECALL_CACHE:-$HOME/.cache/pg_recall}"
mkdir -p "$CACHE_DIR"

log() { printf '[bootstrap] %s\n' "$*"; }

need_apt=()
pg_pkg_version=$(dpkg-query -W -f='${Version}' "postgresql-$PGVER" 2>/dev/null || true)
if [ -z "$pg_pkg_version" ]; then
  need_apt+=("postgresql-$PGVER")
fi
dev_version=$(dpkg-query -W -f='${Version}' "postgresql-server-dev-$PGVER" 2>/dev/null || true)
if [ -z "$dev_version" ] || { [ -n "$pg_pkg_version" ] && [ "$dev_version" != "$pg_pkg_version" ]; }; then
  # The server headers must match the running server exactly, or the module's ABI check fails.
  if [ -n "$pg_pkg_version" ]; then
    need_apt+=("postgresql-server-dev-$PGVER=$pg_pkg_version")
  else
    need_apt+=("postgresql-server-dev-$PGVER")
  fi
fi
for p in libclang-dev clang sudo dataset-fashion-mnist python3-venv; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
else
  log "Debian packages present"
fi

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
  log "cargo install cargo-pgrx $PGRX_VERSION"
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
else
  log "cargo-pgrx $PGRX_VERSION present"
fi

if ! grep -q "^pg$PGVER" "$HOME/.pgrx/config.toml" 2>/dev/null; then
  log "cargo pgrx init --pg$PGVER"
  cargo pgrx init --pg$PGVER "/usr/bin/pg_config"
else
  log "pgrx initialised for pg$PGVER"
fi

# Python for the client test and the demo/bench drivers, in a venv outside the work tree.
VENV="$CACHE_DIR/venv"
if [ ! -x "$VENV/bin/python" ]; then
  log "python venv at $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import pgvector, psycopg, numpy, pytest, matplotlib' 2>/dev/null; then
  log "pip install pgvector psycopg numpy pytest matplotlib"
  "$VENV/bin/pip" install -q --disable-pip-version-check pgvector "psycopg[binary]" numpy pytest matplotlib
else
  log "python packages present"
fi
log "done"
