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
    /// 0 when omitted (outside the accepted range, so only omission produces it).
    pub m: i32,
    pub ef_construction: i32,
    pub intent: crate::intent::IntentOptions,
}

/// (m, ef_construction) when `optimized_for = 'recall'` and neither is given: a denser
/// graph reaches 0.99 at a smaller ef_search.
const RECALL_M: i32 = 24;
const RECALL_EF_CONSTRUCTION: i32 = 96;

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
            0,
            2,
            100,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
        pg_sys::add_int_reloption(
            kind as _,
            c"ef_construction".as_ptr(),
            c"Size of the dynamic candidate list for construction".as_ptr(),
            0,
            4,
            1000,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
        crate::intent::register(kind);
        kind
    });
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amoptions(
    reloptions: pg_sys::Datum,
    validate: bool,
) -> *mut pg_sys::bytea {
    let own = [
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
    crate::intent::build_reloptions::<HnswOptions>(
        reloptions,
        validate,
        kind,
        &own,
        std::mem::offset_of!(HnswOptions, intent),
    )
}

/// The calibration target `WITH (optimized_for, target_recall, target_k)` asks for.
pub unsafe fn target(index: pg_sys::Relation) -> Option<crate::intent::Target> {
    let opts = (*index).rd_options as *const HnswOptions;
    crate::intent::target(opts.as_ref().map(|o| &o.intent))
}

/// The index's (m, ef_construction): given values win, then the intent's, then pgvector's
/// defaults.
pub unsafe fn build_options(index: pg_sys::Relation) -> (usize, usize) {
    let opts = ((*index).rd_options as *const HnswOptions).as_ref();
    let recall = target(index).and_then(|t| t.intent) == Some(crate::intent::OptimizedFor::Recall);
    let given = |v: Option<i32>| v.filter(|&v| v > 0);
    let m = given(opts.map(|o| o.m)).unwrap_or(if recall { RECALL_M } else { DEFAULT_M });
    let efc = given(opts.map(|o| o.ef_construction)).unwrap_or(
        if recall && given(opts.map(|o| o.m)).is_none() {
            RECALL_EF_CONSTRUCTION
        } else {
            DEFAULT_EF_CONSTRUCTION
        },
    );
    if efc < 2 * m {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "ef_construction must be greater than or equal to 2 * m"
        );
    }
    (m as usize, efc as usize)
}

/// The ef_search a scan uses: the session's `hnsw.ef_search` when the user set it, else the
/// index's calibrated value, else the default.
pub fn effective_ef_search(meta: &super::meta::HnswMeta) -> usize {
    if meta.calibrated_ef_search > 0 && !crate::intent::guc_is_set(c"hnsw.ef_search") {
        // Calibration measures relaxed scans, which continue past the first batch: a value
        // below target_k only holds when scans may continue.
        let ef = meta.calibrated_ef_search as usize;
        if ITERATIVE_SCAN.get() == IterativeScan::Off {
            ef.max(meta.target_k as usize)
        } else {
            ef
        }
    } else {
        EF_SEARCH.get().max(1) as usize
    }
}
