//! The `hnsw` index access method: one file per executor callback group, as pgvector splits
//! `hnswbuild.c / hnswinsert.c / hnswscan.c / hnswvacuum.c`. The graph algorithms are in
//! `recall_core::hnsw`; this module maps them onto Postgres pages.

pub mod build;
pub mod calibrate;
pub mod cost;
pub mod graph;
pub mod handler;
pub mod insert;
pub mod meta;
pub mod options;
pub mod scan;
pub mod vacuum;

mod tests;

use pgrx::pg_sys;

/// Page kind of element pages (see `storage::page::PageTag`).
pub const PAGE_ELEMENTS: u16 = 2;

pub use crate::opclass::{opclass_metric, prepare};

/// Dimensions of the indexed column, with pgvector's errors.
pub unsafe fn index_dims(index: pg_sys::Relation) -> usize {
    crate::opclass::index_dims(index, "hnsw", options::MAX_DIM)
}
