#!/usr/bin/env python3
"""The recall funnel on MovieLens-100k, end to end (part of `make demo`):

fetch MovieLens → train the two towers (pg_recall-train) → recall.load_model → fill
items.embedding with recall.item_tower → hnsw index (vector_ip_ops) → for every user
`ORDER BY embedding <#> recall.user_tower(...) LIMIT k` excluding the items they already saw
→ Recall@10/50/100 of each user's held-out last item for the index, exact search with the
same towers and a most-popular baseline, plus query latency. Every number comes from the run.
"""
import argparse
import os
import subprocess
import sys
import time

import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_report  # noqa: E402
from runner import movielens  # noqa: E402

CACHE = os.path.expanduser("~/.cache/pg_recall/movielens")


def load_tables(conn, ml, history):
    conn.execute("DROP TABLE IF EXISTS ml_items, ml_users, ml_popular")
    conn.execute("CREATE TABLE ml_items (id bigint PRIMARY KEY, category int, tags int[], features real[], "
                 "embedding vector(128))")
    conn.execute("CREATE TABLE ml_users (id bigint PRIMARY KEY, features real[], behavior bigint[], "
                 "seen bigint[], held_out bigint)")
    with conn.cursor() as cur:
        with cur.copy("COPY ml_items (id, category, tags, features) FROM STDIN") as copy:
            for i, (cat, tags, feats) in sorted(ml.items.items()):
                copy.write_row((i, cat, tags, feats))
        with cur.copy("COPY ml_users FROM STDIN") as copy:
            for u, (feats, behavior, seen, held_out) in sorted(ml.leave_last_out(history).items()):
                copy.write_row((u, feats, behavior, seen, held_out))
    # Popularity from training interactions only (the held-out items are the future).
    conn.execute("CREATE TABLE ml_popular AS SELECT item AS id, count(*) AS n "
                 "FROM ml_users, unnest(seen) item GROUP BY item")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--trainer", required=True, help="path of the pg_recall-train binary")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()

    print("\n== the recall funnel on MovieLens-100k ==")
    ml = movielens.MovieLens(movielens.fetch(CACHE))
    data_dir, model_dir = os.path.join(CACHE, "tsv"), os.path.join(CACHE, "model")
    ml.write_tsv(data_dir)
    t0 = time.perf_counter()
    subprocess.run([a.trainer, "--data", data_dir, "--out", model_dir, "--epochs", str(a.epochs),
                    "--seed", str(a.seed)], check=True)
    print(f"trained in {time.perf_counter() - t0:.1f} s")

    conn = psycopg.connect(a.url, autocommit=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_recall")
    load_tables(conn, ml, history=20)
    if conn.execute("SELECT count(*) FROM recall.models WHERE name = 'ml'").fetchone()[0]:
        conn.execute("SELECT recall.drop_model('ml')")
    with open(os.path.join(model_dir, "model.safetensors"), "rb") as f:
        version = conn.execute("SELECT recall.load_model('ml', %s)", (f.read(),)).fetchone()[0]
    t0 = time.perf_counter()
    conn.execute("UPDATE ml_items SET embedding = recall.item_tower('ml', id, category, tags, features)")
    embed_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    conn.execute("CREATE INDEX ml_items_embedding ON ml_items USING hnsw (embedding vector_ip_ops)")
    conn.execute("ANALYZE ml_items")
    print(f"model 'ml' version {version} loaded; {len(ml.items)} items embedded in {embed_s:.2f} s; "
          f"hnsw index built in {time.perf_counter() - t0:.2f} s")

    r = model_report.evaluate(
        a.url, "ml", "ml_items",
        "SELECT id, features, behavior, seen, held_out FROM ml_users ORDER BY id",
        ks=(10, 50, 100), popular_sql="SELECT id FROM ml_popular ORDER BY n DESC, id",
        settings=[("hnsw.ef_search", "100")])
    plan = [line if len(line) <= 150 else line[:150] + " …" for line in r["plan"].splitlines()]
    print("\nquery plan (first user):\n  " + "\n  ".join(plan))
    print()
    model_report.print_report(r)


if __name__ == "__main__":
    main()
