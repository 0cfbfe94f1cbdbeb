//! The `ivfflat` index access method: rows partitioned into lists by their nearest k-means
//! centroid, one file per executor callback group like `hnsw`. Clustering and sizing rules
//! are in `recall_core::ivf`; this module maps them onto Postgres pages.
//!
//! Pages: block 0 the metapage; blocks 1.. the centroid pages (one entry per list, in list
//! order, holding the list's newest page); then list pages, each holding entries of one list
//! and linking to that list's previous page.

pub mod build;
pub mod calibrate;
pub mod centroids;
pub mod cost;
pub mod handler;
pub mod insert;
pub mod lists;
pub mod meta;
pub mod options;
pub mod scan;
pub mod vacuum;

mod tests;

pub const PAGE_CENTROIDS: u16 = 3;
pub const PAGE_LIST: u16 = 4;
/// pgvector's limit for ivfflat.
pub const MAX_DIM: usize = 2000;

/// Dimensions of the indexed column, with pgvector's errors.
pub unsafe fn index_dims(index: pgrx::pg_sys::Relation) -> usize {
    crate::opclass::index_dims(index, "ivfflat", MAX_DIM)
}
