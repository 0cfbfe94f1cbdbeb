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
            | pg_sys::panic::CaughtError::RustPanic { ereport: r, .. } => Some(r.message().to_string()),
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
    Spi::get_one::<String>(sql).unwrap().unwrap_or_else(|| panic!("NULL from {sql}"))
}

pub fn float8(sql: &str) -> f64 {
    Spi::get_one::<f64>(sql).unwrap().unwrap_or_else(|| panic!("NULL from {sql}"))
}

pub fn boolean(sql: &str) -> bool {
    Spi::get_one::<bool>(sql).unwrap().unwrap_or_else(|| panic!("NULL from {sql}"))
}
