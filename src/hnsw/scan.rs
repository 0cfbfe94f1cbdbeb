//! Index scans: `ORDER BY embedding <op> $q [LIMIT n]`.
//!
//! The first call descends the upper layers and starts a resumable layer-0 search; each call
//! then hands the executor one heap TID. With `hnsw.iterative_scan` at its default the search
//! keeps exploring batch after batch for as long as the executor asks, so a `WHERE` clause
//! that rejects most rows cannot shorten a `LIMIT`.

use pgrx::pg_sys;
use pgrx::prelude::*;
use recall_core::distance::order_distance;
use recall_core::fasthash::IdSet;
use recall_core::hnsw::search::{Continuation, ResumableSearch, Scored};
use recall_core::hnsw::tuple::ItemPtr;
use std::collections::VecDeque;

use super::graph::{for_each_element, PageGraph};
use super::meta;
use super::options::{self, IterativeScan};
use super::prepare;
use crate::vector::Vector;

struct ScanState {
    graph: Option<PageGraph>,
    search: Option<ResumableSearch<u64>>,
    visited: IdSet<u64>,
    /// TIDs of the current element still to hand out.
    ready: VecDeque<ItemPtr>,
    max_tuples: u64,
    /// The last resort of a complete scan: elements the graph walk never reached (their
    /// incoming edges were pruned away), in distance order, closest last.
    sweep: Option<Vec<Scored<u64>>>,
    exhausted: bool,
}

impl ScanState {
    fn empty() -> Self {
        ScanState {
            graph: None,
            search: None,
            visited: IdSet::default(),
            ready: VecDeque::new(),
            max_tuples: u64::MAX,
            sweep: None,
            exhausted: false,
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
    let state = &mut *((*scan).opaque as *mut ScanState);
    *state = ScanState::empty();
}

/// The query vector of the scan's `ORDER BY`, prepared for the index's metric. A NULL query
/// orders nothing in particular; it is searched as the zero vector, as pgvector does, so the
/// scan still returns every row.
unsafe fn query_vector(scan: pg_sys::IndexScanDesc, meta: &meta::HnswMeta) -> Vec<f32> {
    let key = &*(*scan).orderByData;
    let dims = meta.dims as usize;
    if key.sk_flags & pg_sys::SK_ISNULL as i32 != 0 {
        return vec![0.0; dims];
    }
    let v = Vector::from_datum_unchecked(key.sk_argument);
    crate::vector::errors::check_same_dims(dims, v.dim());
    prepare(meta.metric(), v.as_slice()).unwrap_or_else(|| vec![0.0; dims])
}

unsafe fn start(scan: pg_sys::IndexScanDesc, state: &mut ScanState) {
    if (*scan).orderByData.is_null() || (*scan).numberOfOrderBys == 0 {
        error!("cannot scan hnsw index without order");
    }
    let index = (*scan).indexRelation;
    let meta = meta::read(index);
    let query = query_vector(scan, &meta);
    let mut graph = PageGraph::new(index, &meta, query, false);
    let Some(entry) = meta.entry() else {
        state.exhausted = true;
        return;
    };
    let Some(start) = graph.descend(entry, meta.entry_level as usize, 0) else {
        state.exhausted = true;
        return;
    };
    let mode = match options::ITERATIVE_SCAN.get() {
        IterativeScan::Off => Continuation::Off,
        IterativeScan::RelaxedOrder => Continuation::Relaxed,
        IterativeScan::StrictOrder => Continuation::Strict,
    };
    let ef = options::effective_ef_search(&meta);
    state.max_tuples = options::MAX_SCAN_TUPLES.get().max(1) as u64;
    // Sized for what a search at this ef usually visits, so the set does not rehash its way
    // up on every query (2-3 % of scan time in a profile at ef_search 10); capped so a large
    // ef does not make each scan start with a fresh multi-page allocation.
    state.visited.reserve((16 * ef + 64).min(4096));
    state.search = Some(ResumableSearch::new(&[start], ef, mode, &mut state.visited));
    state.graph = Some(graph);
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amgettuple(
    scan: pg_sys::IndexScanDesc,
    direction: pg_sys::ScanDirection::Type,
) -> bool {
    if direction != pg_sys::ScanDirection::ForwardScanDirection {
        error!("hnsw index scans only go forward");
    }
    let state = &mut *((*scan).opaque as *mut ScanState);
    // No pin may outlive this call, also when an ERROR unwinds through it (see
    // `PageGraph::release_pin`).
    struct Unpin(*mut ScanState);
    impl Drop for Unpin {
        fn drop(&mut self) {
            if let Some(g) = unsafe { (*self.0).graph.as_mut() } {
                g.release_pin();
            }
        }
    }
    let _unpin = Unpin(state);
    if state.graph.is_none() && !state.exhausted {
        start(scan, state);
    }
    loop {
        if let Some(tid) = state.ready.pop_front() {
            (*scan).xs_heaptid = crate::storage::page::to_item_pointer(tid);
            // Exact order (no recheck): the executor returns rows as they come.
            (*scan).xs_recheck = false;
            (*scan).xs_recheckorderby = false;
            return true;
        }
        if state.exhausted {
            return false;
        }
        pgrx::check_for_interrupts!();
        let (Some(graph), Some(search)) = (state.graph.as_mut(), state.search.as_mut()) else {
            return false;
        };
        if let Some(sweep) = state.sweep.as_mut() {
            match sweep.pop() {
                Some(s) => state.ready.extend(graph.heap_tids(s.id)),
                None => state.exhausted = true,
            }
            continue;
        }
        match search.next(graph, &mut state.visited, state.max_tuples) {
            Some(s) => state.ready.extend(graph.heap_tids(s.id)),
            None if search.mode() == Continuation::Relaxed
                && search.evaluated < state.max_tuples =>
            {
                state.sweep = Some(unreached((*scan).indexRelation, graph, &state.visited));
            }
            None => state.exhausted = true,
        }
    }
}

/// Every element the walk did not visit, with its distance, sorted closest last. Normally
/// empty or tiny; it exists so that an iterative scan can never miss a row.
unsafe fn unreached(
    index: pg_sys::Relation,
    graph: &PageGraph,
    visited: &IdSet<u64>,
) -> Vec<Scored<u64>> {
    let mut out = Vec::new();
    let (dims, metric, q) = (graph.dims, graph.metric, graph.query());
    for_each_element(index, dims, |at, e| {
        let id = at.to_u64();
        if e.tid_count() > 0 && !visited.contains(&id) {
            out.push(Scored {
                dist: order_distance(metric, q, &e.vector(dims)),
                id,
            });
        }
    });
    out.sort_by(|a, b| b.cmp(a));
    out
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amendscan(scan: pg_sys::IndexScanDesc) {
    // The state lives in the scan's memory context and is dropped with it; release the
    // graph's caches now so a long-lived portal does not hold them.
    let state = &mut *((*scan).opaque as *mut ScanState);
    *state = ScanState::empty();
}
