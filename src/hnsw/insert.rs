//! `INSERT` into an hnsw index: search the graph on pages for the new vector's neighbours,
//! write its tuples, then link the neighbours back. Every page change is one GenericXLog
//! record; a page is locked exclusively only while its bytes change, never while another
//! page is read, so concurrent inserts and scans cannot deadlock.

use pgrx::pg_sys;
use pgrx::prelude::*;
use recall_core::distance::order_distance;
use recall_core::hnsw::build::draw_level_from;
use recall_core::hnsw::search::{search_layer, Scored};
use recall_core::hnsw::select::select_neighbours;
use recall_core::hnsw::tuple::{self, ElementMut, ItemPtr, Neighbours};
use recall_core::hnsw::max_neighbours;
use std::collections::HashSet;

use super::build::item_ptr;
use super::graph::PageGraph;
use super::meta::{self, HnswMeta};
use super::{prepare, PAGE_ELEMENTS};
use crate::storage::buffer::Lock;
use crate::storage::{page, LockedBuffer, WalGuard};
use crate::vector::Vector;

/// Heavyweight lock tag (a page lock on block 0) serialising graph-wide changes: inserts take
/// it shared, and exclusively when they move the entry point; vacuum's repair takes it
/// exclusively.
pub const UPDATE_LOCK: u32 = 0;

#[pg_guard]
pub unsafe extern "C-unwind" fn aminsert(
    index: pg_sys::Relation,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    heap_tid: pg_sys::ItemPointer,
    _heap: pg_sys::Relation,
    _check_unique: pg_sys::IndexUniqueCheck::Type,
    _index_unchanged: bool,
    _index_info: *mut pg_sys::IndexInfo,
) -> bool {
    if *isnull {
        return false;
    }
    let v = Vector::from_datum_unchecked(*values);
    let meta = meta::read(index);
    crate::vector::errors::check_expected_dim(meta.dims as i32, v.dim());
    if let Some(v) = prepare(meta.metric(), v.as_slice()) {
        insert_vector(index, &v, item_ptr(heap_tid));
    }
    false
}

/// Inserts one prepared vector (normalised for cosine) for heap row `tid`.
pub unsafe fn insert_vector(index: pg_sys::Relation, v: &[f32], tid: ItemPtr) {
    let peek = meta::read(index);
    let level = draw_level_from(pg_sys::pg_prng_double(&raw mut pg_sys::pg_global_prng_state), peek.m as usize);
    let lockmode = if peek.entry().is_none() || level > peek.entry_level {
        pg_sys::ExclusiveLock
    } else {
        pg_sys::ShareLock
    } as pg_sys::LOCKMODE;
    pg_sys::LockPage(index, UPDATE_LOCK, lockmode);
    let meta = meta::read(index);
    let Some(entry) = meta.entry() else {
        let (eptr, _) = write_tuples(index, &meta, level, &[tid], v, &vec![Vec::new(); level as usize + 1]);
        meta::update(index, |m| m.set_entry(Some(eptr), level));
        pg_sys::UnlockPage(index, UPDATE_LOCK, lockmode);
        return;
    };
    let m = meta.m as usize;
    let top = meta.entry_level as usize;
    let mut graph = PageGraph::new(index, &meta, v.to_vec(), true);
    let Some(start) = graph.descend(entry, top, level as usize) else {
        error!("hnsw index \"{}\" has a broken entry point; REINDEX it", meta::relname(index));
    };
    let mut eps = vec![start];
    let mut lists: Vec<Vec<Scored<u64>>> = vec![Vec::new(); level as usize + 1];
    let mut buf = Vec::new();
    for l in (0..=(level as usize).min(top)).rev() {
        let mut visited = HashSet::new();
        let w = search_layer(&mut graph, &eps, meta.ef_construction as usize, l, &mut visited, &mut buf);
        if l == 0 && add_to_identical(index, &mut graph, &w, v, tid) {
            pg_sys::UnlockPage(index, UPDATE_LOCK, lockmode);
            return;
        }
        lists[l] = select_neighbours(&w, max_neighbours(m, l), true, |a, b| graph.pair_distance(a, b));
        eps = w;
    }
    let ptr_lists: Vec<Vec<ItemPtr>> =
        lists.iter().map(|l| l.iter().map(|s| ItemPtr::from_u64(s.id)).collect()).collect();
    let (eptr, _) = write_tuples(index, &meta, level, &[tid], v, &ptr_lists);
    for (l, list) in lists.iter().enumerate() {
        for s in list {
            link_back(index, &mut graph, s.id, l, eptr.to_u64(), s.dist);
        }
    }
    if level as usize > top {
        meta::update(index, |m| m.set_entry(Some(eptr), level));
    }
    pg_sys::UnlockPage(index, UPDATE_LOCK, lockmode);
}

