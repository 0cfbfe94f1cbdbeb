"""ivfflat end to end: recall on real data with the self-chosen settings and with every list
probed, recall and completeness through delete/vacuum/reinsert, and cancelling a build."""
import json
import time

import numpy as np
import psycopg

from runner import datasets, db, truth
from test_hnsw import fashion, mean_recall  # noqa: F401 (fixture)


def test_fashion_mnist_subset_recall_with_defaults(conn, fashion):  # noqa: F811
    base, queries = fashion
    db.load_table(conn, "fmi", base, base.shape[1], force=True)
    conn.execute("CREATE INDEX fmi_idx ON fmi USING ivfflat (embedding vector_l2_ops)")
    info = conn.execute("SELECT recall.index_info('fmi_idx')").fetchone()[0]
    info = info if isinstance(info, dict) else json.loads(info)
    conn.execute("SET enable_seqscan = off")
    gt = truth.GroundTruth(base, np.arange(len(base)), queries, 10, "l2")
    r_default = mean_recall(conn, "fmi", queries, gt, 10)
    conn.execute(f"SET ivfflat.probes = {info['lists']}")
    r_all = mean_recall(conn, "fmi", queries, gt, 10)
    print(f"fashion-mnist 10k ivfflat {info}: recall@10 {r_default:.4f} (defaults), {r_all:.4f} (every list)")
    assert info["lists"] == 100 and info["default_probes"] == 10
    assert r_default >= 0.95
    assert r_all >= 0.999


def test_delete_vacuum_reinsert(conn):
    base, queries = datasets.gaussian_mixture(12000, 64, 100, centres=50, seed=3)
    db.load_table(conn, "ivd", base, 64, force=True)
    conn.execute("CREATE INDEX ivd_idx ON ivd USING ivfflat (embedding vector_l2_ops)")
    conn.execute("SET enable_seqscan = off")
    gt = truth.GroundTruth(base, np.arange(len(base)), queries, 10, "l2")
    r0 = mean_recall(conn, "ivd", queries, gt, 10)
    rng = np.random.default_rng(5)
    gone = rng.choice(len(base), size=len(base) * 3 // 10, replace=False)
    conn.execute("DELETE FROM ivd WHERE id = ANY(%s)", (gone.tolist(),))
    conn.execute("VACUUM ivd")
    got = conn.execute("SELECT count(*) FROM (SELECT id FROM ivd ORDER BY embedding <-> %s LIMIT 100000) s",
                       (queries[0],)).fetchone()[0]
    assert got == len(base) - len(gone)
    with conn.cursor() as cur:
        with cur.copy("COPY ivd (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "vector"])
            for i in gone:
                copy.write_row([int(i), base[i]])
    r1 = mean_recall(conn, "ivd", queries, gt, 10)
    print(f"ivfflat delete 30%/vacuum/reinsert: recall@10 {r0:.4f} -> {r1:.4f}")
    assert r0 >= 0.95
    assert r1 >= r0 - 0.02
    total = conn.execute("SELECT count(*) FROM (SELECT id FROM ivd ORDER BY embedding <-> %s LIMIT 100000) s",
                         (queries[1],)).fetchone()[0]
    assert total == len(base)


def test_build_can_be_cancelled_in_every_phase(conn):
    """A cancel (statement_timeout) at increasing points of a build — sampling, k-means, and
    assignment with the backend writing pages alongside the workers — stops it promptly, leaves
    no index behind, and the session stays usable."""
    base, _ = datasets.gaussian_mixture(100000, 96, 1, centres=50, seed=5)
    db.load_table(conn, "ivc", base, 96, force=True)
    for timeout_ms in (200, 600, 1200, 2000, 3000):
        conn.execute(f"SET statement_timeout = '{timeout_ms}ms'")
        t0 = time.perf_counter()
        try:
            conn.execute("CREATE INDEX ivc_ivf ON ivc USING ivfflat (embedding vector_l2_ops)")
            built = True
        except psycopg.errors.QueryCanceled:
            built = False
        assert time.perf_counter() - t0 < timeout_ms / 1000 + 10
        conn.execute("RESET statement_timeout")
        present = conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'ivc_ivf'").fetchone()[0]
        assert present == int(built)
        conn.execute("DROP INDEX IF EXISTS ivc_ivf")
    conn.execute("CREATE INDEX ivc_ivf ON ivc USING ivfflat (embedding vector_l2_ops)")
    assert conn.execute("SELECT count(*) FROM (SELECT id FROM ivc ORDER BY embedding <-> %s LIMIT 5) s",
                        (base[0],)).fetchone()[0] == 5
