//! Exact distances of heap rows, for index scans whose pages hold only 8-bit codes.
//!
//! Such a scan knows a lower bound of each row's distance. It reads the row's indexed value
//! on the heap and computes the operator's value, then hands rows to the executor in exact
//! order. A plain column is read in place at the row's HOT-chain root
//! ([`HeapRerank::exact_in_place`]); an expression, or a value stored in a form that read
//! does not handle, is evaluated on the row version the snapshot sees, as the executor will.
//!
//! Why not let the executor do it (`xs_recheckorderby` and its reorder queue)? On PostgreSQL
//! 15 rows that pass through that queue lose their `ctid` (measured: `SELECT ctid` returned
//! (4294967295,0)), which breaks `FOR UPDATE` and anything that identifies rows by ctid.
//!
//! Heap pages are read as heapam's own index fetch reads them (prune, share lock, and for the
//! full fetch the HOT-chain search under the snapshot), except that the page is pinned
//! through this backend's memory of which buffer held it (`crate::storage::recent`): the
//! buffer-table probe of a plain read was a tenth of a 1M-row top-500 scan, each row's a
//! cache and TLB miss. For the same
//! reason the executor's own read of a returned row is handed the row's page already pinned
//! ([`TablePages::hand_over`]). Other table access methods go through the table AM interface.
//!
//! Resources: the heap fetch keeps a buffer pin between rows; [`HeapRerank::release`] drops
//! it, and scans call it before every return to the executor so no pin outlives a call (an
//! `ERROR` elsewhere would otherwise leave one for abort to find). [`HeapRerank::end`] frees
//! the rest at `amendscan`; after an abort nothing is called and the resource owner has
//! already released the slot's tuple descriptor and pins.

use pgrx::pg_sys;
use recall_core::distance::{operator_value, Metric};
use recall_core::item::ItemPtr;
use std::collections::BinaryHeap;

use crate::storage::page::to_item_pointer;
use crate::storage::recent::{self, Remembered};
use crate::storage::unguarded::{self, ffi};
use crate::vector::Vector;

/// A row (or an element) and a value of its distance — a lower bound, or the exact value;
/// in a `BinaryHeap` the smallest is on top.
pub struct Candidate(pub f64, pub ItemPtr);

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.total_cmp(&self.0)
    }
}

/// Rows ranked by a lower bound of the operator's value, handed out in exact order: a row
/// whose exact value (read from the heap) is no larger than every bound still waiting cannot
/// be preceded by any of them. Both access methods' scans over codes fill `bounds` a batch
/// at a time and drain it through [`RerankQueue::next`].
#[derive(Default)]
pub struct RerankQueue {
    /// The current batch by lower bound. A heap, not a sorted list: a `LIMIT 10` takes a few
    /// dozen of a thousand rows, and sorting them all was 8 % of an ivfflat scan.
    pub bounds: BinaryHeap<Candidate>,
    /// Rows whose exact value is known, closest on top.
    exact: BinaryHeap<Candidate>,
    fetched: u32,
}

impl RerankQueue {
    /// The next row of the batch in exact order with its exact value; `None` once the batch
    /// is used up (the caller adds the next one).
    pub unsafe fn next(&mut self, heap: &mut HeapRerank) -> Option<Candidate> {
        loop {
            if let Some(top) = self.exact.peek() {
                if self.bounds.peek().is_none_or(|b| top.0 <= b.0) {
                    return self.exact.pop();
                }
            }
            let Candidate(_, tid) = self.bounds.pop()?;
            // The next row's page starts loading while this one is read.
            if let Some(n) = self.bounds.peek() {
                heap.prefetch(n.1);
            }
            // Bounds can all stay below the first exact value (a zero query under cosine
            // makes every exact value NaN): one call can read a whole batch of heap rows.
            self.fetched = self.fetched.wrapping_add(1);
            if self.fetched % 256 == 0 {
                pgrx::check_for_interrupts!();
            }
            // A row no version of which is visible would be skipped by the executor too.
            if let Some(d) = heap.exact(tid) {
                self.exact.push(Candidate(d, tid));
            }
        }
    }
}