/// A row whose vector is already in the index joins that element (as in the build), if the
/// element has a free TID slot.
unsafe fn add_to_identical(index: pg_sys::Relation, graph: &mut PageGraph, w: &[Scored<u64>], v: &[f32], tid: ItemPtr) -> bool {
    for s in w.iter().take_while(|s| s.dist <= 0.0 || s.dist == w[0].dist) {
        let same = graph.vector(s.id).is_some_and(|x| x.iter().zip(v).all(|(a, b)| a.to_bits() == b.to_bits()));
        if !same {
            continue;
        }
        let at = ItemPtr::from_u64(s.id);
        let buf = LockedBuffer::read(index, at.block, Lock::Exclusive);
        let mut wal = WalGuard::start(index);
        let p = wal.register(&buf, false);
        let Some(bytes) = page::item_mut(p, at.offset) else { continue };
        let Some(mut e) = ElementMut::new(bytes, graph.dims) else { continue };
        if e.push_tid(tid) {
            wal.finish();
            return true;
        }
    }
    false
}

/// Writes a new element and its neighbour tuple, on one page when they fit together. Returns
/// (element, neighbour tuple) pointers.
pub unsafe fn write_tuples(
    index: pg_sys::Relation,
    meta: &HnswMeta,
    level: u8,
    tids: &[ItemPtr],
    v: &[f32],
    lists: &[Vec<ItemPtr>],
) -> (ItemPtr, ItemPtr) {
    let (dims, m) = (meta.dims as usize, meta.m as usize);
    let cap = tids.len().max(2);
    let esize = tuple::element_size(dims, cap);
    let nbytes = tuple::encode_neighbours(m, lists);
    let together = page::item_footprint(esize) + page::item_footprint(nbytes.len());
    if together <= page::max_item_size() + 4 {
        let buf = page_with_space(index, meta, together);
        let mut wal = WalGuard::start(index);
        let p = wal.register(&buf, false);
        let block = buf.block();
        let e = tuple::encode_element(level, tids, cap, ItemPtr::INVALID, v);
        let eoff = page::add_item(p, &e).expect("free space was checked");
        let noff = page::add_item(p, &nbytes).expect("free space was checked");
        // Offsets are known only once added (freed line pointers get reused): patch the link.
        ElementMut::new(page::item_mut(p, eoff).unwrap(), dims).unwrap().set_neighbours_ptr(ItemPtr { block, offset: noff });
        record_free_space(index, block, page::free_space(p));
        wal.finish();
        return (ItemPtr { block, offset: eoff }, ItemPtr { block, offset: noff });
    }
    // Large vectors: the element fills most of a page; its neighbours go elsewhere.
    let nbuf = page_with_space(index, meta, page::item_footprint(nbytes.len()));
    let ebuf = page_with_space_excluding(index, meta, page::item_footprint(esize), nbuf.block());
    let mut wal = WalGuard::start(index);
    let np = wal.register(&nbuf, false);
    let ep = wal.register(&ebuf, false);
    let noff = page::add_item(np, &nbytes).expect("free space was checked");
    let nptr = ItemPtr { block: nbuf.block(), offset: noff };
    let e = tuple::encode_element(level, tids, cap, nptr, v);
    let eoff = page::add_item(ep, &e).expect("free space was checked");
    record_free_space(index, nbuf.block(), page::free_space(np));
    record_free_space(index, ebuf.block(), page::free_space(ep));
    wal.finish();
    (ItemPtr { block: ebuf.block(), offset: eoff }, nptr)
}

unsafe fn record_free_space(index: pg_sys::Relation, block: u32, free: usize) {
    pg_sys::RecordPageWithFreeSpace(index, block, free);
}

unsafe fn page_with_space(index: pg_sys::Relation, meta: &HnswMeta, need: usize) -> LockedBuffer {
    page_with_space_excluding(index, meta, need, pg_sys::InvalidBlockNumber)
}

