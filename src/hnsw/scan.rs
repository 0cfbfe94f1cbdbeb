//! Index scans: `ORDER BY embedding <op> $q [LIMIT n]`.
//!
//! The first call descends the upper layers and starts a resumable layer-0 search; each call
//! then hands the executor one heap TID. With `hnsw.iterative_scan` at its default the search
//! keeps exploring batch after batch for as long as the executor asks, so a `WHERE` clause
//! that rejects most rows cannot shorten a `LIMIT`.
//!
//! An index whose elements are 8-bit codes walks the graph on distances to the decoded
//! vectors, then ranks each batch of results by a lower bound of the operator's value and
//! reads exact values from the heap rows (`crate::rerank`), as ivfflat does: a batch comes out
//! in exact order. `strict_order` then drops rows closer than one already returned, judged on
//! exact values.

use pgrx::pg_sys;
use pgrx::prelude::*;
use recall_core::bound::QueryBound;
use recall_core::distance::order_distance;
use recall_core::fasthash::IdSet;
use recall_core::hnsw::search::{descend_for_scan, Continuation, ResumableSearch, Scored};
use recall_core::hnsw::tuple::{Element, ItemPtr};
use std::collections::VecDeque;

use super::graph::{for_each_element, PageGraph, Seen};
use super::meta;
use super::options::{self, IterativeScan};
use super::prepare;
use crate::rerank::{Candidate, HeapRerank, RerankQueue, TablePages};
use crate::vector::Vector;

/// Heap rows of a batch prefetched at once (about 600 cache lines at 128 dimensions).
const MAX_BATCH_PREFETCH: usize = 64;

struct ScanState {
    graph: Option<PageGraph>,
    search: Option<ResumableSearch<u64>>,
    visited: IdSet<u64>,
    /// Exact elements: TIDs of the current element still to hand out.
    ready: VecDeque<ItemPtr>,
    /// Elements stored as codes: the batch being reranked.
    rerank: Option<Rerank>,
    /// The heap, whose pages returned rows are handed over in.
    table: Option<TablePages>,
    max_tuples: u64,
    /// The last resort of a complete scan: elements the graph walk never reached (their
    /// incoming edges were pruned away), in distance order, closest last.
    sweep: Option<Vec<Scored<u64>>>,
    swept: bool,
    exhausted: bool,
}

/// The state of a scan over codes.
struct Rerank {
    heap: HeapRerank,
    /// The prepared query, the metric and the quantiser, for bounds.
    query: Vec<f32>,
    metric: recall_core::distance::Metric,
    sq: recall_core::sq8::Sq8,
    /// The current batch (each row with its element's bound), handed out in exact order.
    queue: RerankQueue,
    strict: bool,
    last: f64,
}

impl ScanState {
    fn empty() -> Self {
        ScanState {
            graph: None,
            search: None,
            visited: IdSet::default(),
            ready: VecDeque::new(),
            rerank: None,
            table: None,
            max_tuples: u64::MAX,
            sweep: None,
            swept: false,
            exhausted: false,
        }
    }

