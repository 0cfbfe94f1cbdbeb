//! The access method handler: the table of callbacks Postgres calls for `USING hnsw`.

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::{build, cost, insert, options, scan, vacuum};

const ROUTINE: pg_sys::IndexAmRoutine = {
    let mut r = unsafe { std::mem::zeroed::<pg_sys::IndexAmRoutine>() };
    r.type_ = pg_sys::NodeTag::T_IndexAmRoutine;
    r.amstrategies = 0;
    // 1: distance function, 2: norm (cosine opclasses)
    r.amsupport = 2;
    r.amcanorderbyop = true;
    // The index has no searchable quals; the planner still needs `amoptionalkey` to build a
    // path with only ORDER BY.
    r.amoptionalkey = true;
    r.amkeytype = pg_sys::InvalidOid;
    r.ambuild = Some(build::ambuild);
    r.ambuildempty = Some(build::ambuildempty);
    r.aminsert = Some(insert::aminsert);
    r.ambulkdelete = Some(vacuum::ambulkdelete);
    r.amvacuumcleanup = Some(vacuum::amvacuumcleanup);
    r.amcostestimate = Some(cost::amcostestimate);
    r.amoptions = Some(options::amoptions);
    r.ambuildphasename = Some(build::ambuildphasename);
    r.amvalidate = Some(amvalidate);
    r.ambeginscan = Some(scan::ambeginscan);
    r.amrescan = Some(scan::amrescan);
    r.amgettuple = Some(scan::amgettuple);
    r.amendscan = Some(scan::amendscan);
    r
};

#[pg_guard]
unsafe extern "C-unwind" fn amvalidate(_opclass: pg_sys::Oid) -> bool {
    true
}

#[pg_extern(sql = false)]
fn hnswhandler(_fcinfo: pg_sys::FunctionCallInfo) -> pgrx::Internal {
    unsafe {
        let r = pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexAmRoutine>()) as *mut pg_sys::IndexAmRoutine;
        r.write(ROUTINE);
        pgrx::Internal::from(Some(pg_sys::Datum::from(r)))
    }
}
