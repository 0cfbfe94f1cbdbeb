"""Both access methods through WAL: a streaming replica answers like the primary after a
build, inserts, deletes and vacuum; kill -9 during concurrent inserts leaves a consistent
index; kill -9 right after a build recovers it from WAL. 64 dimensions and builds of 2,000
rows or more, so hnsw stores 8-bit codes as it does for real embeddings."""
import os
import threading
import time

import psycopg
import pytest
from pgvector.psycopg import register_vector

from pgcluster import Cluster
from runner import datasets, db

AMS = ["hnsw", "ivfflat"]


def loaded_table(conn, rows, dims):
    """pg_recall in a fresh cluster: table `rp` with `rows`."""
    conn.execute("CREATE EXTENSION pg_recall")
    register_vector(conn)
    db.load_table(conn, "rp", rows, dims)


def indexed_table(conn, rows, dims, am):
    """`loaded_table` with an `am` index on it."""
    loaded_table(conn, rows, dims)
    conn.execute(f"CREATE INDEX ON rp USING {am} (embedding vector_l2_ops)")


def query_all(conn, queries, k=20):
    conn.execute("SET enable_seqscan = off")
    return [[r[0] for r in conn.execute(f"SELECT id FROM rp ORDER BY embedding <-> %s LIMIT {k}", (q,)).fetchall()]
            for q in queries]


@pytest.mark.parametrize("am", AMS)
def test_streaming_replica_returns_primary_results(am):
    primary = Cluster(f"primary-{am}").init().start()
    replica = Cluster(f"replica-{am}")
    try:
        base, queries = datasets.gaussian_mixture(6000, 64, 20, centres=20, seed=9)
        with primary.connect() as p:
            loaded_table(p, base[:4000], 64)
            replica.replica_of(primary).start()
            # The build (its pages are written around shared buffers, each logged as a
            # full-page image), then inserts, deletes and vacuum: all reach the replica
            # through WAL.
            p.execute(f"CREATE INDEX ON rp USING {am} (embedding vector_l2_ops)")
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


@pytest.mark.parametrize("am", AMS)
def test_kill_9_during_concurrent_inserts_leaves_a_consistent_index(am):
    c = Cluster(f"crash-{am}").init().start()
    try:
        base, queries = datasets.gaussian_mixture(20000, 64, 5, centres=20, seed=11)
        with c.connect() as p:
            indexed_table(p, base[:2000], 64, am)

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


@pytest.mark.parametrize("am", AMS)
def test_kill_9_right_after_a_build_replays_its_pages(am):
    """A build writes its pages around shared buffers: after kill -9 the index must come back
    from the build's WAL alone (no checkpoint ran in between, and the index file is emptied
    before the restart, so every page has to be replayed) and answer as it did before."""
    c = Cluster(f"crash-build-{am}").init().start()
    try:
        base, queries = datasets.gaussian_mixture(6000, 64, 10, centres=20, seed=13)
        with c.connect() as p:
            loaded_table(p, base, 64)
            p.execute("CHECKPOINT")
            p.execute(f"CREATE INDEX ON rp USING {am} (embedding vector_l2_ops)")
            expected = query_all(p, queries)
            path = p.execute("SELECT pg_relation_filepath(indexrelid) FROM pg_index "
                             "WHERE indrelid = 'rp'::regclass AND indexrelid <> 'rp_pkey'::regclass").fetchone()[0]
        c.kill9()
        os.truncate(os.path.join(c.data, path), 0)
        c.start()
        with c.connect() as p:
            register_vector(p)
            assert query_all(p, queries) == expected
            p.execute("SET enable_seqscan = off")
            got = p.execute("SELECT count(*) FROM (SELECT id FROM rp ORDER BY embedding <-> %s LIMIT 1000000) s",
                            (queries[0],)).fetchone()[0]
            assert got == 6000
    finally:
        c.destroy()
