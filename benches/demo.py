#!/usr/bin/env python3
"""`make demo`: fashion-mnist in pg_recall, exact-scan recall@10 and latency.

Loads the 60,000 training images as `items(id, embedding vector(784))`, then runs 100
`ORDER BY embedding <-> $q LIMIT 10` queries (test-split images) and compares with exact
ground truth computed in numpy.
"""
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
    ids, lat = db.timed_queries(conn, sql, queries)
    recalls = [gt.recall(i, r) for i, r in enumerate(ids)]
    print()
    report("exact scan (no index)", recalls, lat)
    if min(len(r) for r in ids) < 10:
        print("ERROR: a query returned fewer than 10 rows", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
