#!/usr/bin/env python3
"""Model-quality report for a two-tower recall stage, on your own tables.

For every user row it runs the production query
    SELECT id FROM <items> WHERE id <> ALL(<seen>) ORDER BY <embedding> <#> recall.user_tower(...) LIMIT k
once through the index and once as an exact scan (index scans disabled), and ranks a
most-popular baseline the same way; it prints Recall@K of the held-out item for each, the
index's loss against exact search, and query latency.

    model_report.py --url URL --model NAME --items ITEMS_TABLE [--embedding embedding]
        --users-sql "SELECT user_id, features, behavior, seen, held_out FROM ..."
        [--popular-sql "SELECT id FROM ... ORDER BY popularity DESC"] [--ks 10,50,100]

`--users-sql` returns (bigint user id, real[] features, bigint[] behaviour, bigint[] items to
exclude, bigint held-out item). Without `--popular-sql` the baseline is skipped.
"""
import argparse
import time

import numpy as np
import psycopg
import psycopg.sql


def _ranked(conn, sql, params):
    t0 = time.perf_counter()
    ids = [r[0] for r in conn.execute(sql, params, prepare=True).fetchall()]
    return ids, (time.perf_counter() - t0) * 1000.0


def evaluate(url, model, items, users_sql, ks=(10, 50, 100), embedding="embedding", popular_sql=None,
             settings=()):
    """Returns {"users": n, "rows": [{name, recall: {k: r}, p50_ms, p99_ms}], "plan": str}.
    `settings`: ("hnsw.ef_search", "200") pairs applied to the index side."""
    kmax = max(ks)
    sql = (f"SELECT id FROM {items} WHERE id <> ALL(%s::bigint[]) "
           f"ORDER BY {embedding} <#> recall.user_tower(%s, %s, %s::real[], %s::bigint[]) LIMIT {kmax}")
    index_conn = psycopg.connect(url, autocommit=True)
    exact_conn = psycopg.connect(url, autocommit=True)
    # The index side must use the index even where a small catalogue makes a sequential scan
    # look cheaper; the exact side must not.
    index_conn.execute("SET enable_seqscan = off")
    for name, value in settings:
        index_conn.execute(psycopg.sql.SQL("SET {} = {}").format(psycopg.sql.Identifier(*name.split(".")),
                                                                psycopg.sql.Literal(value)))
    exact_conn.execute("SET enable_indexscan = off")
    exact_conn.execute("SET enable_bitmapscan = off")
    for c in (index_conn, exact_conn):
        # Plan each query with its own exclusion list as a constant: PostgreSQL then hashes
        # `id <> ALL(...)` instead of scanning the array for every row.
        c.execute("SET plan_cache_mode = force_custom_plan")
    users = index_conn.execute(users_sql).fetchall()
    popular = [r[0] for r in index_conn.execute(popular_sql).fetchall()] if popular_sql else None
    plan = "\n".join(r[0] for r in index_conn.execute(
        "EXPLAIN (COSTS OFF) " + sql, (users[0][3], model) + tuple(users[0][:3])).fetchall()) if users else ""
    hits = {"index": np.zeros(len(ks)), "exact": np.zeros(len(ks)), "popular": np.zeros(len(ks))}
    lat = {"index": [], "exact": []}
    for uid, feats, behavior, seen, held_out in users:
        params = (seen, model, uid, feats, behavior)
        for name, conn in (("index", index_conn), ("exact", exact_conn)):
            ids, ms = _ranked(conn, sql, params)
            lat[name].append(ms)
            hits[name] += [held_out in ids[:k] for k in ks]
        if popular is not None:
            seen_set = set(seen)
            top = [i for i in popular if i not in seen_set][:kmax]
            hits["popular"] += [held_out in top[:k] for k in ks]
    n = max(len(users), 1)
    rows = []
    for name in ("index", "exact", "popular"):
        if name == "popular" and popular is None:
            continue
        row = {"name": name, "recall": {k: float(h / n) for k, h in zip(ks, hits[name])}}
        if name in lat and lat[name]:
            row["p50_ms"] = float(np.percentile(lat[name], 50))
            row["p99_ms"] = float(np.percentile(lat[name], 99))
        rows.append(row)
    index_conn.close()
    exact_conn.close()
    return {"users": len(users), "ks": list(ks), "rows": rows, "plan": plan, "settings": list(settings)}


LABELS = {"index": "(a) index (hnsw, vector_ip_ops)", "exact": "(b) exact search, same towers",
          "popular": "(c) most popular (unseen)"}


def print_report(r):
    ks = r["ks"]
    head = "".join(f"  Recall@{k:<4}" for k in ks)
    print(f"{'':34}{head}   p50 ms   p99 ms")
    for row in r["rows"]:
        cells = "".join(f"  {row['recall'][k]:<11.4f}" for k in ks)
        lat = f"  {row['p50_ms']:7.2f}  {row['p99_ms']:7.2f}" if "p50_ms" in row else "        –        –"
        print(f"{LABELS.get(row['name'], row['name']):34}{cells}{lat}")
    if r.get("settings"):
        print("index settings: " + ", ".join(f"{n} = {v}" for n, v in r["settings"]))
    by = {row["name"]: row for row in r["rows"]}
    if "index" in by and "exact" in by:
        loss = {k: by["exact"]["recall"][k] - by["index"]["recall"][k] for k in ks}
        print(f"index loss vs exact: " + ", ".join(f"@{k} {loss[k]:+.4f}" for k in ks) + f"   ({r['users']} users)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--items", required=True)
    ap.add_argument("--embedding", default="embedding")
    ap.add_argument("--users-sql", required=True)
    ap.add_argument("--popular-sql")
    ap.add_argument("--ks", default="10,50,100")
    ap.add_argument("--set", action="append", default=[], metavar="GUC=VALUE",
                    help="a setting for the index side, e.g. hnsw.ef_search=200")
    a = ap.parse_args()
    print_report(evaluate(a.url, a.model, a.items, a.users_sql, [int(k) for k in a.ks.split(",")],
                          a.embedding, a.popular_sql, [tuple(s.split("=", 1)) for s in a.set]))


if __name__ == "__main__":
    main()
