//! What the `hnsw` and `ivfflat` handlers share: an index AM that has no searchable quals and
//! exists to serve `ORDER BY <distance operator>`.

use pgrx::pg_sys;
use pgrx::prelude::*;

/// The common part of both routines; each handler fills in its callbacks.
pub const fn ordering_am() -> pg_sys::IndexAmRoutine {
    let mut r = unsafe { std::mem::zeroed::<pg_sys::IndexAmRoutine>() };
    r.type_ = pg_sys::NodeTag::T_IndexAmRoutine;
    r.amstrategies = 0;
    // 1: distance function, 2: norm (cosine opclasses)
    r.amsupport = 2;
    r.amcanorderbyop = true;
    // No searchable quals; the planner still needs `amoptionalkey` to build a path with only
    // ORDER BY.
    r.amoptionalkey = true;
    r.amkeytype = pg_sys::InvalidOid;
    r.amvalidate = Some(amvalidate);
    r
}

#[pg_guard]
unsafe extern "C-unwind" fn amvalidate(_opclass: pg_sys::Oid) -> bool {
    true
}

/// Which of this extension's access methods an index uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Hnsw,
    Ivfflat,
}

/// The kind of `index`; an `ERROR` naming the index and its access method for any other.
pub unsafe fn kind(index: pg_sys::Relation) -> Kind {
    let am = pg_sys::get_am_name((*(*index).rd_rel).relam);
    let am = if am.is_null() {
        String::new()
    } else {
        std::ffi::CStr::from_ptr(am).to_string_lossy().into_owned()
    };
    match am.as_str() {
        "hnsw" => Kind::Hnsw,
        "ivfflat" => Kind::Ivfflat,
        other => {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
                format!(
                    "\"{}\" is not an hnsw or ivfflat index (access method \"{other}\")",
                    crate::opclass::relname(index)
                )
            );
        }
    }
}

/// The callback table of an ordering access method whose module has the usual files
/// (`build`, `cost`, `insert`, `options`, `scan`, `vacuum`) with pgvector's callback names.
macro_rules! ordering_am_routine {
    () => {{
        let mut r = $crate::am::ordering_am();
        r.ambuild = Some(super::build::ambuild);
        r.ambuildempty = Some(super::build::ambuildempty);
        r.aminsert = Some(super::insert::aminsert);
        r.ambulkdelete = Some(super::vacuum::ambulkdelete);
        r.amvacuumcleanup = Some(super::vacuum::amvacuumcleanup);
        r.amcostestimate = Some(super::cost::amcostestimate);
        r.amoptions = Some(super::options::amoptions);
        r.ambuildphasename = Some(super::build::ambuildphasename);
        r.ambeginscan = Some(super::scan::ambeginscan);
        r.amrescan = Some(super::scan::amrescan);
        r.amgettuple = Some(super::scan::amgettuple);
        r.amendscan = Some(super::scan::amendscan);
        r
    }};
}
pub(crate) use ordering_am_routine;

/// The handler's return value: a palloc'd copy of `routine`.
pub fn handler_result(routine: pg_sys::IndexAmRoutine) -> pgrx::Internal {
    unsafe {
        let r = pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexAmRoutine>())
            as *mut pg_sys::IndexAmRoutine;
        r.write(routine);
        pgrx::Internal::from(Some(pg_sys::Datum::from(r)))
    }
}

/// `ambulkdelete`'s statistics: the caller's, or fresh ones on the first call.
pub unsafe fn bulk_delete_stats(
    stats: *mut pg_sys::IndexBulkDeleteResult,
) -> *mut pg_sys::IndexBulkDeleteResult {
    if stats.is_null() {
        pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexBulkDeleteResult>()) as *mut _
    } else {
        stats
    }
}

/// `amrescan`'s part both scans share: take the new scan keys and ORDER BY keys.
pub unsafe fn copy_scan_keys(
    scan: pg_sys::IndexScanDesc,
    keys: pg_sys::ScanKey,
    nkeys: std::ffi::c_int,
    orderbys: pg_sys::ScanKey,
    norderbys: std::ffi::c_int,
) {
    if !keys.is_null() && nkeys > 0 {
        std::ptr::copy(keys, (*scan).keyData, nkeys as usize);
    }
    if !orderbys.is_null() && norderbys > 0 {
        std::ptr::copy(orderbys, (*scan).orderByData, norderbys as usize);
    }
}

/// One `pg_stat_progress_create_index` column.
pub fn progress(param: i32, value: i64) {
    unsafe { pg_sys::pgstat_progress_update_param(param, value) }
}

/// A memory context for per-row garbage during a build, reset after each row.
pub unsafe fn temp_context(name: &'static std::ffi::CStr) -> pg_sys::MemoryContext {
    pg_sys::AllocSetContextCreateExtended(
        pg_sys::CurrentMemoryContext,
        name.as_ptr(),
        pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
        pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
        pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
    )
}

/// The shared part of a build scan's per-row callback: NULLs are skipped; the vector is
/// detoasted in `cxt` (reset after the row), its dimension checked against the index's, and
/// prepared for the opclass; `f` gets it unless the metric cannot index it (a zero vector
/// under cosine). `f` runs inside `cxt`, so its own per-row garbage goes too.
pub unsafe fn with_build_row(
    cxt: pg_sys::MemoryContext,
    value: pg_sys::Datum,
    isnull: bool,
    metric: recall_core::distance::Metric,
    dims: usize,
    f: impl FnOnce(&[f32]),
) {
    if isnull {
        return;
    }
    let old = pg_sys::MemoryContextSwitchTo(cxt);
    let v = crate::vector::Vector::from_datum_unchecked(value);
    crate::vector::errors::check_expected_dim(dims as i32, v.dim());
    if let Some(v) = crate::opclass::prepare(metric, v.as_slice()) {
        f(&v);
    }
    pg_sys::MemoryContextSwitchTo(old);
    pg_sys::MemoryContextReset(cxt);
}

/// `ambeginscan`'s body: a scan descriptor whose opaque state lives (and is dropped) in the
/// scan's memory context.
pub unsafe fn begin_scan<S: 'static>(
    index: pg_sys::Relation,
    nkeys: std::ffi::c_int,
    norderbys: std::ffi::c_int,
    state: S,
) -> pg_sys::IndexScanDesc {
    let scan = pg_sys::RelationGetIndexScan(index, nkeys, norderbys);
    let state = pgrx::PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(state);
    (*scan).opaque = state as *mut std::ffi::c_void;
    scan
}
