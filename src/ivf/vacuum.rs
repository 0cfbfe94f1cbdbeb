//! `VACUUM`: walk every list and delete the entries of dead heap rows. Nothing points at a
//! list entry, so pages are compacted in place and the space goes to later inserts into the
//! list's newest page.

use pgrx::pg_sys;

use super::centroids::Lists;
use super::lists::{entries, ListPages};
use super::meta;
use crate::storage::buffer::Lock;
use crate::storage::WalGuard;

use crate::am::bulk_delete_stats as stats_or_new;

/// Every list page, exclusively locked, list by list.
unsafe fn list_pages(
    index: pg_sys::Relation,
) -> impl Iterator<Item = crate::storage::LockedBuffer> {
    let meta = meta::read(index);
    ListPages::new(index, Lists::read(index, &meta).heads, Lock::Exclusive).map(|(_, buf)| buf)
}

#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn ambulkdelete(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
    callback: pg_sys::IndexBulkDeleteCallback,
    callback_state: *mut std::ffi::c_void,
) -> *mut pg_sys::IndexBulkDeleteResult {
    let stats = stats_or_new(stats);
    let index = (*info).index;
    let dims = meta::read(index).dims as usize;
    let callback = callback.expect("bulk delete without a callback");
    for buf in list_pages(index) {
        let mut dead: Vec<u16> = Vec::new();
        entries(buf.page(), dims, |off, e| {
            let mut tid = crate::storage::page::to_item_pointer(e.tid());
            if callback(&mut tid, callback_state) {
                dead.push(off);
            } else {
                (*stats).num_index_tuples += 1.0;
            }
        });
        if !dead.is_empty() {
            let mut wal = WalGuard::start(index);
            let wp = wal.register(&buf, false);
            pg_sys::PageIndexMultiDelete(wp, dead.as_mut_ptr(), dead.len() as i32);
            wal.finish();
            (*stats).tuples_removed += dead.len() as f64;
        }
    }
    stats
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
    let stats = if stats.is_null() {
        // No bulk delete ran (nothing was dead): count the entries for the statistics.
        let stats = stats_or_new(stats);
        let dims = meta::read(index).dims as usize;
        for buf in list_pages(index) {
            entries(buf.page(), dims, |_, _| (*stats).num_index_tuples += 1.0);
        }
        stats
    } else {
        stats
    };
    (*stats).num_pages = crate::hnsw::graph::nblocks(index);
    stats
}
