//! `WITH (optimized_for = 'recall' | 'balanced' | 'latency', target_recall = 0.95, target_k = 10)`:
//! the intent-level options both access methods share. An index given an intent measures
//! itself at the end of the build and records the cheapest search setting that reaches the
//! target (see `recall_core::calibrate`), so a DBA states a recall instead of learning
//! `ef_search` or `probes`.

use pgrx::pg_sys;
use pgrx::prelude::*;

/// Reloption fields every options struct embeds, in this order.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IntentOptions {
    /// 0 unset, else an `OptimizedFor` code.
    pub optimized_for: i32,
    /// Outside (0, 1] when unset.
    pub target_recall: f64,
    /// 0 when unset.
    pub target_k: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizedFor {
    Recall = 1,
    Balanced = 2,
    Latency = 3,
}

impl OptimizedFor {
    pub fn from_code(c: i32) -> Option<OptimizedFor> {
        match c {
            1 => Some(OptimizedFor::Recall),
            2 => Some(OptimizedFor::Balanced),
            3 => Some(OptimizedFor::Latency),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OptimizedFor::Recall => "recall",
            OptimizedFor::Balanced => "balanced",
            OptimizedFor::Latency => "latency",
        }
    }

    /// The recall@10 each intent promises.
    pub fn target(self) -> f64 {
        match self {
            OptimizedFor::Recall => 0.99,
            OptimizedFor::Balanced => 0.95,
            OptimizedFor::Latency => 0.90,
        }
    }
}

/// Calibration codes stored in the metapages next to the `OptimizedFor` codes: a build with
/// an explicit `target_recall`, and a `recall.tune()` call.
pub const EXPLICIT_TARGET: u32 = 4;
pub const TUNED: u32 = 5;

/// What calibration aims for.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub recall: f64,
    pub k: usize,
    pub intent: Option<OptimizedFor>,
}

impl Target {
    /// The code recorded in the metapage for a calibration toward this target.
    pub fn code(&self) -> u32 {
        self.intent.map_or(EXPLICIT_TARGET, |i| i as u32)
    }
}

pub const DEFAULT_K: usize = 10;

/// Indexed rows used as calibration queries: enough for a stable mean (the standard error
/// of a recall near 0.95 over 300 queries × 10 neighbours is about 0.004), few enough that
/// gathering their exact neighbours costs a fraction of the build.
pub const CALIBRATION_QUERIES: usize = 300;

