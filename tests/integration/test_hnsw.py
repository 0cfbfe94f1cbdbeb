"""hnsw end to end: recall on real data, recall and size through delete/vacuum/reinsert,
a streaming replica, and kill -9 during concurrent inserts."""
import threading
import time

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from pgcluster import Cluster
from runner import datasets, db, truth


def mean_recall(conn, table, queries, gt, k, op="<->"):
    sql = f"SELECT id FROM {table} ORDER BY embedding {op} %s LIMIT {k}"
    ids, _ = db.timed_queries(conn, sql, queries)
    return float(np.mean([gt.recall(i, r) for i, r in enumerate(ids)]))


@pytest.fixture(scope="module")
def fashion():
    base, queries = datasets.fashion_mnist()
    return base[:10000], queries[:100]


def test_fashion_mnist_subset_recall(conn, fashion):
    base, queries = fashion
    db.load_table(conn, "fm", base, base.shape[1], force=True)
    conn.execute("CREATE INDEX ON fm USING hnsw (embedding vector_l2_ops)")
    conn.execute("SET enable_seqscan = off")
    gt = truth.GroundTruth(base, np.arange(len(base)), queries, 10, "l2")
    r_default = mean_recall(conn, "fm", queries, gt, 10)
    conn.execute("SET hnsw.ef_search = 200")
    r_200 = mean_recall(conn, "fm", queries, gt, 10)
    print(f"fashion-mnist 10k: recall@10 {r_default:.4f} (ef_search 40), {r_200:.4f} (ef_search 200)")
    assert r_default >= 0.95
    assert r_200 >= 0.99


