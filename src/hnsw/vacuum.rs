//! `VACUUM`: drop dead heap TIDs from elements, repair the edges that pointed at elements
//! left without rows, then free those elements' space for reuse by inserts.

use pgrx::pg_sys;
use recall_core::hnsw::search::Scored;
use recall_core::hnsw::select::select_neighbours;
use recall_core::hnsw::tuple::{Element, ElementMut, ItemPtr, Layout};
use recall_core::hnsw::{keep_pruned, max_neighbours};

use std::collections::{HashMap, HashSet};

use super::graph::{for_each_element, nblocks, PageGraph};
use super::insert::{read_list, write_list, UPDATE_LOCK};
use super::meta::{self, HnswMeta};
use super::PAGE_ELEMENTS;
use crate::storage::buffer::Lock;
use crate::storage::{page, LockedBuffer, WalGuard};

use crate::am::bulk_delete_stats as stats_or_new;

#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn ambulkdelete(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
    callback: pg_sys::IndexBulkDeleteCallback,
    callback_state: *mut std::ffi::c_void,
) -> *mut pg_sys::IndexBulkDeleteResult {
    let stats = stats_or_new(stats);
    let index = (*info).index;
    let meta = meta::read(index);
    let layout = meta.layout();
    let callback = callback.expect("bulk delete without a callback");

    // 1. Remove dead heap TIDs, page by page.
    for blk in 1..nblocks(index) {
        pg_sys::vacuum_delay_point();
        pgrx::check_for_interrupts!();
        let buf = LockedBuffer::read(index, blk, Lock::Exclusive);
        if page::kind(buf.page()) != Some(PAGE_ELEMENTS) {
            continue;
        }
        let mut wal = WalGuard::start(index);
        let p = wal.register(&buf, false);
        let mut removed = 0usize;
        for off in 1..=page::max_offset(p) {
            let Some(mut e) = page::item_mut(p, off).and_then(|b| ElementMut::new(b, layout))
            else {
                continue;
            };
            removed += e.retain_tids(|t| {
                let mut tid = page::to_item_pointer(t);
                !callback(&mut tid, callback_state)
            });
            (*stats).num_index_tuples += e.view().tid_count() as f64;
        }
        if removed > 0 {
            (*stats).tuples_removed += removed as f64;
            wal.finish();
        }
    }

    // 2. and 3., with inserts held off so no new edge can point at what is being freed. The
    // metapage is read again: an insert may have moved the entry point since step 1.
    pg_sys::LockPage(
        index,
        UPDATE_LOCK,
        pg_sys::ExclusiveLock as pg_sys::LOCKMODE,
    );
    let meta = meta::read(index);
    let mut census = Census::default();
    for_each_element(index, layout, |at, e| census.add(at, e));
    if !census.deleted.is_empty() {
        repair(index, &meta, &census);
        let (deleted, best_live) = (&census.deleted, census.best_live);
        if meta.entry().is_some_and(|e| deleted.contains(&e.to_u64())) {
            meta::update(index, |m| match best_live {
                Some((level, at)) => m.set_entry(Some(at), level),
                None => m.set_entry(None, 0),
            });
        }
        free_elements(index, layout, deleted);
    }
    pg_sys::UnlockPage(
        index,
        UPDATE_LOCK,
        pg_sys::ExclusiveLock as pg_sys::LOCKMODE,
    );
    pg_sys::IndexFreeSpaceMapVacuum(index);
    (*stats).num_pages = nblocks(index);
    stats
}

/// One pass over the elements, taken under the graph lock: what vacuum's repair and freeing
/// steps need.
#[derive(Default)]
struct Census {
    /// Elements left without heap rows.
    deleted: HashSet<u64>,
    /// Live elements: (id, neighbour tuple, level).
    live: Vec<(u64, ItemPtr, u8)>,
    /// Every element's neighbour tuple.
    neighbour_ptrs: HashMap<u64, ItemPtr>,
    /// The highest live element: the entry point if the current one is deleted.
    best_live: Option<(u8, ItemPtr)>,
}

impl Census {
    fn add(&mut self, at: ItemPtr, e: Element<'_>) {
        let id = at.to_u64();
        self.neighbour_ptrs.insert(id, e.neighbours_ptr());
        if e.tid_count() == 0 {
            self.deleted.insert(id);
        } else {
            self.live.push((id, e.neighbours_ptr(), e.level()));
            if self.best_live.is_none_or(|(l, _)| e.level() > l) {
                self.best_live = Some((e.level(), at));
            }
        }
    }
}

