//! Helpers for `#[pg_test]`s: run a statement in a subtransaction and return the error it
//! raised, so one test can check many bad inputs and the surrounding test goes on.

use pgrx::pg_sys;
use pgrx::prelude::*;

/// The error message `sql` raises, or `None` if it succeeds. Runs in an internal
/// subtransaction so the test's own transaction survives the error.
pub fn sql_error(sql: &str) -> Option<String> {
    unsafe {
        let cxt = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        let result = PgTryBuilder::new(|| {
            Spi::run(sql).unwrap();
            None
        })
        .catch_others(|e| match e {
            pg_sys::panic::CaughtError::PostgresError(r)
            | pg_sys::panic::CaughtError::ErrorReport(r)
            | pg_sys::panic::CaughtError::RustPanic { ereport: r, .. } => {
                Some(r.message().to_string())
            }
        })
        .execute();
        if result.is_none() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(cxt);
        pg_sys::CurrentResourceOwner = owner;
        result
    }
}

/// Asserts that `sql` fails with exactly `message`.
#[track_caller]
pub fn assert_sql_error(sql: &str, message: &str) {
    match sql_error(sql) {
        Some(m) => assert_eq!(m, message, "wrong error for: {sql}"),
        None => panic!("expected error {message:?} from: {sql}"),
    }
}

pub fn text(sql: &str) -> String {
    Spi::get_one::<String>(sql)
        .unwrap()
        .unwrap_or_else(|| panic!("NULL from {sql}"))
}

/// What an index's elements store, as `recall.index_info` reports it (`sq8` for 8-bit codes;
/// NULL for exact vectors).
pub fn stored_codes(index: &str) -> Option<String> {
    Spi::get_one::<String>(&format!(
        "SELECT recall.index_info('{index}') -> 'storage' ->> 'codes'"
    ))
    .unwrap()
}

pub fn float8(sql: &str) -> f64 {
    Spi::get_one::<f64>(sql)
        .unwrap()
        .unwrap_or_else(|| panic!("NULL from {sql}"))
}

pub fn boolean(sql: &str) -> bool {
    Spi::get_one::<bool>(sql)
        .unwrap()
        .unwrap_or_else(|| panic!("NULL from {sql}"))
}

// Recall tests shared by the access methods.

/// Clustered synthetic data: `n` rows of `dims` dimensions around 20 centres, stored in
/// id order so the clusters are interleaved on disk. (Without the ORDER BY the hash join
/// stores them cluster after cluster, and a build that spills then inserts whole clusters
/// one after another — the known weak case of incremental HNSW, see the README.)
pub fn make_table(name: &str, n: usize, dims: usize) {
    Spi::run(&format!(
        "CREATE TABLE {name} (id int PRIMARY KEY, category int, v vector({dims}));
         SELECT setseed(0.42);
         CREATE TEMP TABLE {name}_c AS SELECT c, array_agg(random() * 4 - 2) AS centre
           FROM generate_series(0, 19) c, generate_series(1, {dims}) d GROUP BY c;
         INSERT INTO {name}
           SELECT i, i % 100, (SELECT array_agg(x + (random() - 0.5))::vector FROM unnest(centre) x)
           FROM generate_series(1, {n}) i JOIN {name}_c ON c = i % 20 ORDER BY i;"
    ))
    .unwrap();
}

/// Mean recall@k of the index over `queries` query rows taken from the table itself.
pub fn recall(table: &str, op: &str, k: usize, queries: usize) -> f64 {
    float8(&format!(
        "WITH q AS (SELECT v FROM {table} WHERE id % 97 = 5 LIMIT {queries})
         SELECT avg((SELECT count(*) FROM (
             (SELECT id FROM {table} ORDER BY v {op} q.v LIMIT {k})
             INTERSECT
             (SELECT id FROM {table}_exact ORDER BY v {op} q.v LIMIT {k})) s)::float8 / {k})
         FROM q"
    ))
}

/// An unindexed copy of the table gives the exact answer in the same query.
pub fn exact_copy(table: &str) {
    Spi::run(&format!(
        "CREATE TEMP TABLE {table}_exact AS SELECT * FROM {table}"
    ))
    .unwrap();
}

/// Rows a complete index scan from row `id`'s vector returns.
pub fn scanned_rows(table: &str, id: i32) -> Option<i64> {
    Spi::get_one::<i64>(&format!(
        "SELECT count(*) FROM (SELECT id FROM {table} ORDER BY v <-> (SELECT v FROM {table} WHERE id = {id}) LIMIT 100000) s"
    ))
    .unwrap()
}

/// What `sql` returns with index scans only (`index`) or with sequential scans only: the same
/// query's indexed and exact answers.
pub fn answer_with(index: bool, sql: &str) -> String {
    Spi::run(&format!(
        "SET LOCAL enable_seqscan = {}; SET LOCAL enable_indexscan = {}",
        !index, index
    ))
    .unwrap();
    text(sql)
}

/// A query listing (id, ctid, distance to 9 decimals) of the first `limit` rows of `table`
/// that pass `filter`, ordered by `v {op} {q}`: equal text means the same rows, ctids and order.
pub fn ranked_rows(table: &str, op: &str, q: &str, filter: &str, limit: usize) -> String {
    format!(
        "SELECT string_agg(format('%s %s %s', id, ctid, round(d::numeric, 9)), ', ') FROM \
         (SELECT id, ctid, v {op} {q} AS d FROM {table} WHERE {filter} ORDER BY v {op} {q} LIMIT {limit}) s"
    )
}

/// Adds a copy of every hundredth row at fifty times its scale, beyond the range an index's
/// quantiser was fitted to (clamped codes, large error bounds), with ids from 100,000.
pub fn add_outliers(table: &str) {
    Spi::run(&format!(
        "INSERT INTO {table} SELECT 100000 + id, category, (SELECT array_agg(x * 50) FROM unnest(v::real[]) x)::vector FROM {table} WHERE id % 100 = 1"
    ))
    .unwrap();
}

pub fn force_index() {
    Spi::run("SET LOCAL enable_seqscan = off").unwrap();
}
