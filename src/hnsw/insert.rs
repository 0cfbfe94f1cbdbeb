//! `INSERT` into an hnsw index: search the graph on pages for the new vector's neighbours,
//! write its tuples, then link the neighbours back. Every page change is one GenericXLog
//! record; a page is locked exclusively only while its bytes change, never while another
//! page is read, so concurrent inserts and scans cannot deadlock.

use pgrx::pg_sys;
use pgrx::prelude::*;
use recall_core::distance::order_distance;
use recall_core::fasthash::IdSet;
use recall_core::hnsw::build::draw_level_from;
use recall_core::hnsw::search::{descend_for_insert, search_layer, Scored};
use recall_core::hnsw::select::select_neighbours;
use recall_core::hnsw::tuple::{self, ElementMut, ItemPtr, Neighbours};
use recall_core::hnsw::{keep_pruned, max_neighbours};

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
        insert_vector(index, &meta, &v, page::from_item_pointer(&*heap_tid));
    }
    false
}

/// Inserts one prepared vector (normalised for cosine) for heap row `tid`. `peek` is a
/// metapage read from before the graph lock, used to choose the lock mode; the metapage is
/// read again under the lock.
pub unsafe fn insert_vector(index: pg_sys::Relation, peek: &HnswMeta, v: &[f32], tid: ItemPtr) {
    let level = draw_level_from(
        pg_sys::pg_prng_double(&raw mut pg_sys::pg_global_prng_state),
        peek.m as usize,
    );
    let lockmode = if peek.entry().is_none() || level > peek.entry_level {
        pg_sys::ExclusiveLock
    } else {
        pg_sys::ShareLock
    } as pg_sys::LOCKMODE;
    pg_sys::LockPage(index, UPDATE_LOCK, lockmode);
    let meta = meta::read(index);
    let Some(entry) = meta.entry() else {
        let (eptr, _) = write_tuples(
            index,
            &meta,
            level,
            &[tid],
            v,
            &vec![Vec::new(); level as usize + 1],
        );
        meta::update(index, |m| m.set_entry(Some(eptr), level));
        pg_sys::UnlockPage(index, UPDATE_LOCK, lockmode);
        return;
    };
    let m = meta.m as usize;
    let top = meta.entry_level as usize;
    // A quantised index walks and selects neighbours among decoded vectors: the new one joins
    // them as its codes will store it (the element itself encodes `v`, so its error is
    // measured against the real vector).
    let mut graph = PageGraph::new(index, &meta, meta.layout().stored(v), true);
    let Some(start) = graph.score_entry(entry) else {
        error!(
            "hnsw index \"{}\" has a broken entry point; REINDEX it",
            crate::opclass::relname(index)
        );
    };
    let mut buf = Vec::new();
    let mut eps = descend_for_insert(
        &mut graph,
        start,
        top,
        level as usize,
        &mut IdSet::default(),
        &mut buf,
    );
    let mut lists: Vec<Vec<Scored<u64>>> = vec![Vec::new(); level as usize + 1];
    for l in (0..=(level as usize).min(top)).rev() {
        let mut visited = IdSet::default();
        let w = search_layer(
            &mut graph,
            &eps,
            meta.ef_construction as usize,
            l,
            &mut visited,
            &mut buf,
        );
        if l == 0 && add_to_identical(index, &mut graph, &w, v, tid) {
            pg_sys::UnlockPage(index, UPDATE_LOCK, lockmode);
            return;
        }
        lists[l] = select_neighbours(
            &w,
            max_neighbours(m, l),
            keep_pruned(graph.metric),
            |a, b| graph.pair_distance(a, b),
        );
        eps = w;
    }
    let ptr_lists: Vec<Vec<ItemPtr>> = lists
        .iter()
        .map(|l| l.iter().map(|s| ItemPtr::from_u64(s.id)).collect())
        .collect();
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
unsafe fn add_to_identical(
    index: pg_sys::Relation,
    graph: &mut PageGraph,
    w: &[Scored<u64>],
    v: &[f32],
    tid: ItemPtr,
) -> bool {
    for s in w
        .iter()
        .take_while(|s| s.dist <= 0.0 || s.dist == w[0].dist)
    {
        let at = ItemPtr::from_u64(s.id);
        if graph.with_element(at, |e| e.stores(v)) != Some(true) {
            continue;
        }
        let buf = LockedBuffer::read(index, at.block, Lock::Exclusive);
        let mut wal = WalGuard::start(index);
        let p = wal.register(&buf, false);
        let Some(bytes) = page::item_mut(p, at.offset) else {
            continue;
        };
        let Some(mut e) = ElementMut::new(bytes, graph.layout) else {
            continue;
        };
        if e.push_tid(tid) {
            wal.finish();
            return true;
        }
    }
    false
}

/// Where a new element and its neighbour tuple go.
enum Placement {
    Shared(LockedBuffer),
    /// (neighbour tuple's page, element's page)
    Split(LockedBuffer, LockedBuffer),
}

/// Both tuples on one page when some page has room for both; else each into holes that
/// vacuum or earlier inserts left; else both on a new page. Vectors too large to share a
/// page always take two.
unsafe fn place(index: pg_sys::Relation, efoot: usize, nfoot: usize) -> Placement {
    let none = pg_sys::InvalidBlockNumber;
    let together = efoot + nfoot;
    if together > page::max_item_size() + 4 {
        let nbuf = find_page(index, nfoot, none, true, false).unwrap();
        let ebuf = find_page(index, efoot, nbuf.block(), true, true).unwrap();
        return Placement::Split(nbuf, ebuf);
    }
    if let Some(buf) = find_page(index, together, none, false, false) {
        return Placement::Shared(buf);
    }
    if let Some(nbuf) = find_page(index, nfoot, none, false, false) {
        if let Some(ebuf) = find_page(index, efoot, nbuf.block(), false, true) {
            return Placement::Split(nbuf, ebuf);
        }
    }
    Placement::Shared(find_page(index, together, none, true, false).unwrap())
}

/// Writes a new element and its neighbour tuple in one WAL record. Returns (element,
/// neighbour tuple) pointers.
pub unsafe fn write_tuples(
    index: pg_sys::Relation,
    meta: &HnswMeta,
    level: u8,
    tids: &[ItemPtr],
    v: &[f32],
    lists: &[Vec<ItemPtr>],
) -> (ItemPtr, ItemPtr) {
    let (layout, m) = (meta.layout(), meta.m as usize);
    let cap = tids.len().max(2);
    let e = tuple::encode_element(level, tids, cap, ItemPtr::INVALID, v, layout);
    let nbytes = tuple::encode_neighbours(m, lists);
    let placement = place(
        index,
        page::item_footprint(e.len()),
        page::item_footprint(nbytes.len()),
    );
    let mut wal = WalGuard::start(index);
    let (ebuf, ep, np) = match &placement {
        Placement::Shared(buf) => {
            let p = wal.register(buf, false);
            (buf, p, p)
        }
        Placement::Split(nbuf, ebuf) => {
            let np = wal.register(nbuf, false);
            (ebuf, wal.register(ebuf, false), np)
        }
    };
    let nbuf = match &placement {
        Placement::Shared(buf) | Placement::Split(buf, _) => buf,
    };
    let eoff = page::add_item(ep, &e).expect("free space was checked");
    let noff = page::add_item(np, &nbytes).expect("free space was checked");
    let nptr = ItemPtr {
        block: nbuf.block(),
        offset: noff,
    };
    // Offsets are known only once added (freed line pointers get reused): patch the link.
    ElementMut::new(page::item_mut(ep, eoff).unwrap(), layout)
        .unwrap()
        .set_neighbours_ptr(nptr);
    pg_sys::RecordPageWithFreeSpace(index, ebuf.block(), page::free_space(ep));
    pg_sys::RecordPageWithFreeSpace(index, nbuf.block(), page::free_space(np));
    wal.finish();
    (
        ItemPtr {
            block: ebuf.block(),
            offset: eoff,
        },
        nptr,
    )
}

/// An exclusively locked element page with `need` free bytes, other than `exclude`: one the
/// free space map knows, else — if `extend` — a new page at the end. `nowait` is for a second
/// page while another is locked: a page whose lock is taken is skipped rather than waited
/// for, since waiting could deadlock against a backend holding the two in the other order.
unsafe fn find_page(
    index: pg_sys::Relation,
    need: usize,
    exclude: u32,
    extend: bool,
    nowait: bool,
) -> Option<LockedBuffer> {
    for _ in 0..8 {
        let blk = pg_sys::GetPageWithFreeSpace(index, need);
        if blk == pg_sys::InvalidBlockNumber || blk == exclude {
            break;
        }
        let buf = if nowait {
            match LockedBuffer::try_exclusive(index, blk) {
                Some(b) => b,
                None => continue,
            }
        } else {
            LockedBuffer::read(index, blk, Lock::Exclusive)
        };
        let p = buf.page();
        let free = if page::kind(p) == Some(PAGE_ELEMENTS) {
            page::free_space(p)
        } else {
            0
        };
        if free >= need {
            return Some(buf);
        }
        // The map was stale: correct it and look again.
        drop(buf);
        pg_sys::RecordPageWithFreeSpace(index, blk, free);
    }
    if !extend {
        return None;
    }
    let buf = LockedBuffer::extend(index, true);
    let mut wal = WalGuard::start(index);
    let p = wal.register(&buf, true);
    page::init(p, PAGE_ELEMENTS);
    let free = page::free_space(p);
    wal.finish();
    // Make the new page findable: the map's upper levels only learn of added space when
    // vacuumed.
    pg_sys::RecordPageWithFreeSpace(index, buf.block(), free);
    pg_sys::FreeSpaceMapVacuumRange(index, buf.block(), buf.block() + 1);
    Some(buf)
}

/// Adds the edge `n → new` at `level`, re-selecting `n`'s neighbours when its list is full.
/// The new list is computed without locks, then written only if the list is still the one
/// it was computed from (a concurrent insert may have changed it; then a free slot is used
/// if there is one, else the edge is skipped — the graph stays valid either way).
pub unsafe fn link_back(
    index: pg_sys::Relation,
    graph: &mut PageGraph,
    n: u64,
    level: usize,
    new: u64,
    dist: f32,
) {
    let m = graph.m;
    let cap = max_neighbours(m, level);
    let Some(nptr) = graph.with_element(ItemPtr::from_u64(n), |e| e.neighbours_ptr()) else {
        return;
    };
    let Some(current) = read_list(index, nptr, m, level) else {
        return;
    };
    if current.contains(&new) {
        return;
    }
    let wanted = if current.len() < cap {
        let mut l = current.clone();
        l.push(new);
        l
    } else {
        let mut cands: Vec<Scored<u64>> = current
            .iter()
            .map(|&c| Scored {
                dist: graph.pair_distance(n, c),
                id: c,
            })
            .collect();
        cands.push(Scored { dist, id: new });
        cands.sort();
        let chosen: Vec<u64> = select_neighbours(&cands, cap, keep_pruned(graph.metric), |a, b| {
            graph.pair_distance(a, b)
        })
        .iter()
        .map(|s| s.id)
        .collect();
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
pub unsafe fn read_list(
    index: pg_sys::Relation,
    nptr: ItemPtr,
    m: usize,
    level: usize,
) -> Option<Vec<u64>> {
    let buf = LockedBuffer::read(index, nptr.block, Lock::Share);
    let bytes = page::item(buf.page(), nptr.offset)?;
    let n = Neighbours::parse(bytes, m)?;
    Some(n.at(level).map(|p| p.to_u64()).collect())
}

/// Rewrites the list at `level` with `f(current)` under an exclusive lock, WAL-logged;
/// `f` returning `None` leaves the page untouched.
pub unsafe fn write_list(
    index: pg_sys::Relation,
    nptr: ItemPtr,
    m: usize,
    level: usize,
    f: impl FnOnce(&[u64]) -> Option<Vec<u64>>,
) {
    let buf = LockedBuffer::read(index, nptr.block, Lock::Exclusive);
    let mut wal = WalGuard::start(index);
    let p = wal.register(&buf, false);
    let Some(bytes) = page::item_mut(p, nptr.offset) else {
        return;
    };
    let Some(n) = Neighbours::parse(bytes, m) else {
        return;
    };
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
