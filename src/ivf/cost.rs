//! Planner costs: starting the scan reads every centroid and `probes` lists; running it to
//! the end reads every list. As for hnsw, pages are charged at `seq_page_cost` (a vector
//! index is only worth having when it is cached), so `ORDER BY <op> LIMIT n` uses the index
//! and a query without a `LIMIT` keeps the sequential scan and sort.

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
    if (*path).indexorderbys.is_null() {
        *startup = 1.0e10;
        *total = 1.0e10;
        return;
    }
    let tuples = (*info).tuples.max(1.0);
    let rel = pg_sys::index_open((*info).indexoid, pg_sys::NoLock as pg_sys::LOCKMODE);
    let meta = super::meta::read(rel);
    pg_sys::index_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
    let lists = (meta.lists as f64).max(1.0);
    let probes = match options::PROBES.get() {
        0 => meta.default_probes as f64,
        p => p as f64,
    }
    .clamp(1.0, lists);
    let dims = meta.dims as f64;
    let per_tuple = pg_sys::cpu_index_tuple_cost + pg_sys::cpu_operator_cost * (1.0 + dims / 32.0);
    let fraction = probes / lists;
    let centroids = meta.centroid_pages as f64 * pg_sys::seq_page_cost + lists * per_tuple;
    *startup = centroids + fraction * (index_pages * pg_sys::seq_page_cost + tuples * per_tuple);
    *total =
        (*startup).max(centroids + index_pages * pg_sys::random_page_cost + tuples * per_tuple);
}
