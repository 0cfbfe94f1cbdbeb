"""Every Python test runs in its own database, `pg_recall_tests`, of the cluster
`PG_RECALL_URL` names: the tests drop and recreate the extension (CASCADE), which must never
reach the data of whatever else lives in that cluster (the demo's tables, a developer's own)."""
import os

import psycopg
from psycopg.conninfo import make_conninfo

TEST_DB = "pg_recall_tests"


def pytest_configure(config):
    url = os.environ.get("PG_RECALL_URL")
    if not url:
        return
    with psycopg.connect(url, autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEST_DB,)).fetchone():
            c.execute(f"CREATE DATABASE {TEST_DB}")
    os.environ["PG_RECALL_URL"] = make_conninfo(url, dbname=TEST_DB)
