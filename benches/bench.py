#!/usr/bin/env python3
"""`make bench`: the SQL benchmark runner.

For each data set: load `items(id bigint primary key, embedding vector(d))` with binary COPY,
measure the exact scan, build each index (build seconds, index bytes), prewarm, then sweep
the search parameter and measure recall@k against exact ground truth, p50/p99 latency and QPS
on one connection and on two concurrent connections, all with server-side prepared
statements. Writes `bench-results/<dataset>.json` and a recall-vs-QPS plot
`bench-results/<dataset>.png`.

`--engines pg_recall,pgvector` runs the same measurements on pgvector too (installed by
`scripts/pgvector.sh`, in a database of its own on the same cluster, pgvector's defaults
m=16, ef_construction=64 and ivfflat lists = √rows), so the two are compared within one run
on one host; its results go to `bench-results/<dataset>-pgvector.json` and into the plot.

Usage: bench.py --url URL [--datasets fashion-mnist,synthetic-1m] [--queries 1000]
                [--engines pg_recall[,pgvector]]
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
# Untimed queries each measuring connection runs first (see `db.run_queries`).
WARMUP_QUERIES = 200


class Engine:
    """Which extension serves `vector`, where its tables live and how its indexes are built."""

    def __init__(self, name):
        self.name = name
        self.extension = {"pg_recall": "pg_recall", "pgvector": "vector"}[name]
        self.database = None if name == "pg_recall" else "bench_pgvector"

    def url(self, url):
        return url if self.database is None else db.database_url(url, self.database)

    def index_options(self, am, rows):
        """pg_recall sizes ivfflat itself; pgvector needs `lists` (its guideline for up to
        1M rows is rows/1000, BASELINES used √rows, which is the more accurate of the two)."""
        if self.name == "pgvector" and am == "ivfflat":
            return f" WITH (lists = {max(1, round(rows ** 0.5))})"
        return ""

    def index_info(self, conn, index):
        if self.name != "pg_recall":
            return None
        return conn.execute(f"SELECT recall.index_info('{index}')").fetchone()[0]

    def ivf_settings(self, info):
        if info is None:
            return [(f"probes={p}", [f"SET ivfflat.probes = {p}"], {"probes": p}) for p in (1, 2, 4, 8, 16)]
        lists, default = info["lists"], info["default_probes"]
        probes = sorted({1, 2, 4, 8, 12, max(1, default // 2), 2 * default} | {default})
        return [(f"probes={p}" + (" (default)" if p == default else ""), [f"SET ivfflat.probes = {p}"],
                 {"probes": p}) for p in probes if p <= lists]

    def results_name(self, dataset):
        return dataset if self.name == "pg_recall" else f"{dataset}-{self.name}"


def concurrent_qps(url, sql, queries, setup, extension="pg_recall", clients=2, warmup=None):
    """QPS of `clients` connections each running all queries (each connection warmed up
    first, the clock starting once all are)."""
    conns = []
    for _ in range(clients):
        conn = db.connect(url, extension)
        for s in setup:
            conn.execute(s)
        if warmup is not None:
            db.timed_queries(conn, sql, warmup)
        conns.append(conn)
    results = [None] * clients

    def worker(i):
        results[i] = db.timed_queries(conns[i], sql, queries)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for conn in conns:
        conn.close()
    return clients * len(queries) / elapsed


def measure(url, sql, queries, gt, k, setup, extension="pg_recall", two_conn=True, warmup=None):
    ids, lat = db.run_queries(url, sql, queries, setup, extension, warmup)
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
        row["qps_2"] = float(concurrent_qps(url, sql, queries, setup, extension, warmup=warmup))
    return row


def fmt(row):
    q2 = f"{row['qps_2']:8.1f}" if "qps_2" in row else "       -"
    return (f"k={row['k']:<4} recall={row['recall']:.4f}  p50={row['p50_ms']:7.2f} ms  p99={row['p99_ms']:7.2f} ms  "
            f"QPS 1={row['qps_1']:8.1f}  QPS 2={q2}" + (f"  ({row['short_results']} short)" if row["short_results"] else ""))


def bench_dataset(url, name, n_queries, exact_queries, sweep, indexes, engines):
    """Loads and measures every engine; with more than one engine, each index is built on
    all of them and then their settings are measured in turn, alternating which engine goes
    first, so a host that slows down mid-run does not favour one of them."""
    loader, metric, op, opclass, ks = DATASETS[name]
    base, queries = loader()
    queries = queries[:n_queries]
    t0 = time.perf_counter()
    gt = truth.GroundTruth(base, np.arange(len(base)), queries, max(ks), metric)
    print(f"== {name}: ground truth in {time.perf_counter() - t0:.1f} s", flush=True)
    runs = [EngineRun(engine, engine.url(url), name, base, queries, gt) for engine in engines]
    for run in runs:
        run.exact_scan(exact_queries)
    for am in ("hnsw", "ivfflat"):
        if am not in indexes:
            continue
        pending = [run.build(am, sweep) for run in runs]
        for i in range(max(len(p) for p in pending)):
            for run, todo in (zip(runs, pending) if i % 2 == 0 else zip(reversed(runs), reversed(pending))):
                if i < len(todo):
                    run.measure_setting(todo[i])
        for run in runs:
            run.drop(am)
    os.makedirs(OUT, exist_ok=True)
    for run in runs:
        run.save()
    plot([run.result for run in runs], os.path.join(OUT, f"{name}.png"))
    return [run.result for run in runs]


class EngineRun:
    """One engine's table, indexes and results for one data set."""

    def __init__(self, engine, url, name, base, queries, gt):
        _, metric, op, self.opclass, self.ks = DATASETS[name]
        self.engine, self.url, self.name, self.queries, self.gt = engine, url, name, queries, gt
        self.rows = len(base)
        # Warm-up queries are base rows, not the measured queries: they warm the connection,
        # not the measured queries' own paths.
        pick = np.random.default_rng(1).choice(len(base), size=min(WARMUP_QUERIES, len(base)), replace=False)
        self.warmup = base[np.sort(pick)]
        self.conn = db.connect(url, engine.extension)
        self.conn.execute("SET maintenance_work_mem = '4GB'")
        self.conn.execute("SET max_parallel_maintenance_workers = 1")
        self.conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        self.table = "bench_" + name.replace("-", "_")
        t0 = time.perf_counter()
        if db.load_table(self.conn, self.table, base, base.shape[1]):
            self.log(f"loaded {len(base)} × {base.shape[1]} in {time.perf_counter() - t0:.1f} s")
        # Any other index on the table (left by an earlier run, or built by hand) could be
        # the one the planner picks for a setting: only the index being measured may exist.
        others = self.conn.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass AND NOT indisprimary",
            (self.table,)).fetchall()
        for (index,) in others:
            self.conn.execute(f"DROP INDEX {index}")
        self.conn.execute(f"SELECT count(*) FROM {self.table} WHERE embedding IS NOT NULL")
        self.sql = f"SELECT id FROM {self.table} ORDER BY embedding {op} %s LIMIT {{k}}"
        self.result = {"dataset": name, "engine": engine.name, "rows": self.rows, "dims": int(base.shape[1]),
                       "metric": metric, "queries": len(queries), "warmup_queries": len(self.warmup),
                       "indexes": []}

    def log(self, text):
        print(f"[{self.engine.name}] {text}", flush=True)

    def exact_scan(self, n):
        """Few queries: the exact scan is slow by design."""
        row = measure(self.url, self.sql.format(k=10), self.queries[:n], self.gt, 10,
                      ["SET enable_indexscan = off"], self.engine.extension, two_conn=False)
        self.log("exact scan             " + fmt(row))
        self.result["indexes"].append({"index": "none (exact scan)", "rows": [row]})

    def build(self, am, sweep):
        """Builds and prewarms one index; returns its (entry, setting, k) measurements to make."""
        using = f"USING {am} (embedding {self.opclass})" + self.engine.index_options(am, self.rows)
        index = f"{self.table}_{am}"
        t0 = time.perf_counter()
        self.conn.execute(f"CREATE INDEX {index} ON {self.table} {using}")
        build_s = time.perf_counter() - t0
        size = self.conn.execute(f"SELECT pg_relation_size('{index}')").fetchone()[0]
        info = self.engine.index_info(self.conn, index)
        if am == "hnsw":
            label = "hnsw m=16 ef_construction=64"
            settings = [(f"ef_search={ef}", [f"SET hnsw.ef_search = {ef}"], {"ef_search": ef}) for ef in sweep]
        else:
            label = "ivfflat (self-sized lists)" if info is not None else "ivfflat lists=√rows"
            settings = self.engine.ivf_settings(info)
        self.log(f"{label}: build {build_s:.1f} s, {size / 2**20:.1f} MiB, {json.dumps(info)}")
        self.conn.execute(f"SELECT pg_prewarm('{index}'), pg_prewarm('{self.table}')")
        entry = {"index": label, "build_s": build_s, "bytes": size, "info": info, "rows": []}
        self.result["indexes"].append(entry)
        # pg_recall's scans go on past ef_search rows by default (hnsw.iterative_scan), so
        # its top-500 is measured at every setting; pgvector's stop at ef_search rows.
        continues = self.engine.name == "pg_recall"
        return [(entry, setting, k) for setting in settings for k in self.ks
                if continues or not (setting[2].get("ef_search", k) < k and k > 10)]

    def measure_setting(self, todo):
        entry, (name, setup, extra), k = todo
        row = measure(self.url, self.sql.format(k=k), self.queries, self.gt, k,
                      setup + ["SET enable_seqscan = off"], self.engine.extension, warmup=self.warmup)
        row.update(extra)
        entry["rows"].append(row)
        self.log(f"  {name:<22}" + fmt(row))

    def drop(self, am):
        self.conn.execute(f"DROP INDEX {self.table}_{am}")

    def save(self):
        self.conn.close()
        with open(os.path.join(OUT, f"{self.engine.results_name(self.name)}.json"), "w") as f:
            json.dump(self.result, f, indent=2)


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for result in results:
        for entry in result["indexes"]:
            for k in sorted({r["k"] for r in entry["rows"]}):
                rows = [r for r in entry["rows"] if r["k"] == k]
                ax.plot([r["recall"] for r in rows], [r["qps_1"] for r in rows], marker="o",
                        linestyle="-" if result["engine"] == "pg_recall" else "--",
                        label=f"{result['engine']} {entry['index']} k={k}")
    result = results[0]
    ax.set_xlabel("recall@k")
    ax.set_ylabel("QPS (1 connection)")
    ax.set_yscale("log")
    ax.set_title(f"{result['dataset']} ({result['rows']} × {result['dims']}, {result['metric']})")
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
    ap.add_argument("--engines", default="pg_recall", help="pg_recall and/or pgvector (scripts/pgvector.sh)")
    args = ap.parse_args()
    engines = [Engine(e) for e in args.engines.split(",")]
    sweep = [int(x) for x in args.sweep.split(",")]
    for name in args.datasets.split(","):
        bench_dataset(args.url, name, args.queries, args.exact_queries, sweep, args.indexes.split(","), engines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
