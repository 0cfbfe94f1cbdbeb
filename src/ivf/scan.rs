//! Index scans: `ORDER BY embedding <op> $q [LIMIT n]`.
//!
//! The first call ranks the lists by centroid and scans the closest `probes` of them; the
//! rows are ranked by a lower bound of their distance computed from the lists' 8-bit codes,
//! and handed out once their exact value, read from the heap row (`crate::rerank`), is no
//! larger than every bound still waiting — so a batch comes out in exact distance order. When the executor asks for more (a `WHERE` clause
//! rejected rows) and `ivfflat.iterative_scan` is `relaxed_order`, the next `probes` lists are
//! scanned and their rows follow, and so on until every list is scanned or
//! `ivfflat.max_probes` is reached. A later batch can hold a row closer than the previous
//! batch's last one (hence "relaxed").

use pgrx::pg_sys;
use pgrx::prelude::*;
use recall_core::bound::QueryBound;
use recall_core::distance::Metric;
use recall_core::hnsw::tuple::ItemPtr;
use recall_core::ivf::tuple::{self, Entry};

use super::centroids;
use super::meta::{self, IvfMeta};
use super::options::{self, IterativeScan};
use super::PAGE_LIST;
use crate::opclass::prepare;
use crate::rerank::{Candidate, HeapRerank, RerankQueue};
use crate::storage::buffer::Lock;
use crate::storage::{page, recent, LockedBuffer};
use crate::vector::Vector;

struct ScanState {
    started: bool,
    metric: Metric,
    dims: usize,
    query: Vec<f32>,
    meta: Option<IvfMeta>,
    /// Lists closest first.
    order: Vec<u32>,
    next_list: usize,
    probes: usize,
    /// Lists this scan may scan in all.
    limit: usize,
    /// The current batch, handed out in exact order.
    queue: RerankQueue,
    rerank: Option<HeapRerank>,
}

impl ScanState {
    /// Back to the state of a new scan, freeing the heap fetch (normal end or rescan).
    unsafe fn reset(&mut self) {
        if let Some(r) = self.rerank.take() {
            r.end();
        }
        *self = ScanState::empty();
    }

    fn empty() -> Self {
        ScanState {
            started: false,
            metric: Metric::L2,
            dims: 0,
            query: Vec::new(),
            meta: None,
            order: Vec::new(),
            next_list: 0,
            probes: 1,
            limit: 0,
            queue: RerankQueue::default(),
            rerank: None,
        }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn ambeginscan(
    index: pg_sys::Relation,
    nkeys: std::ffi::c_int,
    norderbys: std::ffi::c_int,
) -> pg_sys::IndexScanDesc {
    crate::am::begin_scan(index, nkeys, norderbys, ScanState::empty())
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amrescan(
    scan: pg_sys::IndexScanDesc,
    keys: pg_sys::ScanKey,
    nkeys: std::ffi::c_int,
    orderbys: pg_sys::ScanKey,
    norderbys: std::ffi::c_int,
) {
    crate::am::copy_scan_keys(scan, keys, nkeys, orderbys, norderbys);
    (*((*scan).opaque as *mut ScanState)).reset();
}

unsafe fn start(scan: pg_sys::IndexScanDesc, s: &mut ScanState) {
    if (*scan).orderByData.is_null() || (*scan).numberOfOrderBys == 0 {
        error!("cannot scan ivfflat index without order");
    }
    let index = (*scan).indexRelation;
    let meta = meta::read(index);
    s.metric = meta.metric();
    s.dims = meta.dims as usize;
    // A NULL query orders nothing in particular; like pgvector, search the zero vector so the
    // scan still returns every row.
    let key = &*(*scan).orderByData;
    let raw = if key.sk_flags & pg_sys::SK_ISNULL as i32 != 0 {
        vec![0.0; s.dims]
    } else {
        let v = Vector::from_datum_unchecked(key.sk_argument);
        crate::vector::errors::check_same_dims(s.dims, v.dim());
        v.as_slice().to_vec()
    };
    s.query = prepare(s.metric, &raw).unwrap_or_else(|| vec![0.0; s.dims]);
    s.rerank = Some(HeapRerank::new(scan, s.metric, raw));
    let c = centroids::cached(index, &meta);
    s.order = centroids::ranked(&c, s.dims, s.metric, &s.query)
        .into_iter()
        .map(|(_, j)| j)
        .collect();
    s.meta = Some(meta);
    let probes = options::effective_probes(&meta);
    s.probes = probes.clamp(1, s.order.len().max(1));
    s.limit = match options::ITERATIVE_SCAN.get() {
        IterativeScan::Off => s.probes,
        IterativeScan::RelaxedOrder => s
            .order
            .len()
            .min((options::MAX_PROBES.get().max(1) as usize).max(s.probes)),
    };
    s.started = true;
}

/// Scans the next `probes` lists into the batch. False when no list is left.
unsafe fn next_batch(index: pg_sys::Relation, s: &mut ScanState) -> bool {
    let end = (s.next_list + s.probes).min(s.limit);
    if s.next_list >= end {
        return false;
    }
    let meta = s.meta.expect("scan started");
    let bound = QueryBound::new(s.metric, &s.query, meta.quantizer());
    for &j in &s.order[s.next_list..end] {
        let mut blk = centroids::head(index, &meta, j as usize);
        while blk != tuple::NO_PAGE {
            pgrx::check_for_interrupts!();
            let buf = LockedBuffer::read_remembered(index, blk, Lock::Share);
            let p = buf.page();
            if page::kind(p) != Some(PAGE_LIST) {
                error!(
                    "ivfflat index \"{}\" has a damaged list page {blk}; REINDEX it",
                    crate::opclass::relname(index)
                );
            }
            let next = page::link(p);
            if next != tuple::NO_PAGE {
                recent::prefetch_page(index, next);
            }
            for off in 1..=page::max_offset(p) {
                if let Some(e) = page::item(p, off).and_then(|b| Entry::parse(b, s.dims)) {
                    s.queue
                        .bounds
                        .push(Candidate(bound.lower_bound(e.codes(), e.error()), e.tid()));
                }
            }
            blk = next;
        }
    }
    s.next_list = end;
    true
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amgettuple(
    scan: pg_sys::IndexScanDesc,
    direction: pg_sys::ScanDirection::Type,
) -> bool {
    if direction != pg_sys::ScanDirection::ForwardScanDirection {
        error!("ivfflat index scans only go forward");
    }
    let s = &mut *((*scan).opaque as *mut ScanState);
    if !s.started {
        start(scan, s);
    }
    let found = next_row(scan, s);
    if let Some(r) = s.rerank.as_mut() {
        r.release();
    }
    match found {
        Some(tid) => {
            if let Some(r) = s.rerank.as_ref() {
                r.table().hand_over(scan, tid);
            }
            (*scan).xs_heaptid = page::to_item_pointer(tid);
            (*scan).xs_recheck = false;
            (*scan).xs_recheckorderby = false;
            true
        }
        None => false,
    }
}

/// The next row in exact order: a row whose exact value (read from the heap) is no larger
/// than every bound still waiting cannot be preceded by any of them.
unsafe fn next_row(scan: pg_sys::IndexScanDesc, s: &mut ScanState) -> Option<ItemPtr> {
    loop {
        let rerank = s.rerank.as_mut().expect("scan started");
        if let Some(Candidate(_, tid)) = s.queue.next(rerank) {
            return Some(tid);
        }
        if !next_batch((*scan).indexRelation, s) {
            return None;
        }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amendscan(scan: pg_sys::IndexScanDesc) {
    (*((*scan).opaque as *mut ScanState)).reset();
}
