//! `recall.index_info(regclass)`: the parameters an index was built with and the ones it
//! chose for itself (self-sized lists, default probes), as JSON.

use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::json;

use crate::am::Kind;
use crate::opclass::metric_name;

#[pg_extern(sql = false)]
fn index_info(index: pg_sys::Oid) -> pgrx::JsonB {
    unsafe {
        let rel = pg_sys::index_open(index, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let v = describe(rel);
        pg_sys::index_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        pgrx::JsonB(v)
    }
}

/// `recall.index_info()` of an open index.
pub unsafe fn describe(rel: pg_sys::Relation) -> serde_json::Value {
    {
        match crate::am::kind(rel) {
            Kind::Hnsw => {
                let m = crate::hnsw::meta::read(rel);
                json!({
                    "am": "hnsw",
                    "dims": m.dims,
                    "metric": metric_name(m.metric()),
                    "m": m.m,
                    "ef_construction": m.ef_construction,
                    "entry_level": m.entry().map(|_| m.entry_level),
                    "storage": match m.layout().sq {
                        Some(sq) => json!({"codes": "sq8", "centre": sq.centre(), "step": sq.step()}),
                        None => json!({"codes": null}),
                    },
                    "calibration": calibration(m.calibration, m.target_recall, m.target_k, m.calibrated_recall, m.calibration_queries, json!({"ef_search": m.calibrated_ef_search})),
                })
            }
            Kind::Ivfflat => {
                let m = crate::ivf::meta::read(rel);
                json!({
                    "am": "ivfflat",
                    "dims": m.dims,
                    "metric": metric_name(m.metric()),
                    "lists": m.lists,
                    "lists_requested": m.lists_requested,
                    "lists_self_sized": m.self_sized == 1,
                    "default_probes": m.default_probes,
                    "build_rows": m.build_rows,
                    "kmeans_sample_rows": m.sample_rows,
                    "kmeans_iterations": m.kmeans_iterations,
                    "storage": {"codes": "sq8", "centre": m.sq_centre, "step": m.sq_step},
                    "calibration": calibration(m.calibration, m.target_recall, m.target_k, m.calibrated_recall, m.calibration_queries, json!({"probes": m.default_probes})),
                })
            }
        }
    }
}

/// The calibration record of an index built with a target; JSON null without one.
pub fn calibration(
    code: u32,
    target_recall: f32,
    target_k: u32,
    measured: f32,
    queries: u32,
    chosen: serde_json::Value,
) -> serde_json::Value {
    if code == 0 {
        return serde_json::Value::Null;
    }
    let intent = crate::intent::OptimizedFor::from_code(code as i32).map(|i| i.name());
    json!({
        "optimized_for": intent,
        "by": if code == crate::intent::TUNED { "recall.tune" } else { "build" },
        "target_recall": (target_recall as f64 * 1e4).round() / 1e4,
        "target_k": target_k,
        "chosen": chosen,
        "measured_recall": (measured as f64 * 1e4).round() / 1e4,
        "queries": queries,
    })
}