    /// Back to the state of a new scan, freeing the heap fetch (normal end or rescan).
    unsafe fn reset(&mut self) {
        if let Some(r) = self.rerank.take() {
            r.heap.end();
        }
        *self = ScanState::empty();
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

/// The query vector of the scan's `ORDER BY` as given (what the operator sees) and prepared
/// for the index's metric. A NULL query orders nothing in particular; it is searched as the
/// zero vector, as pgvector does, so the scan still returns every row.
unsafe fn query_vector(scan: pg_sys::IndexScanDesc, meta: &meta::HnswMeta) -> (Vec<f32>, Vec<f32>) {
    let key = &*(*scan).orderByData;
    let dims = meta.dims as usize;
    if key.sk_flags & pg_sys::SK_ISNULL as i32 != 0 {
        return (vec![0.0; dims], vec![0.0; dims]);
    }
    let v = Vector::from_datum_unchecked(key.sk_argument);
    crate::vector::errors::check_same_dims(dims, v.dim());
    let prepared = prepare(meta.metric(), v.as_slice()).unwrap_or_else(|| vec![0.0; dims]);
    (v.as_slice().to_vec(), prepared)
}

unsafe fn start(scan: pg_sys::IndexScanDesc, state: &mut ScanState) {
    if (*scan).orderByData.is_null() || (*scan).numberOfOrderBys == 0 {
        error!("cannot scan hnsw index without order");
    }
    let index = (*scan).indexRelation;
    let meta = meta::read(index);
    let (raw, query) = query_vector(scan, &meta);
    let mut graph = PageGraph::new(index, &meta, query, false);
    let heap = (*scan).heapRelation;
    state.table = (!heap.is_null()).then(|| TablePages::new(heap));
    let Some(entry) = meta.entry() else {
        state.exhausted = true;
        return;
    };
    let Some(start) = graph.score_entry(entry) else {
        state.exhausted = true;
        return;
    };
    let wanted = options::ITERATIVE_SCAN.get();
    let codes = graph.layout.sq.is_some();
    let mode = match wanted {
        IterativeScan::Off => Continuation::Off,
        IterativeScan::RelaxedOrder => Continuation::Relaxed,
        // On codes the walk's distances are estimates: order is judged on exact values.
        IterativeScan::StrictOrder if codes => Continuation::Relaxed,
        IterativeScan::StrictOrder => Continuation::Strict,
    };
    if let Some(sq) = graph.layout.sq {
        state.rerank = Some(Rerank {
            heap: HeapRerank::new(scan, meta.metric(), raw),
            query: graph.query().to_vec(),
            metric: meta.metric(),
            sq,
            queue: RerankQueue::default(),
            strict: wanted == IterativeScan::StrictOrder,
            last: f64::NEG_INFINITY,
        });
    }
    let ef = options::effective_ef_search(&meta);
    state.max_tuples = options::MAX_SCAN_TUPLES.get().max(1) as u64;
    // Sized for what a search at this ef usually visits, so the set does not rehash its way
    // up on every query (2-3 % of scan time in a profile at ef_search 10); capped so a large
    // ef does not make each scan start with a fresh multi-page allocation. A scan that goes
    // on past its first batch grows it in one step (`grow_for_continuation`).
    state.visited.reserve((16 * ef + 64).min(4096));
    let top = meta.entry_level as usize;
    let eps = descend_for_scan(&mut graph, start, top, &mut state.visited, &mut Vec::new());
    state.visited.clear();
    state.search = Some(ResumableSearch::new(&eps, ef, mode, &mut state.visited));
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
    let found = if state.rerank.is_some() {
        let found = next_reranked(scan, state);
        if let Some(r) = state.rerank.as_mut() {
            r.heap.release();
        }
        found
    } else {
        next_exact(scan, state)
    };
    match found {
        Some(tid) => {
            if let Some(t) = state.table.as_ref() {
                t.hand_over(scan, tid);
            }
            (*scan).xs_heaptid = crate::storage::page::to_item_pointer(tid);
            // Exact order (no recheck): the executor returns rows as they come.
            (*scan).xs_recheck = false;
            (*scan).xs_recheckorderby = false;
            true
        }
        None => false,
    }
}

/// The next row of an index of exact elements: the walk's order is the operator's.
unsafe fn next_exact(scan: pg_sys::IndexScanDesc, state: &mut ScanState) -> Option<ItemPtr> {
    loop {
        if let Some(tid) = state.ready.pop_front() {
            return Some(tid);
        }
        if state.exhausted {
            return None;
        }
        pgrx::check_for_interrupts!();
        let (Some(graph), Some(search)) = (state.graph.as_mut(), state.search.as_mut()) else {
            return None;
        };
        if let Some(sweep) = state.sweep.as_mut() {
            match sweep.pop() {
                Some(s) => state.ready.extend(graph.heap_tids(s.id)),
                None => state.exhausted = true,
            }
            continue;
        }
        grow_for_continuation(search, graph, &mut state.visited);
        match search.next(graph, &mut state.visited, state.max_tuples) {
            Some(s) => state.ready.extend(graph.heap_tids(s.id)),
            None if sweep_allowed(search, state.max_tuples) => {
                let (metric, q) = (graph.metric, graph.query());
                let mut all = unreached((*scan).indexRelation, graph, &state.visited, |e| {
                    order_distance(metric, q, &e.vector()) as f64
                });
                all.sort_by(|a, b| b.0.total_cmp(&a.0));
                state.sweep = Some(
                    all.into_iter()
                        .map(|(d, id)| Scored { dist: d as f32, id })
                        .collect(),
                );
            }
            None => state.exhausted = true,
        }
    }
}

/// Makes room, once, as a search is about to start its second batch: a scan that wants more
/// rows than its first batch usually wants many (a top-500 visits a few thousand elements at
/// any ef), and sets sized for the first batch would rehash their way up several times.
/// Sizing them that large from the start made top-10 scans slower (sparser tables).
fn grow_for_continuation(
    search: &ResumableSearch<u64>,
    graph: &mut PageGraph,
    visited: &mut IdSet<u64>,
) {
    const CONTINUATION_ELEMENTS: usize = 4096;
    if search.batches() == 1 && search.left_in_batch() == 0 && search.mode() != Continuation::Off {
        visited.reserve(CONTINUATION_ELEMENTS);
        graph.reserve(CONTINUATION_ELEMENTS);
    }
}

/// Whether a search that ran dry may be completed by a sweep over every element.
fn sweep_allowed(search: &ResumableSearch<u64>, max_tuples: u64) -> bool {
    search.mode() == Continuation::Relaxed && search.evaluated < max_tuples
}

/// The next row of an index of codes: a row whose exact value (read from the heap) is no
/// larger than every bound still waiting in its batch cannot be preceded by any of them.
unsafe fn next_reranked(scan: pg_sys::IndexScanDesc, state: &mut ScanState) -> Option<ItemPtr> {
    loop {
        let r = state.rerank.as_mut()?;
        if let Some(Candidate(d, tid)) = r.queue.next(&mut r.heap) {
            if r.strict && d < r.last {
                continue;
            }
            r.last = r.last.max(d);
            return Some(tid);
        }
        let graph = state.graph.as_mut()?;
        if state.exhausted {
            return None;
        }
        pgrx::check_for_interrupts!();
        let search = state.search.as_mut()?;
        let bound = QueryBound::new(r.metric, &r.query, r.sq);
        let score = |e: Element<'_>| {
            let (codes, err) = e.codes().expect("elements of a quantised index have codes");
            bound.lower_bound(codes, err)
        };
        if state.swept {
            state.exhausted = true;
            continue;
        }
        // The whole batch, so its rows can be put in exact order.
        grow_for_continuation(search, graph, &mut state.visited);
        let mut batch = Vec::new();
        if let Some(s) = search.next(graph, &mut state.visited, state.max_tuples) {
            batch.push(s.id);
            while search.left_in_batch() > 0 {
                match search.next(graph, &mut state.visited, state.max_tuples) {
                    Some(s) => batch.push(s.id),
                    None => break,
                }
            }
        }
        if !batch.is_empty() {
            // Each row with its element's bound, both recorded when the walk evaluated it;
            // an element of several rows is read again for all of them.
            let bounds = &mut r.queue.bounds;
            let mut tids = Vec::with_capacity(batch.len());
            for id in batch {
                if let Some(&Seen {
                    tid: Some(tid),
                    bound,
                    ..
                }) = graph.seen(id).filter(|s| !s.bound.is_nan())
                {
                    tids.push(tid);
                    bounds.push(Candidate(bound, tid));
                    continue;
                }
                graph.with_element(ItemPtr::from_u64(id), |e| {
                    if e.tid_count() > 0 {
                        let b = score(e);
                        tids.extend(e.tids());
                        bounds.extend(e.tids().map(|tid| Candidate(b, tid)));
                    }
                });
            }
            // Nearly every row of a batch is read for its exact value.
            tids.truncate(MAX_BATCH_PREFETCH);
            r.heap.prefetch_batch(&tids);
        } else if sweep_allowed(search, state.max_tuples) {
            let all = unreached((*scan).indexRelation, graph, &state.visited, score);
            for (b, id) in all {
                let tids = graph.heap_tids(id);
                r.queue
                    .bounds
                    .extend(tids.into_iter().map(|tid| Candidate(b, tid)));
            }
            state.swept = true;
        } else {
            state.exhausted = true;
        }
    }
}

/// Every element with rows the walk did not visit, scored by `score`. Normally empty or
/// tiny; it exists so that an iterative scan can never miss a row.
unsafe fn unreached(
    index: pg_sys::Relation,
    graph: &PageGraph,
    visited: &IdSet<u64>,
    score: impl Fn(Element<'_>) -> f64,
) -> Vec<(f64, u64)> {
    let mut out = Vec::new();
    for_each_element(index, graph.layout, |at, e| {
        let id = at.to_u64();
        if e.tid_count() > 0 && !visited.contains(&id) {
            out.push((score(e), id));
        }
    });
    out
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amendscan(scan: pg_sys::IndexScanDesc) {
    // The state lives in the scan's memory context and is dropped with it; release the
    // graph's caches and the heap fetch now so a long-lived portal does not hold them.
    (*((*scan).opaque as *mut ScanState)).reset();
}
