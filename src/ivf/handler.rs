//! The access method handler: the table of callbacks Postgres calls for `USING ivfflat`.

use pgrx::pg_sys;
use pgrx::prelude::*;

const ROUTINE: pg_sys::IndexAmRoutine = crate::am::ordering_am_routine!();

#[pg_extern(sql = false)]
fn ivfflathandler(_fcinfo: pg_sys::FunctionCallInfo) -> pgrx::Internal {
    crate::am::handler_result(ROUTINE)
}
