"""Connections, loading and timed queries against a pg_recall cluster."""
import time

import numpy as np
import psycopg
from pgvector import Vector
from pgvector.psycopg import register_vector


def connect(url, extension="pg_recall"):
    conn = psycopg.connect(url, autocommit=True)
    conn.execute(f"CREATE EXTENSION IF NOT EXISTS {extension}")
    register_vector(conn)
    return conn


def database_url(url, database):
    """`url` pointing at `database`, created first if it does not exist. pgvector's
    `vector` type and pg_recall's cannot share a database, so a comparison run keeps
    pgvector's tables in a database of their own on the same cluster."""
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{database}"')
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = database
    return psycopg.conninfo.make_conninfo(**info)


def load_table(conn, table, vectors, dims, force=False):
    """Creates `table(id bigint primary key, embedding vector(dims))` and binary-COPYs the
    vectors in, unless it already holds exactly these rows (so a second run reuses it).

    The column is `STORAGE PLAIN`: vectors over ~500 dimensions would otherwise be moved to
    TOAST, and every exact-scan row would cost a TOAST index lookup (measured: 6× slower on
    fashion-mnist, and the small heap also prevents a parallel scan)."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]
    if exists and not force:
        n = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        storage = conn.execute(
            "SELECT attstorage FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'embedding'",
            (table,)).fetchone()
        if n == len(vectors) and storage == ("p",):
            return False
    conn.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, embedding vector({dims}))")
    conn.execute(f"ALTER TABLE {table} ALTER COLUMN embedding SET STORAGE PLAIN")
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "vector"])
            for i, v in enumerate(vectors):
                copy.write_row([i, v])
    conn.execute(f"VACUUM ANALYZE {table}")
    return True


def timed_queries(conn, sql, queries, prepare=True):
    """Runs `sql` (one %s parameter: the query vector) for each query; returns (ids per
    query, latency ms per query). Server-side prepared, binary parameters and results; the
    vectors are converted to the adapter's type before timing starts, as an application
    holding its query vectors would."""
    ids, lat = [], []
    params = [Vector(np.asarray(q, dtype=np.float32)) for q in queries]
    with conn.cursor(binary=True) as cur:
        for q in params:
            t0 = time.perf_counter()
            cur.execute(sql, (q,), prepare=prepare)
            rows = cur.fetchall()
            lat.append((time.perf_counter() - t0) * 1000.0)
            ids.append(np.array([r[0] for r in rows], dtype=np.int64))
    return ids, np.array(lat)


def run_queries(url, sql, queries, setup, extension="pg_recall", warmup=None):
    """`timed_queries` on a fresh connection after the `setup` statements (GUCs) and, when
    given, an untimed run of the `warmup` queries: a new backend first maps each page of
    shared memory it touches and learns where index blocks sit in shared buffers, which a
    pooled connection has long done, so timing starts in the steady state."""
    conn = connect(url, extension)
    for s in setup:
        conn.execute(s)
    if warmup is not None:
        timed_queries(conn, sql, warmup)
    ids, lat = timed_queries(conn, sql, queries)
    conn.close()
    return ids, lat
