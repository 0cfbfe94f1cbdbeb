//! `WITH (m, ef_construction)` and the `hnsw.*` GUCs, with pgvector's names, defaults,
//! bounds and messages.

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use std::sync::OnceLock;

pub const DEFAULT_M: i32 = 16;
pub const DEFAULT_EF_CONSTRUCTION: i32 = 64;
pub const MAX_DIM: usize = 2000;

#[repr(C)]
pub struct HnswOptions {
    vl_len_: i32,
    pub m: i32,
    pub ef_construction: i32,
}

static RELOPT_KIND: OnceLock<pg_sys::relopt_kind::Type> = OnceLock::new();

#[derive(Clone, Copy, PartialEq, Eq, Debug, PostgresGucEnum)]
pub enum IterativeScan {
    #[name = c"off"]
    Off,
    #[name = c"relaxed_order"]
    RelaxedOrder,
    #[name = c"strict_order"]
    StrictOrder,
}

pub static EF_SEARCH: GucSetting<i32> = GucSetting::<i32>::new(40);
/// Default `relaxed_order`, unlike pgvector: a filtered `LIMIT` query must not silently come
/// back short. `off` restores pgvector's bounded scan.
pub static ITERATIVE_SCAN: GucSetting<IterativeScan> =
    GucSetting::<IterativeScan>::new(IterativeScan::RelaxedOrder);
/// Unlimited unless the user sets it: a cap here is how rows would silently go missing.
pub static MAX_SCAN_TUPLES: GucSetting<i32> = GucSetting::<i32>::new(i32::MAX);

pub fn init() {
    GucRegistry::define_int_guc(
        c"hnsw.ef_search",
        c"Sets the size of the dynamic candidate list for search",
        c"Valid range is 1..1000.",
        &EF_SEARCH,
        1,
        1000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"hnsw.iterative_scan",
        c"Sets the mode for iterative scans",
        c"relaxed_order (the default) keeps scanning until the query has its rows; off stops after ef_search candidates.",
        &ITERATIVE_SCAN,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"hnsw.max_scan_tuples",
        c"Sets the max number of tuples to visit for iterative scans",
        c"Unlimited by default.",
        &MAX_SCAN_TUPLES,
        1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
    RELOPT_KIND.get_or_init(|| unsafe {
        let kind = pg_sys::add_reloption_kind();
        pg_sys::add_int_reloption(
            kind as _,
            c"m".as_ptr(),
            c"Max number of connections".as_ptr(),
            DEFAULT_M,
            2,
            100,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
        pg_sys::add_int_reloption(
            kind as _,
            c"ef_construction".as_ptr(),
            c"Size of the dynamic candidate list for construction".as_ptr(),
            DEFAULT_EF_CONSTRUCTION,
            4,
            1000,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
        kind
    });
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amoptions(
    reloptions: pg_sys::Datum,
    validate: bool,
) -> *mut pg_sys::bytea {
    let table = [
        pg_sys::relopt_parse_elt {
            optname: c"m".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
            offset: std::mem::offset_of!(HnswOptions, m) as i32,
        },
        pg_sys::relopt_parse_elt {
            optname: c"ef_construction".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
            offset: std::mem::offset_of!(HnswOptions, ef_construction) as i32,
        },
    ];
    let kind = *RELOPT_KIND.get().expect("pg_recall was not initialised");
    pg_sys::build_reloptions(
        reloptions,
        validate,
        kind,
        std::mem::size_of::<HnswOptions>(),
        table.as_ptr(),
        table.len() as i32,
    ) as *mut pg_sys::bytea
}

/// The index's (m, ef_construction), defaults filled in.
pub unsafe fn build_options(index: pg_sys::Relation) -> (usize, usize) {
    let opts = (*index).rd_options as *const HnswOptions;
    let (m, efc) = if opts.is_null() {
        (DEFAULT_M, DEFAULT_EF_CONSTRUCTION)
    } else {
        ((*opts).m, (*opts).ef_construction)
    };
    if efc < 2 * m {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "ef_construction must be greater than or equal to 2 * m"
        );
    }
    (m as usize, efc as usize)
}
