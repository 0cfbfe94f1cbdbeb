#!/usr/bin/env bash
# Installs pgvector 0.8.0 next to pg_recall, for benchmarks that compare the two within one
# run on one host (`make bench-compare`). It is never a dependency of pg_recall itself: the
# two extensions cannot share a database (both define `vector`), so the runner keeps
# pgvector's tables in a database of their own.
#
# The source is Debian's upstream tarball (package registries are the only network this
# project assumes), checked against a pinned SHA-256, built against the server's own headers
# with pgvector's portable flags (OPTFLAGS="" drops -march=native, as distribution packages
# do). Idempotent: an installed 0.8.0 is left alone.
set -euo pipefail

VERSION=0.8.0
SHA256=867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0
URL="http://deb.debian.org/debian/pool/main/p/pgvector/pgvector_${VERSION}.orig.tar.gz"
PG_CONFIG=/usr/bin/pg_config
CACHE_DIR="${PG_RECALL_CACHE:-$HOME/.cache/pg_recall}/pgvector"

sharedir=$("$PG_CONFIG" --sharedir)
if [ -f "$sharedir/extension/vector--${VERSION}.sql" ] && [ -f "$("$PG_CONFIG" --pkglibdir)/vector.so" ]; then
  echo "[pgvector] ${VERSION} already installed"
  exit 0
fi

mkdir -p "$CACHE_DIR"
tarball="$CACHE_DIR/pgvector_${VERSION}.orig.tar.gz"
if ! echo "$SHA256  $tarball" | sha256sum -c --quiet - >/dev/null 2>&1; then
  echo "[pgvector] fetching $URL"
  curl -fsSL -o "$tarball.tmp" "$URL"
  echo "$SHA256  $tarball.tmp" | sha256sum -c --quiet -
  mv "$tarball.tmp" "$tarball"
fi
src="$CACHE_DIR/pgvector-${VERSION}"
rm -rf "$src"
tar -xzf "$tarball" -C "$CACHE_DIR"
make -C "$src" PG_CONFIG="$PG_CONFIG" OPTFLAGS="" -j"$(nproc)" >"$CACHE_DIR/build.log" 2>&1 \
  || { tail -20 "$CACHE_DIR/build.log"; exit 1; }
make -C "$src" PG_CONFIG="$PG_CONFIG" OPTFLAGS="" install >>"$CACHE_DIR/build.log" 2>&1
echo "[pgvector] ${VERSION} installed"