/// An exclusively locked element page with `need` free bytes: a page the free space map
/// knows (space vacuum freed), else a new page at the end.
unsafe fn page_with_space_excluding(index: pg_sys::Relation, _meta: &HnswMeta, need: usize, exclude: u32) -> LockedBuffer {
    for _ in 0..8 {
        let blk = pg_sys::GetPageWithFreeSpace(index, need);
        if blk == pg_sys::InvalidBlockNumber || blk == exclude {
            break;
        }
        let buf = LockedBuffer::read(index, blk, Lock::Exclusive);
        let p = buf.page();
        if page::kind(p) == Some(PAGE_ELEMENTS) && page::free_space(p) >= need {
            return buf;
        }
        // The map was stale: correct it and look again.
        let free = if page::kind(p) == Some(PAGE_ELEMENTS) { page::free_space(p) } else { 0 };
        drop(buf);
        pg_sys::RecordPageWithFreeSpace(index, blk, free);
    }
    let buf = LockedBuffer::extend(index, true);
    let mut wal = WalGuard::start(index);
    let p = wal.register(&buf, true);
    page::init(p, PAGE_ELEMENTS);
    wal.finish();
    buf
}

/// Adds the edge `n → new` at `level`, re-selecting `n`'s neighbours when its list is full.
/// The new list is computed without locks, then written only if the list is still the one
/// it was computed from (a concurrent insert may have changed it; then a free slot is used
/// if there is one, else the edge is skipped — the graph stays valid either way).
pub unsafe fn link_back(index: pg_sys::Relation, graph: &mut PageGraph, n: u64, level: usize, new: u64, dist: f32) {
    let m = graph.m;
    let cap = max_neighbours(m, level);
    let Some(nptr) = graph.with_element(ItemPtr::from_u64(n), |e| e.neighbours_ptr()) else { return };
    let Some(current) = read_list(index, nptr, m, level) else { return };
    if current.contains(&new) {
        return;
    }
    let wanted = if current.len() < cap {
        let mut l = current.clone();
        l.push(new);
        l
    } else {
        let mut cands: Vec<Scored<u64>> = current.iter().map(|&c| Scored { dist: graph.pair_distance(n, c), id: c }).collect();
        cands.push(Scored { dist, id: new });
        cands.sort();
        let chosen: Vec<u64> = select_neighbours(&cands, cap, true, |a, b| graph.pair_distance(a, b)).iter().map(|s| s.id).collect();
        if !chosen.contains(&new) {
            return;
        }
        chosen
    };
    write_list(index, nptr, m, level, |now| {
        if now == current.as_slice() {
            Some(wanted.clone())
        } else if now.len() < cap && !now.contains(&new) {
            let mut l = now.to_vec();
            l.push(new);
            Some(l)
        } else {
            None
        }
    });
}

/// Neighbour ids at `level` of the neighbour tuple at `nptr`.
pub unsafe fn read_list(index: pg_sys::Relation, nptr: ItemPtr, m: usize, level: usize) -> Option<Vec<u64>> {
    let buf = LockedBuffer::read(index, nptr.block, Lock::Share);
    let bytes = page::item(buf.page(), nptr.offset)?;
    let n = Neighbours::parse(bytes, m)?;
    Some(n.at(level).map(|p| p.to_u64()).collect())
}

/// Rewrites the list at `level` with `f(current)` under an exclusive lock, WAL-logged;
/// `f` returning `None` leaves the page untouched.
pub unsafe fn write_list(index: pg_sys::Relation, nptr: ItemPtr, m: usize, level: usize, f: impl FnOnce(&[u64]) -> Option<Vec<u64>>) {
    let buf = LockedBuffer::read(index, nptr.block, Lock::Exclusive);
    let mut wal = WalGuard::start(index);
    let p = wal.register(&buf, false);
    let Some(bytes) = page::item_mut(p, nptr.offset) else { return };
    let Some(n) = Neighbours::parse(bytes, m) else { return };
    let now: Vec<u64> = n.at(level).map(|p| p.to_u64()).collect();
    let Some(next) = f(&now) else { return };
    let next: Vec<ItemPtr> = next.into_iter().map(ItemPtr::from_u64).collect();
    if tuple::set_neighbours(bytes, m, level, &next) {
        wal.finish();
    }
}

/// Distance from `a`'s vector to a plain vector, for vacuum's repair.
pub fn distance_to(graph: &mut PageGraph, a: u64, v: &[f32]) -> f32 {
    match graph.vector(a) {
        Some(x) => order_distance(graph.metric, &x, v),
        None => f32::INFINITY,
    }
}
