"""Two-tower models seen from clients: a new version reaches other backends at their next
transaction, server-file loading, and pg_dump carrying the models."""
import os

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "two_tower")


def weights(dtype):
    with open(os.path.join(FIXTURES, dtype, "model.safetensors"), "rb") as f:
        return f.read()


def user_vec(c, features_len):
    return np.asarray(c.execute(
        "SELECT recall.user_tower('m', 3, array_fill(0.5::real, ARRAY[%s]), ARRAY[1,2]::bigint[])",
        (features_len,)).fetchone()[0].to_numpy())


def test_new_version_reaches_other_backends_next_transaction(conn):
    conn.execute("SELECT recall.load_model('m', %s)", (weights("f16"),))
    with psycopg.connect(os.environ["PG_RECALL_URL"]) as other:  # explicit transactions
        register_vector(other)
        before = user_vec(other, 6)
        assert before.shape == (16,)
        other.commit()
        stats0 = other.execute("SELECT recall.tower_stats()").fetchone()[0]
        # Version 2 committed by the first connection while `other` sits in a transaction
        # that has already used the model: it keeps version 1 until that transaction ends.
        user_vec(other, 6)
        assert conn.execute("SELECT recall.load_model('m', %s)", (weights("f32"),)).fetchone()[0] == 2
        assert user_vec(other, 6).shape == (16,)
        other.commit()
        after = user_vec(other, 6)
        assert after.shape == (64,), "the next transaction uses version 2"
        stats1 = other.execute("SELECT recall.tower_stats()").fetchone()[0]
        other.commit()
        # Only the transaction after the change read the catalog.
        assert stats1["catalog_lookups"] - stats0["catalog_lookups"] == 1
        assert stats1["model_parses"] - stats0["model_parses"] == 1
        assert {"name": "m", "version": 2} in stats1["cached_models"]


def test_plain_dml_on_the_catalog_reaches_the_cache(conn):
    conn.execute("SELECT recall.load_model('m', %s)", (weights("f16"),))
    conn.execute("SELECT recall.load_model('m', %s)", (weights("f32"),))
    with psycopg.connect(os.environ["PG_RECALL_URL"], autocommit=True) as other:
        register_vector(other)
        assert user_vec(other, 6).shape == (64,)
        lookups = other.execute("SELECT recall.tower_stats()->'catalog_lookups'").fetchone()[0]
        for _ in range(3):
            assert user_vec(other, 6).shape == (64,)
        assert other.execute("SELECT recall.tower_stats()->'catalog_lookups'").fetchone()[0] == lookups, \
            "no catalog read while nothing changed"
        conn.execute("SELECT recall.drop_model('m', 2)")
        assert user_vec(other, 6).shape == (16,), "back to version 1 at the next transaction"
        config = open(os.path.join(FIXTURES, "f32", "config.json")).read()
        conn.execute("INSERT INTO recall.models (name, version, config, weights) VALUES ('m', 3, %s, %s)",
                     (config, weights("f32")))
        assert user_vec(other, 6).shape == (64,), "a plain INSERT is seen too"
        conn.execute("DELETE FROM recall.models WHERE name = 'm' AND version = 3")
        assert user_vec(other, 6).shape == (16,)
        conn.execute("TRUNCATE recall.models")
        with pytest.raises(psycopg.errors.UndefinedObject):
            user_vec(other, 6)


def test_load_model_file_and_permissions(conn):
    path = os.path.abspath(os.path.join(FIXTURES, "bf16", "model.safetensors"))
    # The server runs as postgres: give it a readable copy outside root's work tree.
    tmp = "/tmp/pg_recall_test_model.safetensors"
    with open(tmp, "wb") as f:
        f.write(open(path, "rb").read())
    os.chmod(tmp, 0o644)
    assert conn.execute("SELECT recall.load_model_file('file', %s)", (tmp,)).fetchone()[0] == 1
    info = conn.execute("SELECT recall.model_info('file')").fetchone()[0]
    assert info["user_tower"]["output_dim"] == 16
    conn.execute("DROP ROLE IF EXISTS recall_app")
    conn.execute("CREATE ROLE recall_app")
    try:
        conn.execute("GRANT USAGE ON SCHEMA recall TO recall_app")
        conn.execute("SET ROLE recall_app")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT recall.load_model_file('file', %s)", (tmp,))
    finally:
        conn.execute("RESET ROLE")
        conn.execute("DROP OWNED BY recall_app")
        conn.execute("DROP ROLE recall_app")
