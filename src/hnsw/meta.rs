//! The HNSW metapage (block 0): format version, build parameters and the entry point.

use pgrx::pg_sys;
use recall_core::distance::Metric;
use recall_core::hnsw::tuple::{ItemPtr, Layout};
use recall_core::sq8::Sq8;

use crate::opclass::{metric_code, metric_from_code};
pub use crate::storage::metapage::META_BLOCK;
use crate::storage::metapage::{self, Metapage};

pub const MAGIC: u32 = 0x484E_5357; // "HNSW"
pub const VERSION: u32 = 1;
pub const STORAGE_EXACT: u32 = 0;
pub const STORAGE_CODES: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HnswMeta {
    pub magic: u32,
    pub version: u32,
    pub dims: u32,
    pub m: u16,
    pub ef_construction: u16,
    pub metric: u8,
    pub entry_level: u8,
    pub reserved0: u16,
    pub entry: u64,
    /// Where the last insert put its tuples; the first page tried for the next one.
    pub insert_page: u32,
    /// ef_search chosen by calibration (0 = none); see the calibration issue.
    pub calibrated_ef_search: u32,
    pub calibrated_recall: f32,
    /// The calibration's intent code (`crate::intent::OptimizedFor`, 4 for an explicit
    /// target_recall), target and number of queries; 0 when not calibrated.
    pub calibration: u32,
    pub target_recall: f32,
    pub target_k: u32,
    pub calibration_queries: u32,
    /// How elements store vectors: 0 exact `f32` (also every index from before this field),
    /// 1 8-bit codes of the quantiser below.
    pub storage: u32,
    pub sq_centre: f32,
    pub sq_step: f32,
    pub reserved: [u32; 1],
}

impl HnswMeta {
    pub fn new(dims: usize, m: usize, ef_construction: usize, metric: Metric) -> Self {
        HnswMeta {
            magic: MAGIC,
            version: VERSION,
            dims: dims as u32,
            m: m as u16,
            ef_construction: ef_construction as u16,
            metric: metric_code(metric),
            entry_level: 0,
            reserved0: 0,
            entry: ItemPtr::INVALID.to_u64(),
            insert_page: pg_sys::InvalidBlockNumber,
            calibrated_ef_search: 0,
            calibrated_recall: 0.0,
            calibration: 0,
            target_recall: 0.0,
            target_k: 0,
            calibration_queries: 0,
            storage: STORAGE_EXACT,
            sq_centre: 0.0,
            sq_step: 0.0,
            reserved: [0; 1],
        }
    }

    /// The element layout of this index.
    pub fn layout(&self) -> Layout {
        match self.storage {
            STORAGE_CODES => {
                Layout::codes(self.dims as usize, Sq8::new(self.sq_centre, self.sq_step))
            }
            _ => Layout::exact(self.dims as usize),
        }
    }

    pub fn set_codes(&mut self, sq: Sq8) {
        self.storage = STORAGE_CODES;
        self.sq_centre = sq.centre();
        self.sq_step = sq.step();
    }

    pub fn metric(&self) -> Metric {
        metric_from_code(self.metric).unwrap_or(Metric::L2)
    }

    pub fn entry(&self) -> Option<ItemPtr> {
        let e = ItemPtr::from_u64(self.entry);
        e.is_valid().then_some(e)
    }

    pub fn set_entry(&mut self, e: Option<ItemPtr>, level: u8) {
        self.entry = e.unwrap_or(ItemPtr::INVALID).to_u64();
        self.entry_level = level;
    }
}

impl Metapage for HnswMeta {
    const MAGIC: u32 = MAGIC;
    const VERSION: u32 = VERSION;
    const AM: &'static str = "hnsw";
    fn magic(&self) -> u32 {
        self.magic
    }
    fn version(&self) -> u32 {
        self.version
    }
}

pub unsafe fn read(index: pg_sys::Relation) -> HnswMeta {
    metapage::read(index)
}

pub unsafe fn update(index: pg_sys::Relation, f: impl FnOnce(&mut HnswMeta)) {
    metapage::update(index, f)
}

pub unsafe fn init_page(p: pg_sys::Page, meta: &HnswMeta) {
    metapage::init_page(p, meta)
}