pub struct HeapRerank {
    heap: pg_sys::Relation,
    fetch: *mut pg_sys::IndexFetchTableData,
    slot: *mut pg_sys::TupleTableSlot,
    estate: *mut pg_sys::EState,
    econtext: *mut pg_sys::ExprContext,
    info: *mut pg_sys::IndexInfo,
    snapshot: pg_sys::Snapshot,
    metric: Metric,
    /// The query as the operator receives it (not normalised).
    query: Vec<f32>,
    table: TablePages,
    /// The indexed column, when the index is on a plain column of a heap: its value is then
    /// read in place ([`HeapRerank::exact_in_place`]).
    column: Option<i32>,
}

/// What reading a row's value in place found.
enum InPlace {
    /// No row version is reachable from the TID (the executor would find none either).
    Gone,
    Value(f64),
    /// A form the in-place read does not handle; the full fetch reads it.
    Slow,
}

/// A scan's table with this backend's memory of which buffer holds each of its pages: how
/// heap rows are read (see the module comment) and handed over to the executor.
pub struct TablePages {
    rel: pg_sys::Relation,
    /// The table is a heap; other table AMs are read through the table AM interface.
    heapam: bool,
    pages: Remembered,
}

impl TablePages {
    pub unsafe fn new(rel: pg_sys::Relation) -> Self {
        TablePages {
            rel,
            heapam: (*rel).rd_tableam == pg_sys::GetHeapamTableAmRoutine(),
            pages: Remembered::new(rel),
        }
    }

    /// Makes `*held` a pin on block `blk` and returns it; a newly pinned page is pruned
    /// first, as heapam's index fetch does.
    unsafe fn pin(&self, held: &mut pg_sys::Buffer, blk: u32) -> pg_sys::Buffer {
        let cur = *held;
        let valid = cur != pg_sys::InvalidBuffer as pg_sys::Buffer;
        if valid && recent::pinned_block(cur) == blk {
            return cur;
        }
        let rel = self.rel;
        // Not ours any more once the guarded sequence has released it, even if it fails.
        *held = pg_sys::InvalidBuffer as pg_sys::Buffer;
        let buf = self.pages.pin(blk, valid.then_some(cur), |b| {
            ffi::heap_page_prune_opt(rel, b)
        });
        *held = buf;
        buf
    }

    /// Pins row `tid`'s page in the scan's own heap fetch, where the executor's read of the
    /// row (`heapam_index_fetch_tuple`) finds it and skips its buffer-table probe. Call it
    /// just before `amgettuple` returns `tid`.
    pub unsafe fn hand_over(&self, scan: pg_sys::IndexScanDesc, tid: ItemPtr) {
        let fetch = (*scan).xs_heapfetch;
        if self.heapam && !fetch.is_null() {
            let fetch = fetch as *mut pg_sys::IndexFetchHeapData;
            self.pin(&mut (*fetch).xs_cbuf, tid.block);
        }
    }

    /// Starts loading row `tid`'s buffer header, page header and line pointer, and its tuple
    /// once the line pointer is there, when this backend knows which buffer holds its page.
    fn prefetch(&self, tid: ItemPtr) {
        if !self.heapam {
            return;
        }
        if let Some(buf) = self.pages.buffer(tid.block) {
            recent::prefetch_tuple(buf, tid.offset);
        }
    }
}

impl HeapRerank {
    pub unsafe fn new(scan: pg_sys::IndexScanDesc, metric: Metric, query: Vec<f32>) -> Self {
        let heap = (*scan).heapRelation;
        let am = &*(*heap).rd_tableam;
        let fetch = am.index_fetch_begin.expect("table AM without index fetch")(heap);
        let slot = pg_sys::table_slot_create(heap, std::ptr::null_mut());
        let estate = pg_sys::CreateExecutorState();
        let econtext = pg_sys::MakePerTupleExprContext(estate);
        (*econtext).ecxt_scantuple = slot;
        let info = pg_sys::BuildIndexInfo((*scan).indexRelation);
        let attnum = (*info).ii_IndexAttrNumbers[0] as i32;
        let table = TablePages::new(heap);
        let column =
            (table.heapam && (*info).ii_Expressions.is_null() && attnum > 0).then_some(attnum);
        HeapRerank {
            heap,
            fetch,
            slot,
            estate,
            econtext,
            info,
            snapshot: (*scan).xs_snapshot,
            metric,
            query,
            table,
            column,
        }
    }

    /// See [`TablePages::prefetch`].
    pub fn prefetch(&self, tid: ItemPtr) {
        self.table.prefetch(tid);
    }

