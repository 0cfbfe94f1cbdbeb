//! `recall.index_info(regclass)`: the parameters an index was built with and the ones it
//! chose for itself (self-sized lists, default probes), as JSON.

use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::json;

use crate::opclass::metric_name;

#[pg_extern(sql = false)]
fn index_info(index: pg_sys::Oid) -> pgrx::JsonB {
    unsafe {
        let rel = pg_sys::index_open(index, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let am = pg_sys::get_am_name((*(*rel).rd_rel).relam);
        let am = if am.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(am).to_string_lossy().into_owned()
        };
        let v = match am.as_str() {
            "hnsw" => {
                let m = crate::hnsw::meta::read(rel);
                json!({
                    "am": "hnsw",
                    "dims": m.dims,
                    "metric": metric_name(m.metric()),
                    "m": m.m,
                    "ef_construction": m.ef_construction,
                    "entry_level": m.entry().map(|_| m.entry_level),
                    "calibration": calibration(m.calibration, m.target_recall, m.target_k, m.calibrated_recall, m.calibration_queries, json!({"ef_search": m.calibrated_ef_search})),
                })
            }
            "ivfflat" => {
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
                    "calibration": calibration(m.calibration, m.target_recall, m.target_k, m.calibrated_recall, m.calibration_queries, json!({"probes": m.default_probes})),
                })
            }
            other => {
                pg_sys::index_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
                ereport!(
                    ERROR,
                    PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
                    format!(
                        "\"{}\" is not an hnsw or ivfflat index (access method \"{other}\")",
                        crate::opclass::relname(rel)
                    )
                );
            }
        };
        pg_sys::index_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        pgrx::JsonB(v)
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
        "target_recall": (target_recall as f64 * 1e4).round() / 1e4,
        "target_k": target_k,
        "chosen": chosen,
        "measured_recall": (measured as f64 * 1e4).round() / 1e4,
        "queries": queries,
    })
}
