//! `INSERT` into an ivfflat index: the row goes to the newest page of its nearest list, or to
//! a new page that becomes the list's newest. The list's centroid page is locked first and
//! held until the entry is written, so two inserts into one list cannot both start a page;
//! scans and vacuum lock one page at a time, so the order cannot deadlock.

use pgrx::pg_sys;
use pgrx::prelude::*;
use recall_core::ivf::tuple;

use super::centroids::{self, location};
use super::{meta, PAGE_LIST};
use crate::opclass::prepare;
use crate::storage::buffer::Lock;
use crate::storage::{page, LockedBuffer, WalGuard};
use crate::vector::Vector;

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
    let meta = meta::read(index);
    let v = Vector::from_datum_unchecked(*values);
    crate::vector::errors::check_expected_dim(meta.dims as i32, v.dim());
    let Some(v) = prepare(meta.metric(), v.as_slice()) else {
        return false;
    };
    let c = centroids::cached(index, &meta);
    if c.is_empty() {
        error!(
            "ivfflat index \"{}\" has no lists; REINDEX it",
            crate::opclass::relname(index)
        );
    }
    let j = centroids::nearest(&c, meta.dims as usize, meta.metric(), &v);
    let entry = tuple::encode_entry(page::from_item_pointer(&*heap_tid), &meta.quantizer(), &v);
    let need = page::item_footprint(entry.len());

    let (cblk, coff) = location(&meta, j);
    let cbuf = LockedBuffer::read(index, cblk, Lock::Exclusive);
    let Some(cbytes) = page::item(cbuf.page(), coff) else {
        error!(
            "ivfflat index \"{}\" has a damaged centroid page; REINDEX it",
            crate::opclass::relname(index)
        );
    };
    let (head, rows) = tuple::centroid_header(cbytes);
    if head != tuple::NO_PAGE {
        let hbuf = LockedBuffer::read(index, head, Lock::Exclusive);
        if page::free_space(hbuf.page()) >= need {
            let mut wal = WalGuard::start(index);
            let hp = wal.register(&hbuf, false);
            let cp = wal.register(&cbuf, false);
            page::add_item(hp, &entry).expect("free space was checked");
            tuple::set_centroid_header(
                page::item_mut(cp, coff).unwrap(),
                head,
                rows.saturating_add(1),
            );
            wal.finish();
            return false;
        }
    }
    let nbuf = LockedBuffer::extend(index, true);
    let mut wal = WalGuard::start(index);
    let np = wal.register(&nbuf, true);
    let cp = wal.register(&cbuf, false);
    page::init(np, PAGE_LIST);
    page::set_link(np, head);
    page::add_item(np, &entry).expect("an entry fits an empty page");
    tuple::set_centroid_header(
        page::item_mut(cp, coff).unwrap(),
        nbuf.block(),
        rows.saturating_add(1),
    );
    wal.finish();
    false
}
