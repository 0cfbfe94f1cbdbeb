#!/usr/bin/env python3
"""`make bench`: the SQL benchmark runner.

For each data set: load `items(id bigint primary key, embedding vector(d))` with binary COPY,
measure the exact scan, build each index (build seconds, index bytes), prewarm, then sweep
the search parameter and measure recall@k against exact ground truth, p50/p99 latency and QPS
on one connection and on two concurrent connections, all with server-side prepared
statements. Writes `bench-results/<dataset>.json` and a recall-vs-QPS plot
`bench-results/<dataset>.png`.

Usage: bench.py --url URL [--datasets fashion-mnist,synthetic-1m] [--queries 1000]
"""
import argparse
import json
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner import datasets, db, truth  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench-results")

DATASETS = {
    # name: (loader, metric, operator, opclass, ks)
    "fashion-mnist": (lambda: datasets.fashion_mnist(), "l2", "<->", "vector_l2_ops", [10, 500]),
    "synthetic-1m": (lambda: datasets.gaussian_mixture(1_000_000, 128, 1000, centres=1000, noise=1.0, seed=7),
                     "ip", "<#>", "vector_ip_ops", [10, 500]),
}

HNSW_SWEEP = [10, 20, 40, 80, 160, 320, 500, 1000]


def concurrent_qps(url, sql, queries, setup, clients=2):
    """QPS of `clients` connections each running all queries."""
    results = [None] * clients

    def worker(i):
        results[i] = db.run_queries(url, sql, queries, setup)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return clients * len(queries) / (time.perf_counter() - t0)


def measure(url, sql, queries, gt, k, setup, two_conn=True):
    ids, lat = db.run_queries(url, sql, queries, setup)
    recalls = [gt.recall(i, r, k) for i, r in enumerate(ids)]
    short = sum(1 for r in ids if len(r) < k)
    row = {
        "k": k,
        "recall": float(np.mean(recalls)),
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "qps_1": float(len(queries) / (lat.sum() / 1000.0)),
        "short_results": short,
    }
    if two_conn:
        row["qps_2"] = float(concurrent_qps(url, sql, queries, setup))
    return row


def fmt(row):
    q2 = f"{row['qps_2']:8.1f}" if "qps_2" in row else "       -"
    return (f"k={row['k']:<4} recall={row['recall']:.4f}  p50={row['p50_ms']:7.2f} ms  p99={row['p99_ms']:7.2f} ms  "
            f"QPS 1={row['qps_1']:8.1f}  QPS 2={q2}" + (f"  ({row['short_results']} short)" if row["short_results"] else ""))


