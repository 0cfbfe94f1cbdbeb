//! Index scans: `ORDER BY embedding <op> $q [LIMIT n]`.
//!
//! The first call ranks the lists by centroid and scans the closest `probes` of them; the
//! rows come out in distance order. When the executor asks for more (a `WHERE` clause
//! rejected rows) and `ivfflat.iterative_scan` is `relaxed_order`, the next `probes` lists are
//! scanned and their rows follow, and so on until every list is scanned or
//! `ivfflat.max_probes` is reached. A later batch can hold a row closer than the previous
//! batch's last one (hence "relaxed").

use pgrx::pg_sys;
use pgrx::prelude::*;
use recall_core::distance::{order_distance, Metric};
use recall_core::hnsw::tuple::ItemPtr;
use recall_core::ivf::tuple::{self, Entry};

use super::centroids;
use super::meta::{self, IvfMeta};
use super::options::{self, IterativeScan};
use super::PAGE_LIST;
use crate::opclass::prepare;
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
    /// The current batch, closest last.
    batch: Vec<(f32, ItemPtr)>,
}

impl ScanState {
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
            batch: Vec::new(),
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
    *((*scan).opaque as *mut ScanState) = ScanState::empty();
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
    s.query = if key.sk_flags & pg_sys::SK_ISNULL as i32 != 0 {
        vec![0.0; s.dims]
    } else {
        let v = Vector::from_datum_unchecked(key.sk_argument);
        crate::vector::errors::check_same_dims(s.dims, v.dim());
        prepare(s.metric, v.as_slice()).unwrap_or_else(|| vec![0.0; s.dims])
    };
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
                    s.batch
                        .push((order_distance(s.metric, &s.query, &e.vector()), e.tid()));
                }
            }
            blk = next;
        }
    }
    s.next_list = end;
    s.batch.sort_by(|a, b| b.0.total_cmp(&a.0));
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
    loop {
        if let Some((_, tid)) = s.batch.pop() {
            (*scan).xs_heaptid = page::to_item_pointer(tid);
            (*scan).xs_recheck = false;
            (*scan).xs_recheckorderby = false;
            return true;
        }
        if !next_batch((*scan).indexRelation, s) {
            return false;
        }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amendscan(scan: pg_sys::IndexScanDesc) {
    *((*scan).opaque as *mut ScanState) = ScanState::empty();
}
