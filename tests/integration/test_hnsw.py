"""hnsw end to end: recall on real data, recall and size through delete/vacuum/reinsert,
cancelling a build. (Replication and crash safety: test_durability.py.)"""

import time

import numpy as np
import psycopg
import pytest

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
