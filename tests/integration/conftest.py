import os
import sys

import psycopg
import pytest
from pgvector.psycopg import register_vector

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benches"))


@pytest.fixture()
def conn():
    """A connection to the suite's test cluster with a fresh pg_recall."""
    with psycopg.connect(os.environ["PG_RECALL_URL"], autocommit=True) as c:
        c.execute("DROP EXTENSION IF EXISTS pg_recall CASCADE")
        c.execute("CREATE EXTENSION pg_recall")
        register_vector(c)
        yield c
