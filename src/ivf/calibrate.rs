//! Calibration of an ivfflat index's `default_probes`: the smallest probe count whose recall,
//! measured on indexed rows as queries, reaches the target. At the end of a build the exact
//! neighbours are gathered during the assignment pass; `recall.tune()` gathers them from the
//! index's own lists.

use pgrx::pg_sys;
use pgrx::prelude::*;
use recall_core::calibrate::{cheapest, ivf_curve, Truth};

use super::centroids::{self, Lists};
use super::lists::{entries, ListPages};
use super::meta::{self, IvfMeta};
use crate::intent::Target;
use crate::parallel::Pool;
use crate::storage::buffer::Lock;
use crate::tune::{Observer, QuerySample};

/// Picks the smallest probe count whose measured recall reaches the target, records it as
/// the index's default, and says so.
pub fn calibrate(meta: &mut IvfMeta, centroids: &[f32], t: Target, truth: Truth, pool: &Pool) {
    let dims = meta.dims as usize;
    let lists = meta.lists as usize;
    let metric = meta.metric();
    let queries: Vec<Vec<f32>> = (0..truth.queries())
        .map(|q| truth.query(q).to_vec())
        .collect();
    let truth = truth.finish();
    if queries.is_empty() {
        return;
    }
    let list_rank: Vec<Vec<u32>> = pool.run(
        |_| {
            use rayon::prelude::*;
            queries
                .par_iter()
                .map(|q| {
                    let mut rank = vec![0u32; lists];
                    for (r, (_, j)) in centroids::ranked(centroids, dims, metric, q)
                        .into_iter()
                        .enumerate()
                    {
                        rank[j as usize] = r as u32;
                    }
                    rank
                })
                .collect()
        },
        || {},
    );
    let curve = ivf_curve(&truth, &list_rank, lists, t.k);
    let (probes, achieved) = cheapest(&curve, t.recall);
    meta.default_probes = probes as u32;
    meta.calibration = t.code();
    meta.target_recall = t.recall as f32;
    meta.target_k = t.k as u32;
    meta.calibrated_recall = achieved as f32;
    meta.calibration_queries = queries.len() as u32;
    let reached = if achieved >= t.recall {
        ""
    } else {
        " (the target is not reachable: every list is probed)"
    };
    ereport!(
        NOTICE,
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        format!(
            "ivfflat calibrated: {probes} of {lists} probes for recall@{} {:.3} (measured {achieved:.3} on {} indexed rows){reached}",
            t.k,
            t.recall,
            queries.len()
        )
    );
}

/// `recall.tune()` for an ivfflat index: queries sampled from its entries, their neighbours
/// from every entry (each tagged with its list), the curve, the metapage. The entries hold
/// 8-bit codes, so queries and neighbours are those of the decoded vectors: which lists a
/// probe count reaches is what is measured, and the codes preserve neighbourhoods far more
/// finely than lists partition them.
pub unsafe fn tune(index: pg_sys::Relation, t: Target) {
    let meta = meta::read(index);
    let dims = meta.dims as usize;
    let sq = meta.quantizer();
    let lists = Lists::read(index, &meta);
    let mut sample = QuerySample::new(dims);
    let mut v = vec![0f32; dims];
    for (_, buf) in ListPages::new(index, lists.heads.clone(), Lock::Share) {
        entries(buf.page(), dims, |_, e| {
            e.decode_into(&sq, &mut v);
            sample.offer(&v, e.tid().to_u64())
        });
    }
    let pool = Pool::new(crate::parallel::maintenance_threads());
    let mut observer = Observer::new(sample.into_truth(index, t, meta.metric()), &pool);
    for (j, buf) in ListPages::new(index, lists.heads.clone(), Lock::Share) {
        entries(buf.page(), dims, |_, e| {
            e.decode_into(&sq, &mut v);
            observer.push(&v, e.tid().to_u64(), j as u32)
        });
        drop(buf);
        observer.page_done();
    }
    let truth = observer.finish();
    let mut tuned = meta;
    calibrate(&mut tuned, &lists.centroids, t, truth, &pool);
    meta::update(index, |m: &mut IvfMeta| {
        m.default_probes = tuned.default_probes;
        m.calibration = crate::intent::TUNED;
        m.target_recall = tuned.target_recall;
        m.target_k = tuned.target_k;
        m.calibrated_recall = tuned.calibrated_recall;
        m.calibration_queries = tuned.calibration_queries;
    });
}