def bench_dataset(url, name, n_queries, exact_queries, sweep, indexes):
    loader, metric, op, opclass, ks = DATASETS[name]
    print(f"== {name}", flush=True)
    base, queries = loader()
    queries = queries[:n_queries]
    conn = db.connect(url)
    conn.execute("SET maintenance_work_mem = '4GB'")
    table = "bench_" + name.replace("-", "_")
    t0 = time.perf_counter()
    if db.load_table(conn, table, base, base.shape[1]):
        print(f"loaded {len(base)} × {base.shape[1]} in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    gt = truth.GroundTruth(base, np.arange(len(base)), queries, max(ks), metric)
    print(f"ground truth in {time.perf_counter() - t0:.1f} s", flush=True)
    result = {"dataset": name, "rows": len(base), "dims": int(base.shape[1]), "metric": metric,
              "queries": len(queries), "indexes": []}
    for am in ("hnsw", "ivfflat"):
        conn.execute(f"DROP INDEX IF EXISTS {table}_{am}")
    conn.execute(f"SELECT count(*) FROM {table} WHERE embedding IS NOT NULL")

    # Exact scan (few queries: it is slow by design).
    sql = f"SELECT id FROM {table} ORDER BY embedding {op} %s LIMIT {{k}}"
    exact = measure(url, sql.format(k=10), queries[:exact_queries], gt, 10, ["SET enable_indexscan = off"], two_conn=False)
    print("exact scan        ", fmt(exact), flush=True)
    result["indexes"].append({"index": "none (exact scan)", "rows": [exact]})

    conn.execute("SET max_parallel_maintenance_workers = 1")
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    if "hnsw" in indexes:
        settings = [(f"ef_search={ef}", [f"SET hnsw.ef_search = {ef}"], {"ef_search": ef}) for ef in sweep]
        result["indexes"].append(bench_index(conn, url, table, "hnsw", f"USING hnsw (embedding {opclass})",
                                             "hnsw m=16 ef_construction=64", settings, sql, queries, gt, ks))
    if "ivfflat" in indexes:
        def ivf_settings(info):
            lists, default = info["lists"], info["default_probes"]
            probes = sorted({1, 2, 4, 8, 12, max(1, default // 2), 2 * default} | {default})
            return [(f"probes={p}" + (" (default)" if p == default else ""), [f"SET ivfflat.probes = {p}"],
                     {"probes": p}) for p in probes if p <= lists]
        result["indexes"].append(bench_index(conn, url, table, "ivfflat", f"USING ivfflat (embedding {opclass})",
                                             "ivfflat (self-sized lists)", ivf_settings, sql, queries, gt, ks))
    conn.close()
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(result, f, indent=2)
    plot(result, os.path.join(OUT, f"{name}.png"))
    return result


def bench_index(conn, url, table, am, using, label, settings, sql, queries, gt, ks):
    """Builds one index (dropping it afterwards), then measures every (setting, k)."""
    t0 = time.perf_counter()
    conn.execute(f"CREATE INDEX {table}_{am} ON {table} {using}")
    build_s = time.perf_counter() - t0
    size = conn.execute(f"SELECT pg_relation_size('{table}_{am}')").fetchone()[0]
    info = conn.execute(f"SELECT recall.index_info('{table}_{am}')").fetchone()[0]
    print(f"{label}: build {build_s:.1f} s, {size / 2**20:.1f} MiB, {json.dumps(info)}", flush=True)
    conn.execute(f"SELECT pg_prewarm('{table}_{am}'), pg_prewarm('{table}')")
    entry = {"index": label, "build_s": build_s, "bytes": size, "info": info, "rows": []}
    if callable(settings):
        settings = settings(info)
    for name, setup, extra in settings:
        for k in ks:
            if extra.get("ef_search", k) < k and k > 10:
                continue
            row = measure(url, sql.format(k=k), queries, gt, k, setup + ["SET enable_seqscan = off"])
            row.update(extra)
            entry["rows"].append(row)
            print(f"  {name:<22}", fmt(row), flush=True)
    conn.execute(f"DROP INDEX {table}_{am}")
    return entry


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for entry in result["indexes"]:
        for k in sorted({r["k"] for r in entry["rows"]}):
            rows = [r for r in entry["rows"] if r["k"] == k]
            ax.plot([r["recall"] for r in rows], [r["qps_1"] for r in rows], marker="o",
                    label=f"{entry['index']} k={k}")
    ax.set_xlabel("recall@k")
    ax.set_ylabel("QPS (1 connection)")
    ax.set_yscale("log")
    ax.set_title(f"pg_recall on {result['dataset']} ({result['rows']} × {result['dims']}, {result['metric']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--datasets", default="fashion-mnist,synthetic-1m")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--exact-queries", type=int, default=50)
    ap.add_argument("--sweep", default=",".join(map(str, HNSW_SWEEP)), help="hnsw.ef_search values")
    ap.add_argument("--indexes", default="hnsw,ivfflat")
    args = ap.parse_args()
    sweep = [int(x) for x in args.sweep.split(",")]
    for name in args.datasets.split(","):
        bench_dataset(args.url, name, args.queries, args.exact_queries, sweep, args.indexes.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