    /// [`HeapRerank::prefetch`] for a whole batch about to be read: every page header first,
    /// then the tuples, whose line pointers have arrived by then.
    pub fn prefetch_batch(&self, tids: &[ItemPtr]) {
        let t = &self.table;
        if !t.heapam {
            return;
        }
        let bufs: Vec<_> = tids
            .iter()
            .filter_map(|tid| Some((t.pages.buffer(tid.block)?, tid.offset)))
            .collect();
        for &(buf, off) in &bufs {
            recent::prefetch_page_header(buf, off);
        }
        for &(buf, off) in &bufs {
            recent::prefetch_item(buf, off);
        }
    }

    /// The scan's table, for [`TablePages::hand_over`].
    pub fn table(&self) -> &TablePages {
        &self.table
    }

    /// Pins row `tid`'s page in the heap fetch's own buffer slot, where it stays between rows
    /// (heap tables only).
    unsafe fn pin_row_page(&mut self, tid: ItemPtr) -> pg_sys::Buffer {
        let fetch = self.fetch as *mut pg_sys::IndexFetchHeapData;
        self.table.pin(&mut (*fetch).xs_cbuf, tid.block)
    }

    /// heapam's index fetch of `tid` into the slot (see the module comment); false when the
    /// snapshot sees no version of the row.
    unsafe fn fetch_heap(&mut self, tid: ItemPtr) -> bool {
        let buf = self.pin_row_page(tid);
        let tuple: pg_sys::HeapTuple = &raw mut (*(self.slot
            as *mut pg_sys::BufferHeapTupleTableSlot))
            .base
            .tupdata;
        let mut t = to_item_pointer(tid);
        let (heap, snapshot, slot) = (self.heap, self.snapshot, self.slot);
        // heapam_index_fetch_tuple's steps, behind one guard.
        unguarded::guarded(|| {
            ffi::LockBuffer(buf, unguarded::SHARE);
            let found = ffi::heap_hot_search_buffer(
                &mut t,
                heap,
                buf,
                snapshot,
                tuple,
                std::ptr::null_mut(),
                true,
            );
            (*tuple).t_self = t;
            ffi::LockBuffer(buf, unguarded::UNLOCK);
            if found {
                (*slot).tts_tableOid = (*heap).rd_id;
                ffi::ExecStoreBufferHeapTuple(tuple, slot, buf);
            }
            found
        })
    }

    /// The operator's value for row `tid` read where it lies on its heap page, without a
    /// visibility check: every version in a HOT chain holds the same indexed value (an
    /// update that changes it is never HOT), so the chain's first stored member has it. A
    /// version this snapshot does not see gets a value too, which is harmless: it only
    /// orders a row the executor's own fetch then skips. This is the full fetch's result
    /// without its visibility test, tuple slot, buffer pin for the slot and expression
    /// machinery, which a 1M-row top-500 paid 500 times on rows the executor reads next.
    unsafe fn exact_in_place(&mut self, tid: ItemPtr, column: i32) -> InPlace {
        let buf = self.pin_row_page(tid);
        let page = pg_sys::BufferGetPage(buf);
        let desc = (*self.heap).rd_att;
        let (metric, query) = (self.metric, self.query.as_slice());
        unguarded::guarded(|| {
            ffi::LockBuffer(buf, unguarded::SHARE);
            let r = value_in_place(page, tid.offset, desc, column, |raw, room| {
                Vector::plain_in_place(raw, room)
                    .filter(|v| v.len() == query.len())
                    .map(|v| operator_value(metric, query, v))
            });
            ffi::LockBuffer(buf, unguarded::UNLOCK);
            r
        })
    }

    /// The operator's value for row `tid`; `None` when the scan's snapshot sees no version
    /// of it (the executor would skip the row) or the indexed value is NULL. With a plain
    /// indexed column the value may come from a version the snapshot does not see
    /// ([`HeapRerank::exact_in_place`]).
    pub unsafe fn exact(&mut self, tid: ItemPtr) -> Option<f64> {
        if let Some(column) = self.column {
            match self.exact_in_place(tid, column) {
                InPlace::Gone => return None,
                InPlace::Value(d) => return Some(d),
                InPlace::Slow => {}
            }
        }
        let found = if self.table.heapam {
            self.fetch_heap(tid)
        } else {
            let am = &*(*self.heap).rd_tableam;
            let mut t = to_item_pointer(tid);
            let (mut call_again, mut all_dead) = (false, false);
            am.index_fetch_tuple.expect("table AM without index fetch")(
                self.fetch,
                &mut t,
                self.snapshot,
                self.slot,
                &mut call_again,
                &mut all_dead,
            )
        };
        if !found {
            return None;
        }
        let cxt = (*self.econtext).ecxt_per_tuple_memory;
        let old = pg_sys::MemoryContextSwitchTo(cxt);
        let mut value = pg_sys::Datum::from(0usize);
        let mut isnull = false;
        pg_sys::FormIndexDatum(self.info, self.slot, self.estate, &mut value, &mut isnull);
        let r = (!isnull).then(|| {
            let v = Vector::from_datum_unchecked(value);
            operator_value(self.metric, &self.query, v.as_slice())
        });
        pg_sys::MemoryContextSwitchTo(old);
        pg_sys::MemoryContextReset(cxt);
        if let Some(clear) = (*(*self.slot).tts_ops).clear {
            clear(self.slot);
        }
        r
    }

