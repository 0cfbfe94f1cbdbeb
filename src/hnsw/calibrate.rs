//! Calibration of an hnsw index's `ef_search`: the smallest beam width whose recall,
//! measured on indexed vectors searched for with their own element hidden, reaches the
//! target. At the end of a build it runs on the in-memory graph; `recall.tune()` runs the
//! same search over the index's pages.

use std::sync::atomic::Ordering;

use pgrx::pg_sys;
use pgrx::prelude::*;
use recall_core::calibrate::{hnsw_recall, recall_of, search_hiding, smallest, Truth};
use recall_core::hnsw::build::MemGraph;
use recall_core::rng::SplitMix64;

use super::graph::{elements_on, nblocks, PageGraph};
use super::meta::{self, HnswMeta};
use crate::intent::{Target, CALIBRATION_QUERIES};
use crate::parallel::{self, Pool};
use crate::tune::{Observer, QuerySample};

/// The smallest ef_search whose recall@k, measured on indexed vectors as queries against
/// their exact neighbours, reaches the target; recorded in the metapage and reported.
pub fn calibrate_graph(graph: &MemGraph, t: Target, meta: &mut HnswMeta) {
    let n = graph.len();
    if n < 2 {
        return;
    }
    let mut queries: Vec<u32> = (0..n as u32).collect();
    SplitMix64::new(0xCA11_B4A7).shuffle(&mut queries);
    queries.truncate(CALIBRATION_QUERIES);
    let (dims, k) = (graph.dims, t.k);
    let on_codes = meta.layout().sq.is_some();
    let (ef, recall) = parallel::run(
        parallel::maintenance_threads(),
        |cancel| {
            let qv: Vec<f32> = queries
                .iter()
                .flat_map(|&q| graph.vector(q).to_vec())
                .collect();
            let ids: Vec<u64> = queries.iter().map(|&q| q as u64).collect();
            let mut truth = Truth::new(qv, ids, dims, k, graph.metric);
            // In chunks, so a cancel is noticed within one chunk's work.
            const CHUNK: usize = 65536;
            let zeros = vec![0u32; CHUNK.min(n)];
            for start in (0..n).step_by(CHUNK) {
                if cancel.load(Ordering::Relaxed) {
                    return (0, 0.0);
                }
                let end = (start + CHUNK).min(n);
                let all: Vec<u64> = (start as u64..end as u64).collect();
                truth.observe(
                    &graph.vectors()[start * dims..end * dims],
                    &all,
                    &zeros[..end - start],
                );
            }
            let truth = truth.finish();
            smallest(1, widest_beam(k), t.recall, |ef| {
                if cancel.load(Ordering::Relaxed) {
                    1.0 // ends the bisection; run() raises the cancel
                } else {
                    hnsw_recall(graph, &queries, &truth, k, ef, on_codes)
                }
            })
        },
        || {},
    );
    record(meta, t, ef, recall, queries.len());
}

/// The widest beam calibration tries: `hnsw.ef_search`'s bound (1000, pgvector's), or 8·k
/// for large k. A calibrated value is not bound by the GUC's range, and large-k targets on
/// hard data need it: on a 200k × 128 Gaussian mixture (1,000 clusters, 200 rows each, so
/// a top-500 spans clusters) recall@500 is 0.84 at ef 1000, 0.92 at 2000, 0.97 at 4000.
fn widest_beam(k: usize) -> usize {
    (8 * k).max(1000)
}

/// Stores a calibration result in the metapage image and reports it.
fn record(meta: &mut HnswMeta, t: Target, ef: usize, recall: f64, queries: usize) {
    meta.calibrated_ef_search = ef as u32;
    meta.calibrated_recall = recall as f32;
    meta.calibration = t.code();
    meta.target_recall = t.recall as f32;
    meta.target_k = t.k as u32;
    meta.calibration_queries = queries as u32;
    let reached = if recall >= t.recall {
        String::new()
    } else {
        format!(
            " (the target is not reachable within ef_search {})",
            widest_beam(t.k)
        )
    };
    ereport!(
        NOTICE,
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        format!(
            "hnsw calibrated: ef_search {ef} for recall@{} {:.3} (measured {recall:.3} on {queries} indexed rows){reached}",
            t.k, t.recall
        )
    );
}

/// `recall.tune()` for an hnsw index.
pub unsafe fn tune(index: pg_sys::Relation, t: Target) {
    calibrate_pages(index, t, crate::intent::TUNED)
}

/// Calibration over the index's pages (`recall.tune()`, and builds whose graph outgrew
/// `maintenance_work_mem`): queries sampled from the live elements, their exact neighbours
/// from every live element, then the beam-width search each scan would run, each query
/// with its own element hidden. Recorded in the metapage under calibration code `code`.
pub unsafe fn calibrate_pages(index: pg_sys::Relation, t: Target, code: u32) {
    let meta = meta::read(index);
    let (dims, layout, k) = (meta.dims as usize, meta.layout(), t.k);
    let blocks = nblocks(index);
    let mut sample = QuerySample::new(dims);
    for blk in 1..blocks {
        elements_on(index, blk, layout, |at, e| {
            if e.tid_count() > 0 {
                sample.offer(&e.vector(), at.to_u64());
            }
        });
    }
    let pool = Pool::new(parallel::maintenance_threads());
    let mut observer = Observer::new(sample.into_truth(index, t, meta.metric()), &pool);
    for blk in 1..blocks {
        elements_on(index, blk, layout, |at, e| {
            if e.tid_count() > 0 {
                observer.push(&e.vector(), at.to_u64(), 0);
            }
        });
        observer.page_done();
    }
    let truth = observer.finish();
    let queries: Vec<(u64, Vec<f32>)> = (0..truth.queries())
        .map(|q| (truth.query_id(q), truth.query(q).to_vec()))
        .collect();
    let truth = truth.finish();
    let entry = meta
        .entry()
        .expect("an index with rows has an entry point")
        .to_u64();
    let (ef, recall) = smallest(1, widest_beam(k), t.recall, |ef| {
        let found: Vec<Vec<u64>> = queries
            .iter()
            .map(|(id, v)| {
                let graph = PageGraph::new(index, &meta, v.clone(), false);
                // Truth and walk are both on the decoded vectors: no rerank to emulate.
                search_hiding(graph, *id, entry, meta.entry_level as usize, k, ef, None)
            })
            .collect();
        recall_of(&truth, &found, k)
    });
    let mut tuned = meta;
    record(&mut tuned, t, ef, recall, queries.len());
    meta::update(index, |m: &mut HnswMeta| {
        m.calibrated_ef_search = tuned.calibrated_ef_search;
        m.calibrated_recall = tuned.calibrated_recall;
        m.calibration = code;
        m.target_recall = tuned.target_recall;
        m.target_k = tuned.target_k;
        m.calibration_queries = tuned.calibration_queries;
    });
}
