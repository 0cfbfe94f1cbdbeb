#!/usr/bin/env python3
"""`make demo`: fashion-mnist in pg_recall — exact scan and hnsw index side by side.

Loads the 60,000 training images as `items(id, embedding vector(784))`, runs 100
`ORDER BY embedding <-> $q LIMIT 10` queries (test-split images) as an exact scan, builds an
hnsw index, runs them again through the index, and prints recall@10 against exact ground
truth (numpy) with p50/p99 latency for both.
"""
import time
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner import datasets, db, truth  # noqa: E402


def report(name, recalls, lat):
    print(f"{name:<28} recall@10 = {np.mean(recalls):.4f}   "
          f"p50 = {np.percentile(lat, 50):7.2f} ms   p99 = {np.percentile(lat, 99):7.2f} ms   "
          f"QPS = {1000.0 / np.mean(lat):8.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--queries", type=int, default=100)
    args = ap.parse_args()

    base, queries = datasets.fashion_mnist()
    queries = queries[: args.queries]
    conn = db.connect(args.url)
    print(f"fashion-mnist: {len(base)} × {base.shape[1]} (L2), {len(queries)} queries")
    if db.load_table(conn, "items", base, base.shape[1]):
        print("loaded items with binary COPY")
    else:
        print("items already loaded; reusing it")

    gt = truth.GroundTruth(base, np.arange(len(base)), queries, 10, "l2")
    sql = "SELECT id FROM items ORDER BY embedding <-> %s LIMIT 10"
    # Warm the table into shared_buffers so the timed run measures the scan, not the disk.
    conn.execute("SELECT count(*) FROM items WHERE embedding IS NOT NULL")
    conn.execute("DROP INDEX IF EXISTS items_embedding_hnsw")
    ids, lat = db.timed_queries(conn, sql, queries)
    exact = ([gt.recall(i, r) for i, r in enumerate(ids)], lat, ids)

    t0 = time.perf_counter()
    conn.execute("CREATE INDEX items_embedding_hnsw ON items USING hnsw (embedding vector_l2_ops)")
    build_s = time.perf_counter() - t0
    size = conn.execute("SELECT pg_relation_size('items_embedding_hnsw')").fetchone()[0]
    # The plan, with the 784-number query literal elided.
    plan = "\n".join(r[0].split(" '[")[0] for r in conn.execute(
        "EXPLAIN (COSTS OFF) " + sql.replace("%s", "%s::vector"), (queries[0],)).fetchall())
    ids, lat = db.timed_queries(conn, sql, queries)
    hnsw = ([gt.recall(i, r) for i, r in enumerate(ids)], lat, ids)

    print()
    report("exact scan (no index)", exact[0], exact[1])
    report("hnsw (ef_search 40)", hnsw[0], hnsw[1])
    print(f"\nhnsw build: {build_s:.1f} s, {size / 2**20:.1f} MiB (m = 16, ef_construction = 64)")
    print("plan:\n  " + plan.replace("\n", "\n  "))
    if "items_embedding_hnsw" not in plan:
        print("ERROR: the planner did not use the index", file=sys.stderr)
        return 1
    if min(len(r) for r in exact[2] + hnsw[2]) < 10:
        print("ERROR: a query returned fewer than 10 rows", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
