//! `WITH (lists)` and the `ivfflat.*` GUCs, with pgvector's names, bounds and messages.
//!
//! Two defaults differ from pgvector on purpose: `lists` omitted means "size it from the
//! row count" (recorded in the metapage), and `ivfflat.probes = 0` (the default) means "the
//! index's own probe count", about √lists, instead of 1 — pgvector's default of one probe
//! returns a fraction of the true neighbours and, with a filter, fewer rows than the LIMIT.

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use recall_core::ivf::MAX_LISTS;
use std::sync::OnceLock;

#[repr(C)]
pub struct IvfOptions {
    vl_len_: i32,
    pub lists: i32,
    pub intent: crate::intent::IntentOptions,
}

static RELOPT_KIND: OnceLock<pg_sys::relopt_kind::Type> = OnceLock::new();

#[derive(Clone, Copy, PartialEq, Eq, Debug, PostgresGucEnum)]
pub enum IterativeScan {
    #[name = c"off"]
    Off,
    #[name = c"relaxed_order"]
    RelaxedOrder,
}

pub static PROBES: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static ITERATIVE_SCAN: GucSetting<IterativeScan> =
    GucSetting::<IterativeScan>::new(IterativeScan::RelaxedOrder);
pub static MAX_PROBES: GucSetting<i32> = GucSetting::<i32>::new(MAX_LISTS as i32);

pub fn init() {
    GucRegistry::define_int_guc(
        c"ivfflat.probes",
        c"Sets the number of probes",
        c"0 (the default) uses the index's own probe count, about the square root of its lists.",
        &PROBES,
        0,
        MAX_LISTS as i32,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"ivfflat.iterative_scan",
        c"Sets the mode for iterative scans",
        c"relaxed_order (the default) probes more lists until the query has its rows; off stops after the first probes.",
        &ITERATIVE_SCAN,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"ivfflat.max_probes",
        c"Sets the max number of probes for iterative scans",
        c"Unlimited (all lists) by default.",
        &MAX_PROBES,
        1,
        MAX_LISTS as i32,
        GucContext::Userset,
        GucFlags::default(),
    );
    RELOPT_KIND.get_or_init(|| unsafe {
        let kind = pg_sys::add_reloption_kind();
        // Default 0 lies outside the accepted range on purpose: only an omitted option can
        // produce it, and it means "self-size".
        pg_sys::add_int_reloption(
            kind as _,
            c"lists".as_ptr(),
            c"Number of inverted lists".as_ptr(),
            0,
            1,
            MAX_LISTS as i32,
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
    let own = [pg_sys::relopt_parse_elt {
        optname: c"lists".as_ptr(),
        opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
        offset: std::mem::offset_of!(IvfOptions, lists) as i32,
    }];
    let kind = *RELOPT_KIND.get().expect("pg_recall was not initialised");
    crate::intent::build_reloptions::<IvfOptions>(
        reloptions,
        validate,
        kind,
        &own,
        std::mem::offset_of!(IvfOptions, intent),
    )
}

/// The `lists` the user asked for, `None` when omitted.
pub unsafe fn requested_lists(index: pg_sys::Relation) -> Option<usize> {
    let opts = (*index).rd_options as *const IvfOptions;
    if opts.is_null() || (*opts).lists < 1 {
        None
    } else {
        Some((*opts).lists as usize)
    }
}

/// The calibration target `WITH (optimized_for, target_recall, target_k)` asks for.
pub unsafe fn target(index: pg_sys::Relation) -> Option<crate::intent::Target> {
    let opts = (*index).rd_options as *const IvfOptions;
    crate::intent::target(opts.as_ref().map(|o| &o.intent))
}

/// The probes a scan uses: `ivfflat.probes` when not 0, else the index's own (calibrated,
/// or about √lists).
pub fn effective_probes(meta: &super::meta::IvfMeta) -> usize {
    match PROBES.get() {
        0 => meta.default_probes as usize,
        p => p as usize,
    }
}
