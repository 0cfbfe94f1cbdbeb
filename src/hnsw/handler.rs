//! The access method handler: the table of callbacks Postgres calls for `USING hnsw`.

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::{build, cost, insert, options, scan, vacuum};

const ROUTINE: pg_sys::IndexAmRoutine = {
    let mut r = crate::am::ordering_am();
    r.ambuild = Some(build::ambuild);
    r.ambuildempty = Some(build::ambuildempty);
    r.aminsert = Some(insert::aminsert);
    r.ambulkdelete = Some(vacuum::ambulkdelete);
    r.amvacuumcleanup = Some(vacuum::amvacuumcleanup);
    r.amcostestimate = Some(cost::amcostestimate);
    r.amoptions = Some(options::amoptions);
    r.ambuildphasename = Some(build::ambuildphasename);
    r.ambeginscan = Some(scan::ambeginscan);
    r.amrescan = Some(scan::amrescan);
    r.amgettuple = Some(scan::amgettuple);
    r.amendscan = Some(scan::amendscan);
    r
};

#[pg_extern(sql = false)]
fn hnswhandler(_fcinfo: pg_sys::FunctionCallInfo) -> pgrx::Internal {
    crate::am::handler_result(ROUTINE)
}
