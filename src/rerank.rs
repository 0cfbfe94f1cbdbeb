//! Exact distances of heap rows, for index scans whose pages hold only 8-bit codes.
//!
//! Such a scan knows a lower bound of each row's distance. It reads the row version its
//! snapshot sees (as the executor will), evaluates the indexed column or expression on it and
//! computes the operator's value, then hands rows to the executor in exact order.
//!
//! Why not let the executor do it (`xs_recheckorderby` and its reorder queue)? On PostgreSQL
//! 15 rows that pass through that queue lose their `ctid` (measured: `SELECT ctid` returned
//! (4294967295,0)), which breaks `FOR UPDATE` and anything that identifies rows by ctid.
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
        HeapRerank {
            heap,
            fetch,
            slot,
            estate,
            econtext,
            info: pg_sys::BuildIndexInfo((*scan).indexRelation),
            snapshot: (*scan).xs_snapshot,
            metric,
            query,
        }
    }

    /// The operator's value for the version of row `tid` the scan's snapshot sees; `None`
    /// when it sees none (the executor would skip the row) or the indexed value is NULL.
    pub unsafe fn exact(&mut self, tid: ItemPtr) -> Option<f64> {
        let am = &*(*self.heap).rd_tableam;
        let mut t = to_item_pointer(tid);
        let (mut call_again, mut all_dead) = (false, false);
        let found = am.index_fetch_tuple.expect("table AM without index fetch")(
            self.fetch,
            &mut t,
            self.snapshot,
            self.slot,
            &mut call_again,
            &mut all_dead,
        );
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
