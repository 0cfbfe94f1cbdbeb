//! The ivfflat metapage (block 0): format version, the list count and probe count the build
//! chose, and where the centroid pages are.

use pgrx::pg_sys;
use recall_core::distance::Metric;
use recall_core::sq8::Sq8;

use crate::opclass::{metric_code, metric_from_code};
use crate::storage::metapage::{self, Metapage};

pub const MAGIC: u32 = 0x4956_4646; // "IVFF"
/// 2: list entries hold 8-bit codes (the quantiser below) instead of `f32` vectors.
pub const VERSION: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IvfMeta {
    pub magic: u32,
    pub version: u32,
    pub dims: u32,
    pub metric: u8,
    /// 1 when `lists` was chosen from the row count.
    pub self_sized: u8,
    pub reserved0: u16,
    /// Lists the index has (centroids k-means produced; fewer than requested when the table
    /// had fewer distinct rows).
    pub lists: u32,
    /// Lists requested (the option, or the self-sizing rule).
    pub lists_requested: u32,
    /// Probes used when `ivfflat.probes` is 0.
    pub default_probes: u32,
    pub centroid_start: u32,
    pub centroid_pages: u32,
    /// Rows indexed by the build, rows k-means saw, and its Lloyd iterations.
    pub build_rows: u64,
    pub sample_rows: u32,
    pub kmeans_iterations: u32,
    /// Random per build: backends cache the centroids (immutable after the build) under
    /// (index oid, build_id), so a REINDEX is never served stale centroids.
    pub build_id: u64,
    /// Calibration (all 0 when the index was built without a target): the intent code
    /// (`crate::intent::OptimizedFor`, 4 for an explicit target_recall), the target, the
    /// recall the chosen `default_probes` measured, and how many queries measured it.
    pub calibration: u32,
    pub target_recall: f32,
    pub target_k: u32,
    pub calibrated_recall: f32,
    pub calibration_queries: u32,
    pub reserved: u32,
    /// The list entries' quantiser (`recall_core::sq8::Sq8`), fitted on the build's sample.
    pub sq_centre: f32,
    pub sq_step: f32,
}

impl IvfMeta {
    pub fn new(dims: usize, metric: Metric) -> Self {
        IvfMeta {
            magic: MAGIC,
            version: VERSION,
            dims: dims as u32,
            metric: metric_code(metric),
            self_sized: 0,
            reserved0: 0,
            lists: 0,
            lists_requested: 0,
            default_probes: 1,
            centroid_start: 1,
            centroid_pages: 0,
            build_rows: 0,
            sample_rows: 0,
            kmeans_iterations: 0,
            build_id: unsafe { pg_sys::pg_prng_uint64(&raw mut pg_sys::pg_global_prng_state) },
            calibration: 0,
            target_recall: 0.0,
            target_k: 0,
            calibrated_recall: 0.0,
            calibration_queries: 0,
            reserved: 0,
            sq_centre: 0.0,
            sq_step: 1.0,
        }
    }

    pub fn metric(&self) -> Metric {
        metric_from_code(self.metric).unwrap_or(Metric::L2)
    }

    pub fn quantizer(&self) -> Sq8 {
        Sq8::new(self.sq_centre, self.sq_step)
    }

    pub fn set_quantizer(&mut self, sq: &Sq8) {
        self.sq_centre = sq.centre();
        self.sq_step = sq.step();
    }
}

impl Metapage for IvfMeta {
    const MAGIC: u32 = MAGIC;
    const VERSION: u32 = VERSION;
    const AM: &'static str = "ivfflat";
    fn magic(&self) -> u32 {
        self.magic
    }
    fn version(&self) -> u32 {
        self.version
    }
}

pub unsafe fn read(index: pg_sys::Relation) -> IvfMeta {
    metapage::read(index)
}

pub unsafe fn update(index: pg_sys::Relation, f: impl FnOnce(&mut IvfMeta)) {
    metapage::update(index, f)
}