    /// Drops the buffer pin the heap fetch keeps between rows.
    pub unsafe fn release(&mut self) {
        if let Some(reset) = (*(*self.heap).rd_tableam).index_fetch_reset {
            reset(self.fetch);
        }
    }

    /// Frees the fetch, the slot and the expression state (normal end of a scan).
    pub unsafe fn end(self) {
        (*(*self.heap).rd_tableam)
            .index_fetch_end
            .expect("table AM without index fetch")(self.fetch);
        pg_sys::ExecDropSingleTupleTableSlot(self.slot);
        pg_sys::FreeExecutorState(self.estate);
    }
}

/// `value(start, room)` of the attribute `column` of the first stored member of the HOT chain
/// rooted at line pointer `offset` (following a redirect left by pruning, as
/// `heap_hot_search_buffer` does): `start` is where the attribute's bytes begin, `room` how
/// many bytes of the tuple follow. `Slow` when the attribute's offset is not fixed (NULLs in
/// the row, a column added after the row was written, a variable-width column before it) or
/// `value` declines. Plain reads of the page: no calls into Postgres.
///
/// # Safety
/// `page` must be a heap page share-locked by the caller; `column` a valid 1-based user
/// attribute number of `desc`.
unsafe fn value_in_place(
    page: pg_sys::Page,
    offset: u16,
    desc: pg_sys::TupleDesc,
    column: i32,
    value: impl FnOnce(*const u8, usize) -> Option<f64>,
) -> InPlace {
    let max = pg_sys::PageGetMaxOffsetNumber(page);
    let mut off = offset;
    let mut at_root = true;
    let id = loop {
        if off == 0 || off > max {
            return InPlace::Gone;
        }
        let id = pg_sys::PageGetItemId(page, off);
        match (*id).lp_flags() {
            pg_sys::LP_NORMAL => break id,
            pg_sys::LP_REDIRECT if at_root => {
                off = (*id).lp_off() as u16;
                at_root = false;
            }
            _ => return InPlace::Gone,
        }
    };
    let len = (*id).lp_len() as usize;
    let t = pg_sys::PageGetItem(page, id) as *const pg_sys::HeapTupleHeaderData;
    let natts = ((*t).t_infomask2 as u32 & pg_sys::HEAP_NATTS_MASK) as i32;
    if column > natts || (*t).t_infomask as u32 & pg_sys::HEAP_HASNULL != 0 {
        return InPlace::Slow;
    }
    let att = &(*desc).attrs.as_slice((*desc).natts as usize)[column as usize - 1];
    if att.attcacheoff < 0 {
        return InPlace::Slow;
    }
    let start = (*t).t_hoff as usize + att.attcacheoff as usize;
    if start >= len {
        return InPlace::Slow;
    }
    value((t as *const u8).add(start), len - start).map_or(InPlace::Slow, InPlace::Value)
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::test_support::{answer_with, boolean, make_table, ranked_rows, stored_codes};
    use pgrx::prelude::*;

    /// The rerank reads a plain column's value where it lies on the heap page, and falls
    /// back to the full fetch for rows it cannot: NULLs elsewhere in the row, the vector
    /// after a variable-width column (no cached offset), or stored out of line. Each layout
    /// must give the exact plan's rows, ctids, distances and order.
    #[pg_test]
    fn codes_scans_read_values_in_every_row_layout() {
        make_table("rl_src", 1500, 64);
        // Rows over 2 kB, so that toasting starts.
        make_table("rl_wide", 1500, 640);
        let layouts = [
            ("rl_plain", "rl_src", 64, "category int", "category", ""),
            // NULLs in a third of the rows.
            (
                "rl_nulls",
                "rl_src",
                64,
                "n int",
                "CASE WHEN id % 3 = 0 THEN NULL ELSE id END",
                "",
            ),
            (
                "rl_after_text",
                "rl_src",
                64,
                "note text",
                "repeat('x', id % 7)",
                "",
            ),
            (
                "rl_toasted",
                "rl_wide",
                640,
                "category int",
                "category",
                "ALTER TABLE rl_toasted ALTER v SET STORAGE EXTERNAL;",
            ),
        ];
        for (t, src, dims, column, value, alter) in layouts {
            Spi::run(&format!(
                "CREATE TABLE {t} (id int PRIMARY KEY, {column}, v vector({dims}));
                 {alter}
                 INSERT INTO {t} SELECT id, {value}, v FROM {src};
                 CREATE INDEX {t}_idx ON {t} USING hnsw (v vector_l2_ops);
                 SET LOCAL hnsw.ef_search = 1000;"
            ))
            .unwrap();
            assert_eq!(
                stored_codes(&format!("{t}_idx")).as_deref(),
                Some("sq8"),
                "{t}"
            );
            if t == "rl_toasted" {
                assert!(boolean(
                    "SELECT pg_relation_size(reltoastrelid) > 0 FROM pg_class WHERE relname = 'rl_toasted'"
                ));
            }
            for qid in [3, 5, 7, 11] {
                let q = format!("(SELECT v FROM {src} WHERE id = {qid})");
                let sql = ranked_rows(t, "<->", &q, "true", 80);
                assert_eq!(
                    answer_with(true, &sql),
                    answer_with(false, &sql),
                    "{t} query {qid}"
                );
            }
        }
    }

    /// Scans over codes read heap rows themselves (for exact values) and hand each returned
    /// row's page to the executor. After HOT updates, vector changes and deletes in the
    /// scan's own transaction they must give the exact plan's rows, ctids and order: a HOT
    /// chain not followed to its live member would lose the row (checked by breaking it).
    #[pg_test]
    fn codes_scans_read_the_row_versions_the_snapshot_sees() {
        make_table("rv_src", 1500, 64);
        for (am, guc) in [
            ("hnsw", "hnsw.ef_search = 1000"),
            ("ivfflat", "ivfflat.probes = 100"),
        ] {
            let t = format!("rv_{am}");
            // Half-empty pages leave room for HOT updates.
            Spi::run(&format!(
                "CREATE TABLE {t} (id int PRIMARY KEY, category int, v vector(64)) WITH (fillfactor = 50);
                 INSERT INTO {t} SELECT * FROM rv_src;
                 CREATE INDEX {t}_idx ON {t} USING {am} (v vector_l2_ops);
                 SET LOCAL {guc};"
            ))
            .unwrap();
            assert_eq!(
                stored_codes(&format!("{t}_idx")).as_deref(),
                Some("sq8"),
                "{am}"
            );
            let hot_before = Spi::get_one::<i64>(&format!(
                "SELECT n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = '{t}'"
            ))
            .unwrap()
            .unwrap_or(0);
            Spi::run(&format!(
                "UPDATE {t} SET category = category + 1000 WHERE id % 10 = 3;
                 UPDATE {t} SET v = (SELECT array_agg(-x) FROM unnest(v::real[]) x)::vector WHERE id % 10 = 5;
                 DELETE FROM {t} WHERE id % 10 = 7;"
            ))
            .unwrap();
            assert!(
                boolean(&format!(
                    "SELECT n_tup_hot_upd > {hot_before} FROM pg_stat_xact_user_tables WHERE relname = '{t}'"
                )),
                "{am}: no HOT update happened"
            );
            for qid in [3, 5, 7, 11] {
                let q = format!("(SELECT v FROM rv_src WHERE id = {qid})");
                let sql = ranked_rows(&t, "<->", &q, "true", 80);
                assert_eq!(
                    answer_with(true, &sql),
                    answer_with(false, &sql),
                    "{am} query {qid}"
                );
                // Rows found only through their HOT chains, with the category the snapshot sees.
                let sql = ranked_rows(&t, "<->", &q, "category >= 1000", 20);
                assert_eq!(
                    answer_with(true, &sql),
                    answer_with(false, &sql),
                    "{am} query {qid}"
                );
            }
        }
    }
}
