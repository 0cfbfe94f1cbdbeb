//! `recall.tune(index, target_recall, target_k)`: re-calibrates an existing index — after its
//! data drifted, or when it was built without a target — without a rebuild. Queries are
//! sampled from the index's own entries, their exact neighbours computed from all entries
//! (rayon, pure computation, a batch at a time), then each access method searches for its
//! cheapest setting as a build's calibration does, and writes it to the metapage through WAL,
//! so it survives restarts and reaches replicas like a build's.

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::JsonB;
use recall_core::calibrate::Truth;
use recall_core::distance::Metric;
use recall_core::sample::Reservoir;

use crate::am::Kind;
use crate::intent::{Target, CALIBRATION_QUERIES};
use crate::opclass::relname;
use crate::parallel::Pool;

#[pg_extern(sql = false)]
fn tune(index: pg_sys::Oid, target_recall: f32, target_k: i32) -> JsonB {
    if !(target_recall > 0.0 && target_recall <= 1.0) {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "target_recall must be greater than 0 and at most 1"
        );
    }
    if !(1..=1000).contains(&target_k) {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "target_k must be between 1 and 1000"
        );
    }
    let t = Target {
        recall: target_recall as f64,
        k: target_k as usize,
        intent: None,
    };
    unsafe {
        if pg_sys::RecoveryInProgress() {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
                "cannot tune an index during recovery",
                "Run recall.tune() on the primary; the result reaches replicas through WAL."
            );
        }
        if pg_sys::get_rel_relkind(index) as u8 != pg_sys::RELKIND_INDEX {
            let name = pg_sys::get_rel_name(index);
            let name = if name.is_null() {
                format!("relation with OID {}", index.to_u32())
            } else {
                format!("\"{}\"", std::ffi::CStr::from_ptr(name).to_string_lossy())
            };
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
                format!("{name} is not an index")
            );
        }
        // The table first, as VACUUM and ANALYZE lock it: this mode excludes a concurrent
        // vacuum (which could free an element a search is about to read), DDL and another
        // tune, and lets scans and inserts run.
        let heap_lock = pg_sys::ShareUpdateExclusiveLock as pg_sys::LOCKMODE;
        let heap = pg_sys::table_open(pg_sys::IndexGetRelation(index, false), heap_lock);
        let rel = pg_sys::index_open(index, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
        if !owns((*heap).rd_id) {
            pg_sys::aclcheck_error(
                pg_sys::AclResult::ACLCHECK_NOT_OWNER,
                pg_sys::ObjectType::OBJECT_INDEX,
                (*(*rel).rd_rel).relname.data.as_ptr(),
            );
        }
        let kind = crate::am::kind(rel);
        if !(*(*rel).rd_index).indisvalid {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("cannot tune invalid index \"{}\"", relname(rel))
            );
        }
        match kind {
            Kind::Hnsw => crate::hnsw::calibrate::tune(rel, t),
            Kind::Ivfflat => crate::ivf::calibrate::tune(rel, t),
        }
        // The metapage record is this transaction's only WAL: without an XID there is no
        // commit record to flush it, and a crash soon after would lose the new setting. Flush to
        // the end of our own last record: the insert position can sit past a page header that
        // has not been written yet, and flushing there is an error.
        pg_sys::XLogFlush(pg_sys::XactLastRecEnd);
        let info = crate::index_info::describe(rel);
        pg_sys::index_close(rel, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
        pg_sys::table_close(heap, heap_lock);
        JsonB(info)
    }
}

unsafe fn owns(table: pg_sys::Oid) -> bool {
    #[cfg(feature = "pg15")]
    {
        pg_sys::pg_class_ownercheck(table, pg_sys::GetUserId())
    }
    #[cfg(not(feature = "pg15"))]
    {
        pg_sys::object_ownercheck(pg_sys::RelationRelationId, table, pg_sys::GetUserId())
    }
}

/// Calibration queries drawn uniformly from an index's entries in one pass.
pub struct QuerySample(Reservoir);

impl QuerySample {
    pub fn new(dims: usize) -> Self {
        QuerySample(Reservoir::new(dims, CALIBRATION_QUERIES, 0x7E57_CA11))
    }

    /// `id` names the entry in the truth (its heap TID, or its element for hnsw).
    pub fn offer(&mut self, v: &[f32], id: u64) {
        self.0.offer(v, id)
    }

    /// The (still empty) exact neighbour sets of the sampled queries.
    pub unsafe fn into_truth(self, index: pg_sys::Relation, t: Target, metric: Metric) -> Truth {
        let seen = self.0.seen();
        if seen < 2 {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "cannot tune index \"{}\": it has {seen} rows, calibration needs at least 2",
                    relname(index)
                )
            );
        }
        let dims = self.0.dims();
        let (rows, ids) = self.0.into_parts();
        Truth::new(rows, ids, dims, t.k, metric)
    }
}

/// Feeds entries to a [`Truth`] in batches. Entries are copied while their page is locked;
/// the exact pass over a batch runs on rayon threads between pages, with no lock held.
pub struct Observer<'a> {
    truth: Truth,
    pool: &'a Pool,
    rows: Vec<f32>,
    ids: Vec<u64>,
    tags: Vec<u32>,
}

/// Bytes of vectors per exact-pass batch.
const BATCH_BYTES: usize = 16 << 20;

impl<'a> Observer<'a> {
    pub fn new(truth: Truth, pool: &'a Pool) -> Self {
        Observer {
            truth,
            pool,
            rows: Vec::new(),
            ids: Vec::new(),
            tags: Vec::new(),
        }
    }

    pub fn push(&mut self, v: &[f32], id: u64, tag: u32) {
        self.rows.extend_from_slice(v);
        self.ids.push(id);
        self.tags.push(tag);
    }

    /// Call with no page locked: runs the exact pass once a batch is full.
    pub fn page_done(&mut self) {
        if self.rows.len() * 4 >= BATCH_BYTES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let (truth, rows, ids, tags) = (&mut self.truth, &self.rows, &self.ids, &self.tags);
        self.pool.run(|_| truth.observe(rows, ids, tags), || {});
        self.rows.clear();
        self.ids.clear();
        self.tags.clear();
    }

    pub fn finish(mut self) -> Truth {
        self.flush();
        self.truth
    }
}
