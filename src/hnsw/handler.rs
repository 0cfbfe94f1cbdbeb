//! The access method handler: the table of callbacks Postgres calls for `USING hnsw`.

use pgrx::pg_sys;
use pgrx::prelude::*;

const ROUTINE: pg_sys::IndexAmRoutine = crate::am::ordering_am_routine!();

#[pg_extern(sql = false)]
fn hnswhandler(_fcinfo: pg_sys::FunctionCallInfo) -> pgrx::Internal {
    crate::am::handler_result(ROUTINE)
}