/// Whether the user set a GUC (in the session, role, database or file) rather than leaving
/// its built-in default: a calibrated value applies only in the second case.
pub fn guc_is_set(name: &'static std::ffi::CStr) -> bool {
    thread_local! {
        // GUC records live as long as the backend; look each one up once.
        static FOUND: std::cell::RefCell<Vec<(&'static std::ffi::CStr, usize)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let cached = FOUND.with(|f| f.borrow().iter().find(|(n, _)| *n == name).map(|&(_, p)| p));
    let g = match cached {
        Some(p) => p as *const pg_sys::config_generic,
        None => {
            let p = find_guc(name);
            if p.is_null() {
                return false;
            }
            FOUND.with(|f| f.borrow_mut().push((name, p as usize)));
            p
        }
    };
    unsafe { (*g).source > pg_sys::GucSource::PGC_S_DEFAULT }
}

fn find_guc(name: &std::ffi::CStr) -> *const pg_sys::config_generic {
    unsafe {
        #[cfg(feature = "pg15")]
        let (vars, n) = (
            pg_sys::get_guc_variables(),
            pg_sys::GetNumConfigOptions() as usize,
        );
        #[cfg(not(feature = "pg15"))]
        let (vars, n) = {
            let mut n = 0;
            (pg_sys::get_guc_variables(&mut n), n as usize)
        };
        for i in 0..n {
            let g = *vars.add(i);
            if !g.is_null() && std::ffi::CStr::from_ptr((*g).name) == name {
                return g;
            }
        }
        std::ptr::null()
    }
}

struct Members([pg_sys::relopt_enum_elt_def; 4]);
// SAFETY: the pointers are to static C strings.
unsafe impl Sync for Members {}

static MEMBERS: Members = Members([
    pg_sys::relopt_enum_elt_def {
        string_val: c"recall".as_ptr(),
        symbol_val: OptimizedFor::Recall as i32,
    },
    pg_sys::relopt_enum_elt_def {
        string_val: c"balanced".as_ptr(),
        symbol_val: OptimizedFor::Balanced as i32,
    },
    pg_sys::relopt_enum_elt_def {
        string_val: c"latency".as_ptr(),
        symbol_val: OptimizedFor::Latency as i32,
    },
    pg_sys::relopt_enum_elt_def {
        string_val: std::ptr::null(),
        symbol_val: 0,
    },
]);

/// Registers the three options for an access method's reloption kind.
pub unsafe fn register(kind: pg_sys::relopt_kind::Type) {
    let lock = pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE;
    // Defaults outside the accepted ranges mean "not given" (only omission produces them).
    pg_sys::add_enum_reloption(
        kind as _,
        c"optimized_for".as_ptr(),
        c"What the index calibrates its search for: recall, balanced or latency".as_ptr(),
        MEMBERS.0.as_ptr() as *mut _,
        0,
        c"Valid values are \"recall\", \"balanced\", and \"latency\".".as_ptr(),
        lock,
    );
    pg_sys::add_real_reloption(
        kind as _,
        c"target_recall".as_ptr(),
        c"Recall@target_k the index calibrates its search for".as_ptr(),
        -1.0,
        0.0,
        1.0,
        lock,
    );
    pg_sys::add_int_reloption(
        kind as _,
        c"target_k".as_ptr(),
        c"k of the recall target".as_ptr(),
        0,
        1,
        1000,
        lock,
    );
}

/// `amoptions` for an access method whose options struct `T` ends with `IntentOptions` at
/// `intent_offset`: its own entries plus the intent's.
pub unsafe fn build_reloptions<T>(
    reloptions: pg_sys::Datum,
    validate: bool,
    kind: pg_sys::relopt_kind::Type,
    own: &[pg_sys::relopt_parse_elt],
    intent_offset: usize,
) -> *mut pg_sys::bytea {
    let mut table = own.to_vec();
    table.extend(parse_elts(intent_offset));
    pg_sys::build_reloptions(
        reloptions,
        validate,
        kind,
        std::mem::size_of::<T>(),
        table.as_ptr(),
        table.len() as i32,
    ) as *mut pg_sys::bytea
}

/// Parse-table entries for the fields at `base` (the offset of `IntentOptions` in the
/// access method's options struct).
fn parse_elts(base: usize) -> [pg_sys::relopt_parse_elt; 3] {
    let at = |f: usize| (base + f) as i32;
    [
        pg_sys::relopt_parse_elt {
            optname: c"optimized_for".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_ENUM,
            offset: at(std::mem::offset_of!(IntentOptions, optimized_for)),
        },
        pg_sys::relopt_parse_elt {
            optname: c"target_recall".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_REAL,
            offset: at(std::mem::offset_of!(IntentOptions, target_recall)),
        },
        pg_sys::relopt_parse_elt {
            optname: c"target_k".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
            offset: at(std::mem::offset_of!(IntentOptions, target_k)),
        },
    ]
}

/// The calibration target the options ask for; None without an intent or target.
/// An explicit `target_recall` wins over `optimized_for`'s.
pub fn target(o: Option<&IntentOptions>) -> Option<Target> {
    let o = o?;
    let intent = OptimizedFor::from_code(o.optimized_for);
    let k = if o.target_k >= 1 {
        o.target_k as usize
    } else {
        DEFAULT_K
    };
    if o.target_recall >= 0.0 {
        if o.target_recall == 0.0 {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "target_recall must be greater than 0 and at most 1"
            );
        }
        return Some(Target {
            recall: o.target_recall,
            k,
            intent,
        });
    }
    if o.target_k >= 1 && intent.is_none() {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "target_k needs target_recall or optimized_for"
        );
    }
    intent.map(|i| Target {
        recall: i.target(),
        k,
        intent: Some(i),
    })
}
