//! Planner costs: cheap to start for `ORDER BY <op> LIMIT n` (a search touches about
//! ef_search × 2m elements), expensive to run to the end, so queries without a `LIMIT` keep
//! the sequential scan and sort, and small tables keep the exact scan.
//!
//! Element pages touched by the first batch are charged at `seq_page_cost`: a vector index is
//! only worth having when it is memory-resident (it is read at random, one element at a time),
//! so charging `random_page_cost` for each would make the planner prefer a sequential scan
//! that is in fact far slower. Running the scan to the end is charged as uncached random
//! reads of the whole index.

use pgrx::pg_sys;

use super::options;

#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn amcostestimate(
    _root: *mut pg_sys::PlannerInfo,
    path: *mut pg_sys::IndexPath,
    _loop_count: f64,
    startup: *mut pg_sys::Cost,
    total: *mut pg_sys::Cost,
    selectivity: *mut pg_sys::Selectivity,
    correlation: *mut f64,
    pages: *mut f64,
) {
    let info = (*path).indexinfo;
    let index_pages = ((*info).pages as f64).max(1.0);
    *correlation = 0.0;
    *pages = index_pages;
    *selectivity = 1.0;
    // Never for a scan without ORDER BY: the index has no searchable quals.
    if (*path).indexorderbys.is_null() {
        *startup = f64::from(1.0e10);
        *total = f64::from(1.0e10);
        return;
    }
    let tuples = (*info).tuples.max(1.0);
    let (m, dims) = index_shape((*info).indexoid);
    let ef = options::EF_SEARCH.get() as f64;
    let descent = m * (tuples.ln() / m.ln()).max(1.0);
    let visited = (ef * 2.0 * m * 0.5 + descent).min(tuples);
    // A distance costs about one operator call per 32 dimensions on top of the tuple visit.
    let per_element =
        pg_sys::cpu_index_tuple_cost + pg_sys::cpu_operator_cost * (1.0 + dims / 32.0);
    *startup = visited.min(index_pages) * pg_sys::seq_page_cost + visited * per_element;
    *total = (*startup).max(index_pages * pg_sys::random_page_cost + tuples * per_element);
}

/// (m, dimensions) of the index, from its options and column typmod.
unsafe fn index_shape(oid: pg_sys::Oid) -> (f64, f64) {
    let rel = pg_sys::index_open(oid, pg_sys::NoLock as pg_sys::LOCKMODE);
    let opts = (*rel).rd_options as *const options::HnswOptions;
    let m = if opts.is_null() {
        options::DEFAULT_M
    } else {
        (*opts).m
    };
    let dims = (*(*rel).rd_att).attrs.as_slice(1)[0].atttypmod.max(1);
    pg_sys::index_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
    (m.max(2) as f64, dims as f64)
}