def test_delete_vacuum_reinsert_keeps_recall_and_size(conn):
    base, queries = datasets.gaussian_mixture(12000, 64, 100, centres=50, seed=3)
    ids = np.arange(len(base))
    db.load_table(conn, "dv", base, 64, force=True)
    conn.execute("CREATE INDEX dv_idx ON dv USING hnsw (embedding vector_l2_ops)")
    conn.execute("SET enable_seqscan = off")
    gt = truth.GroundTruth(base, ids, queries, 10, "l2")
    r0 = mean_recall(conn, "dv", queries, gt, 10)
    size0 = conn.execute("SELECT pg_relation_size('dv_idx')").fetchone()[0]

    rng = np.random.default_rng(5)
    gone = rng.choice(len(base), size=len(base) * 3 // 10, replace=False)
    conn.execute("DELETE FROM dv WHERE id = ANY(%s)", (gone.tolist(),))
    conn.execute("VACUUM dv")
    # Deleted rows never come back from the index.
    got = conn.execute("SELECT count(*) FROM (SELECT id FROM dv ORDER BY embedding <-> %s LIMIT 100000) s",
                       (queries[0],)).fetchone()[0]
    assert got == len(base) - len(gone)
    # Re-insert the same vectors under the same ids.
    with conn.cursor() as cur:
        with cur.copy("COPY dv (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "vector"])
            for i in gone:
                copy.write_row([int(i), base[i]])
    conn.execute("VACUUM dv")
    r1 = mean_recall(conn, "dv", queries, gt, 10)
    size1 = conn.execute("SELECT pg_relation_size('dv_idx')").fetchone()[0]
    print(f"delete 30%/vacuum/reinsert: recall@10 {r0:.4f} -> {r1:.4f}, size {size0} -> {size1} ({size1 / size0:.3f}x)")
    assert r1 >= r0 - 0.02
    assert size1 <= 1.05 * size0
    total = conn.execute("SELECT count(*) FROM (SELECT id FROM dv ORDER BY embedding <-> %s LIMIT 100000) s",
                         (queries[1],)).fetchone()[0]
    assert total == len(base)


def test_build_can_be_cancelled(conn):
    """A cancel (here: statement_timeout) stops the parallel graph build promptly, and the
    session stays usable."""
    base, _ = datasets.gaussian_mixture(60000, 64, 1, centres=50, seed=4)
    db.load_table(conn, "cb", base, 64, force=True)
    conn.execute("SET statement_timeout = '1s'")
    t0 = time.perf_counter()
    with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
        conn.execute("CREATE INDEX ON cb USING hnsw (embedding vector_l2_ops) WITH (ef_construction = 400)")
    assert time.perf_counter() - t0 < 10
    conn.execute("RESET statement_timeout")
    assert conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'cb' AND indexdef LIKE '%hnsw%'").fetchone()[0] == 0


def indexed_table(conn, rows, dims):
    """pg_recall in a fresh cluster: table `rp` with `rows` and an hnsw index on it."""
    conn.execute("CREATE EXTENSION pg_recall")
    register_vector(conn)
    db.load_table(conn, "rp", rows, dims)
    conn.execute("CREATE INDEX ON rp USING hnsw (embedding vector_l2_ops)")


def query_all(conn, queries, k=20):
    conn.execute("SET enable_seqscan = off")
    return [[r[0] for r in conn.execute(f"SELECT id FROM rp ORDER BY embedding <-> %s LIMIT {k}", (q,)).fetchall()]
            for q in queries]


def test_streaming_replica_returns_primary_results():
    primary = Cluster("primary").init().start()
    replica = Cluster("replica")
    try:
        base, queries = datasets.gaussian_mixture(6000, 32, 20, centres=20, seed=9)
        with primary.connect() as p:
            indexed_table(p, base[:4000], 32)
            replica.replica_of(primary).start()
            # Inserts, deletes and vacuum after the replica started: all through WAL.
            with p.cursor() as cur:
                with cur.copy("COPY rp (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "vector"])
                    for i in range(4000, 6000):
                        copy.write_row([i, base[i]])
            p.execute("DELETE FROM rp WHERE id % 7 = 0")
            p.execute("VACUUM rp")
            lsn = p.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
            expected = query_all(p, queries)
        with replica.connect() as r:
            register_vector(r)
            for _ in range(200):
                if r.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
                    break
                time.sleep(0.1)
            got = query_all(r, queries)
        assert got == expected
    finally:
        replica.destroy()
        primary.destroy()


def test_kill_9_during_concurrent_inserts_leaves_a_consistent_index():
    c = Cluster("crash").init().start()
    try:
        base, queries = datasets.gaussian_mixture(20000, 32, 5, centres=20, seed=11)
        with c.connect() as p:
            indexed_table(p, base[:2000], 32)

        def writer(start):
            try:
                with c.connect() as w:
                    register_vector(w)
                    for i in range(start, 20000, 2):
                        w.execute("INSERT INTO rp VALUES (%s, %s)", (i, base[i]))
            except psycopg.Error:
                pass  # the server died under us: expected

        threads = [threading.Thread(target=writer, args=(2000 + t,)) for t in range(2)]
        for t in threads:
            t.start()
        time.sleep(3)
        c.kill9()
        for t in threads:
            t.join()
        c.start()
        with c.connect() as p:
            register_vector(p)
            n = p.execute("SELECT count(*) FROM rp").fetchone()[0]
            assert n > 2000, "some inserts should have committed before the kill"
            p.execute("SET enable_seqscan = off")
            for q in queries:
                got = p.execute("SELECT count(*) FROM (SELECT id FROM rp ORDER BY embedding <-> %s LIMIT 1000000) s",
                                (q,)).fetchone()[0]
                assert got == n, f"index scan reached {got} of {n} rows"
            # And new inserts still work after recovery.
            p.execute("INSERT INTO rp VALUES (1000000, %s)", (base[0],))
            top = p.execute("SELECT id FROM rp ORDER BY embedding <-> %s LIMIT 2", (base[0],)).fetchall()
            assert {r[0] for r in top} == {0, 1000000}
    finally:
        c.destroy()