/// Every live element whose lists point at a deleted element gets its list re-selected from
/// its surviving neighbours plus the deleted neighbours' own neighbours (the paths the
/// deleted node used to provide).
unsafe fn repair(index: pg_sys::Relation, meta: &HnswMeta, census: &Census) {
    let m = meta.m as usize;
    let (deleted, nptrs) = (&census.deleted, &census.neighbour_ptrs);
    let mut graph = PageGraph::new(index, meta, Vec::new(), true);
    for &(id, nptr, level) in &census.live {
        pgrx::check_for_interrupts!();
        for l in 0..=level as usize {
            let Some(list) = read_list(index, nptr, m, l) else {
                continue;
            };
            if !list.iter().any(|n| deleted.contains(n)) {
                continue;
            }
            let mut cands: HashSet<u64> = list
                .iter()
                .copied()
                .filter(|n| !deleted.contains(n))
                .collect();
            for d in list.iter().filter(|n| deleted.contains(n)) {
                if let Some(dl) = nptrs.get(d).and_then(|&p| read_list(index, p, m, l)) {
                    cands.extend(dl.into_iter().filter(|n| !deleted.contains(n) && *n != id));
                }
            }
            let mut scored: Vec<Scored<u64>> = cands
                .into_iter()
                .map(|c| Scored {
                    dist: graph.pair_distance(id, c),
                    id: c,
                })
                .collect();
            scored.sort();
            let chosen: Vec<u64> = select_neighbours(
                &scored,
                max_neighbours(m, l),
                keep_pruned(graph.metric),
                |a, b| graph.pair_distance(a, b),
            )
            .iter()
            .map(|s| s.id)
            .collect();
            write_list(index, nptr, m, l, |now| {
                (now == list.as_slice()).then_some(chosen)
            });
        }
    }
}

/// Frees deleted elements and their neighbour tuples (line pointers stay, marked unused, so
/// no other item moves) and tells the free space map.
unsafe fn free_elements(index: pg_sys::Relation, layout: Layout, deleted: &HashSet<u64>) {
    let mut by_block: HashMap<u32, Vec<u16>> = HashMap::new();
    for &d in deleted {
        let p = ItemPtr::from_u64(d);
        by_block.entry(p.block).or_default().push(p.offset);
    }
    let mut blocks: Vec<u32> = by_block.keys().copied().collect();
    blocks.sort();
    let mut neighbour_tuples: HashMap<u32, Vec<u16>> = HashMap::new();
    for blk in blocks {
        pgrx::check_for_interrupts!();
        let buf = LockedBuffer::read(index, blk, Lock::Exclusive);
        let mut wal = WalGuard::start(index);
        let p = wal.register(&buf, false);
        let mut offs = by_block[&blk].clone();
        offs.sort_unstable_by(|a, b| b.cmp(a));
        for off in offs {
            // Re-check under the lock: still an element without rows.
            let Some(e) = page::item(p, off).and_then(|b| Element::parse(b, layout)) else {
                continue;
            };
            if e.tid_count() != 0 {
                continue;
            }
            let n = e.neighbours_ptr();
            neighbour_tuples.entry(n.block).or_default().push(n.offset);
            page::delete_item(p, off);
        }
        // Neighbour tuples on this same page go in the same record.
        if let Some(noffs) = neighbour_tuples.remove(&blk) {
            for off in noffs {
                page::delete_item(p, off);
            }
        }
        pg_sys::RecordPageWithFreeSpace(index, blk, page::free_space(p));
        wal.finish();
    }
    for (blk, offs) in neighbour_tuples {
        let buf = LockedBuffer::read(index, blk, Lock::Exclusive);
        let mut wal = WalGuard::start(index);
        let p = wal.register(&buf, false);
        for off in offs {
            page::delete_item(p, off);
        }
        pg_sys::RecordPageWithFreeSpace(index, blk, page::free_space(p));
        wal.finish();
    }
}

#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn amvacuumcleanup(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
) -> *mut pg_sys::IndexBulkDeleteResult {
    if (*info).analyze_only {
        return stats;
    }
    let index = (*info).index;
    let stats = stats_or_new(stats);
    if (*stats).num_index_tuples == 0.0 {
        let layout = meta::read(index).layout();
        let mut n = 0usize;
        for_each_element(index, layout, |_, e| n += e.tid_count());
        (*stats).num_index_tuples = n as f64;
    }
    (*stats).num_pages = nblocks(index);
    pg_sys::IndexFreeSpaceMapVacuum(index);
    stats
}
