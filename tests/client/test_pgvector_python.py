"""pgvector's own Python adapter against pg_recall, with the code its README shows, unchanged:
`register_vector`, numpy arrays in and out (text and binary), binary COPY."""
import os

import numpy as np
import psycopg
import pytest
from pgvector import Vector
from pgvector.psycopg import register_vector

URL = os.environ["PG_RECALL_URL"]


@pytest.fixture()
def conn():
    with psycopg.connect(URL, autocommit=True) as c:
        c.execute("DROP EXTENSION IF EXISTS pg_recall CASCADE")
        c.execute("CREATE EXTENSION pg_recall")
        register_vector(c)
        c.execute("DROP TABLE IF EXISTS items")
        c.execute("CREATE TABLE items (id bigserial PRIMARY KEY, embedding vector(3))")
        yield c


def test_insert_and_query_numpy(conn):
    embeddings = np.array([[1, 1, 1], [2, 2, 2], [1, 1, 2]], dtype=np.float32)
    for e in embeddings:
        conn.execute("INSERT INTO items (embedding) VALUES (%s)", (e,))
    rows = conn.execute(
        "SELECT id, embedding FROM items ORDER BY embedding <-> %s LIMIT 5", (np.array([1, 1, 1]),)
    ).fetchall()
    assert [r[0] for r in rows] == [1, 3, 2]
    # pgvector-python ≥ 0.4 loads vectors as `Vector` objects.
    assert isinstance(rows[0][1], Vector)
    assert np.array_equal(rows[1][1].to_numpy(), np.array([1, 1, 2], dtype=np.float32))


def test_binary_results(conn):
    conn.execute("INSERT INTO items (embedding) VALUES ('[1.5,-2,3e-5]')")
    with conn.cursor(binary=True) as cur:
        v = cur.execute("SELECT embedding FROM items").fetchone()[0]
    assert np.array_equal(v.to_numpy(), np.array([1.5, -2, 3e-5], dtype=np.float32))


def test_binary_copy_round_trip(conn):
    rng = np.random.default_rng(1)
    embeddings = rng.standard_normal((500, 3)).astype(np.float32)
    cur = conn.cursor()
    with cur.copy("COPY items (embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["vector"])
        for e in embeddings:
            copy.write_row([e])
    assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 500
    back = []
    with cur.copy("COPY (SELECT embedding FROM items ORDER BY id) TO STDOUT WITH (FORMAT BINARY)") as copy:
        copy.set_types(["vector"])
        for row in copy.rows():
            back.append(row[0].to_numpy())
    assert np.array_equal(np.stack(back), embeddings)
    # Text round trip is exact too: output uses float4's shortest round-trip digits.
    texts = conn.execute("SELECT embedding::text FROM items ORDER BY id").fetchall()
    parsed = np.array([[float(x) for x in t[0][1:-1].split(",")] for t in texts], dtype=np.float32)
    assert np.array_equal(parsed, embeddings)


def test_distance_functions_through_client(conn):
    q = np.array([1, 2, 3], dtype=np.float32)
    row = conn.execute(
        "SELECT %s <#> '[1,1,1]'::vector, %s <-> '[1,2,3]'::vector, %s <=> '[2,4,6]'::vector", (q, q, q)
    ).fetchone()
    assert row[0] == -6
    assert row[1] == 0
    assert abs(row[2]) < 1e-7


def test_errors_reach_the_client(conn):
    with pytest.raises(psycopg.errors.DataException, match="expected 3 dimensions, not 2"):
        conn.execute("INSERT INTO items (embedding) VALUES (%s)", (np.array([1, 2], dtype=np.float32),))
    with pytest.raises(psycopg.errors.DataException, match="different vector dimensions 3 and 2"):
        conn.execute("SELECT '[1,2,3]'::vector <-> %s", (np.array([1, 2], dtype=np.float32),))
