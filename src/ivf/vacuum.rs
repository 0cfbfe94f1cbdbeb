//! `VACUUM`: walk every list and delete the entries of dead heap rows. Nothing points at a
//! list entry, so pages are compacted in place and the space goes to later inserts into the
//! list's newest page.

use pgrx::pg_sys;
use recall_core::ivf::tuple::{self, Entry};

use super::centroids::Lists;
use super::{meta, PAGE_LIST};
use crate::storage::buffer::Lock;
use crate::storage::{page, LockedBuffer, WalGuard};

use crate::am::bulk_delete_stats as stats_or_new;

/// Calls `f` on every list page, exclusively locked, list by list.
unsafe fn for_each_list_page(index: pg_sys::Relation, mut f: impl FnMut(&LockedBuffer)) {
    let meta = meta::read(index);
    let lists = Lists::read(index, &meta);
    for &head in &lists.heads {
        let mut blk = head;
        while blk != tuple::NO_PAGE {
            pg_sys::vacuum_delay_point();
            pgrx::check_for_interrupts!();
            let buf = LockedBuffer::read(index, blk, Lock::Exclusive);
            if page::kind(buf.page()) != Some(PAGE_LIST) {
                break;
            }
            f(&buf);
            blk = page::link(buf.page());
        }
    }
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
    for_each_list_page(index, |buf| {
        let p = buf.page();
        let mut dead: Vec<u16> = Vec::new();
        for off in 1..=page::max_offset(p) {
            if let Some(e) = page::item(p, off).and_then(|b| Entry::parse(b, dims)) {
                let mut tid = page::to_item_pointer(e.tid());
                if callback(&mut tid, callback_state) {
                    dead.push(off);
                } else {
                    (*stats).num_index_tuples += 1.0;
                }
            }
        }
        if !dead.is_empty() {
            let mut wal = WalGuard::start(index);
            let wp = wal.register(buf, false);
            pg_sys::PageIndexMultiDelete(wp, dead.as_mut_ptr(), dead.len() as i32);
            wal.finish();
            (*stats).tuples_removed += dead.len() as f64;
        }
    });
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
        for_each_list_page(index, |buf| {
            let p = buf.page();
            for off in 1..=page::max_offset(p) {
                if page::item(p, off)
                    .and_then(|b| Entry::parse(b, dims))
                    .is_some()
                {
                    (*stats).num_index_tuples += 1.0;
                }
            }
        });
        stats
    } else {
        stats
    };
    (*stats).num_pages = crate::hnsw::graph::nblocks(index);
    stats
}
