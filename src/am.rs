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

/// The handler's return value: a palloc'd copy of `routine`.
pub fn handler_result(routine: pg_sys::IndexAmRoutine) -> pgrx::Internal {
    unsafe {
        let r = pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexAmRoutine>())
            as *mut pg_sys::IndexAmRoutine;
        r.write(routine);
        pgrx::Internal::from(Some(pg_sys::Datum::from(r)))
    }
}
