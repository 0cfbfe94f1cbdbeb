#!/usr/bin/env python3
"""`make bench-intent`: what `optimized_for` / `target_recall` and `recall.tune()` deliver.

For each data set and access method: builds a plain index (pgvector's parameters) and one per
intent, measures each index's build time and the recall@k its calibrated setting gives on
held-out queries (not the calibration sample: the data sets' own query splits), and compares
its QPS with the cheapest hand-tuned setting that reaches the same target on the same queries,
measured in the same run (alternating, median of three, server-side prepared statements).
Then `recall.tune()` on the plain index, and `target_recall = 0.95, target_k = 500`.
Writes `bench-results/intent-<dataset>.json`.

Usage: intent.py --url URL [--datasets fashion-mnist,synthetic-ip] [--ams hnsw,ivfflat]
                 [--intents recall,balanced,latency|none] [--no-k500]
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner import datasets, db, truth  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench-results")

DATASETS = {
    # name: (loader, metric, operator, opclass)
    "fashion-mnist": (lambda n: datasets.fashion_mnist(), "l2", "<->", "vector_l2_ops"),
    # The BASELINES generator (1,000 centres, noise 1.0, unit norm, seed 7) at 200k rows.
    "synthetic-ip": (lambda n: datasets.gaussian_mixture(200_000, 128, n, centres=1000, noise=1.0, seed=7),
                     "ip", "<#>", "vector_ip_ops"),
}

INTENTS = {"recall": 0.99, "balanced": 0.95, "latency": 0.90}
KNOB = {"hnsw": ("hnsw.ef_search", "ef_search"), "ivfflat": ("ivfflat.probes", "probes")}


def run(url, sql, queries, setup):
    ids, lat = db.run_queries(url, sql, queries, setup)
    return ids, float(len(queries) / (lat.sum() / 1000.0)), float(np.percentile(lat, 50))


def recall_of(gt, ids, k):
    return float(np.mean([gt.recall(i, r, k) for i, r in enumerate(ids)]))


def point(url, sql, queries, gt, k, setting):
    """Recall, QPS and p50 with `setting` (None: the index's calibrated value)."""
    setup = ["SET enable_seqscan = off"] + ([f"SET {setting[0]} = {setting[1]}"] if setting else [])
    ids, qps, p50 = run(url, sql, queries, setup)
    return recall_of(gt, ids, k), qps, p50


def build(conn, table, am, opclass, with_):
    conn.execute(f"DROP INDEX IF EXISTS {table}_{am}")
    t0 = time.perf_counter()
    conn.execute(f"CREATE INDEX {table}_{am} ON {table} USING {am} (embedding {opclass}){with_}")
    secs = time.perf_counter() - t0
    info = conn.execute(f"SELECT recall.index_info('{table}_{am}')").fetchone()[0]
    conn.execute(f"SELECT pg_prewarm('{table}_{am}')")
    return secs, info


def cheapest_hand_tuned(url, sql, queries, gt, k, knob, target, start):
    """The smallest setting reaching `target` on these queries, scanning up from `start`."""
    value, seen = max(1, start), {}
    while True:
        r, _, _ = point(url, sql, queries, gt, k, (knob, value))
        seen[value] = r
        if r >= target:
            # Walk down while the smaller setting still reaches the target.
            while value > 1:
                r2, _, _ = point(url, sql, queries, gt, k, (knob, value - 1))
                seen[value - 1] = r2
                if r2 < target:
                    break
                value -= 1
            return value, seen
        if value >= 1000:
            return None, seen
        value = value + max(1, value // 4)


def compare(url, sql, queries, gt, k, knob, best):
    """Median QPS of the calibrated setting and of `best`, measured alternately."""
    cal, hand = [], []
    for _ in range(3):
        cal.append(point(url, sql, queries, gt, k, None)[1])
        hand.append(point(url, sql, queries, gt, k, (knob, best))[1])
    return statistics.median(cal), statistics.median(hand)


def bench(url, name, n_queries, ams, intents, k500):
    loader, metric, op, opclass = DATASETS[name]
    print(f"== {name}", flush=True)
    base, queries = loader(n_queries)
    queries = queries[:n_queries]
    conn = db.connect(url)
    conn.execute("SET maintenance_work_mem = '4GB'")
    conn.execute("SET max_parallel_maintenance_workers = 1")
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    table = "intent_" + name.replace("-", "_")
    db.load_table(conn, table, base, base.shape[1])
    conn.execute(f"SELECT pg_prewarm('{table}')")
    gt = truth.GroundTruth(base, np.arange(len(base)), queries, 500, metric)
    sql = f"SELECT id FROM {table} ORDER BY embedding {op} %s LIMIT {{k}}"
    result = {"dataset": name, "rows": len(base), "dims": int(base.shape[1]), "queries": len(queries), "ams": {}}
    for am in ams:
        guc, field = KNOB[am]
        res = result["ams"].setdefault(am, {})
        secs, info = build(conn, table, am, opclass, "")
        res["plain"] = {"build_s": secs, "info": info}
        print(f"{am} plain: build {secs:.1f} s", flush=True)
        t0 = time.perf_counter()
        tuned = conn.execute(f"SELECT recall.tune('{table}_{am}', 0.95)").fetchone()[0]
        tune_s = time.perf_counter() - t0
        chosen = tuned["calibration"]["chosen"][field]
        r, qps, p50 = point(url, sql.format(k=10), queries, gt, 10, None)
        res["tune"] = {"seconds": tune_s, "chosen": chosen, "measured": tuned["calibration"]["measured_recall"],
                       "held_out_recall": r, "qps": qps}
        print(f"  recall.tune 0.95: {tune_s:.1f} s → {field} {chosen}, held-out recall@10 {r:.4f}, {qps:.0f} QPS",
              flush=True)
        for intent, target in ((i, INTENTS[i]) for i in intents):
            secs, info = build(conn, table, am, opclass, f" WITH (optimized_for = '{intent}')")
            cal = info["calibration"]
            chosen = cal["chosen"][field]
            r, _, p50 = point(url, sql.format(k=10), queries, gt, 10, None)
            best, seen = cheapest_hand_tuned(url, sql.format(k=10), queries, gt, 10, guc, target,
                                             max(1, chosen // 2))
            row = {"build_s": secs, "build_s_plain": res["plain"]["build_s"], "chosen": chosen,
                   "calibration_recall": cal["measured_recall"], "held_out_recall": r, "p50_ms": p50,
                   "best_hand_tuned": best, "hand_tuned_curve": seen}
            if best is not None:
                qps_cal, qps_hand = compare(url, sql.format(k=10), queries, gt, 10, guc, best)
                row.update(qps=qps_cal, qps_hand_tuned=qps_hand, qps_ratio=qps_cal / qps_hand)
            res[intent] = row
            print(f"  {intent:<8} target {target}: build {secs:.1f} s, {field} {chosen} (calibration "
                  f"{cal['measured_recall']:.3f}) → held-out {r:.4f}; cheapest hand-tuned {field} {best}; "
                  f"QPS {row.get('qps', 0):.0f} vs {row.get('qps_hand_tuned', 0):.0f} "
                  f"(ratio {row.get('qps_ratio', 0):.3f})", flush=True)
        if not k500:
            conn.execute(f"DROP INDEX {table}_{am}")
            continue
        secs, info = build(conn, table, am, opclass, " WITH (target_recall = 0.95, target_k = 500)")
        chosen = info["calibration"]["chosen"][field]
        r, qps, p50 = point(url, sql.format(k=500), queries, gt, 500, None)
        res["k500"] = {"build_s": secs, "chosen": chosen, "calibration_recall": info["calibration"]["measured_recall"],
                       "held_out_recall": r, "qps": qps, "p50_ms": p50}
        print(f"  target 0.95@500: build {secs:.1f} s, {field} {chosen} → held-out recall@500 {r:.4f}, "
              f"p50 {p50:.2f} ms", flush=True)
        conn.execute(f"DROP INDEX {table}_{am}")
    conn.close()
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"intent-{name}.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--datasets", default="fashion-mnist,synthetic-ip")
    ap.add_argument("--ams", default="hnsw,ivfflat")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--intents", default=",".join(INTENTS), help="comma list, or 'none'")
    ap.add_argument("--no-k500", action="store_true", help="skip target_recall 0.95, target_k 500")
    a = ap.parse_args()
    intents = [] if a.intents == "none" else a.intents.split(",")
    for name in a.datasets.split(","):
        bench(a.url, name, a.queries, a.ams.split(","), intents, not a.no_k500)


if __name__ == "__main__":
    main()
