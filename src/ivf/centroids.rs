//! The centroid pages: reading every list's centroid and newest page, and updating one
//! list's header when an insert starts a new page.

use pgrx::pg_sys;
use recall_core::distance::{order_distance, Metric};
use recall_core::ivf::tuple;
use std::cell::RefCell;
use std::rc::Rc;

use super::meta::IvfMeta;
use super::PAGE_CENTROIDS;
use crate::storage::buffer::Lock;
use crate::storage::{page, LockedBuffer};

/// Centroid entries per centroid page.
pub fn per_page(dims: usize) -> usize {
    (page::max_item_size() + 4) / page::item_footprint(tuple::centroid_size(dims))
}

/// Where list `j`'s centroid entry lives: (block, offset).
pub fn location(meta: &IvfMeta, j: usize) -> (u32, u16) {
    let per = per_page(meta.dims as usize);
    (meta.centroid_start + (j / per) as u32, (j % per + 1) as u16)
}

/// The centroids of the index, `lists × dims`, from this backend's cache. They never change
/// after the build, so reading them once per backend (instead of every centroid page on
/// every scan and insert) is safe; the cache key includes the build's random id.
pub unsafe fn cached(index: pg_sys::Relation, meta: &IvfMeta) -> Rc<Vec<f32>> {
    thread_local! {
        static CACHE: RefCell<Vec<(pg_sys::Oid, u64, Rc<Vec<f32>>)>> = const { RefCell::new(Vec::new()) };
    }
    let oid = (*index).rd_id;
    if let Some(c) = CACHE.with(|c| {
        c.borrow()
            .iter()
            .find(|e| e.0 == oid && e.1 == meta.build_id)
            .map(|e| e.2.clone())
    }) {
        return c;
    }
    let c = Rc::new(Lists::read(index, meta).centroids);
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        cache.retain(|e| e.0 != oid);
        // Bounded: a backend touching many large indexes keeps the most recent few.
        let bytes: usize = cache.iter().map(|e| e.2.len() * 4).sum();
        if bytes + c.len() * 4 > CACHE_BYTES {
            cache.clear();
        }
        cache.push((oid, meta.build_id, c.clone()));
    });
    c
}

const CACHE_BYTES: usize = 256 << 20;

/// The newest page of list `j`, read from its centroid entry.
pub unsafe fn head(index: pg_sys::Relation, meta: &IvfMeta, j: usize) -> u32 {
    let (blk, off) = location(meta, j);
    let buf = LockedBuffer::read(index, blk, Lock::Share);
    page::item(buf.page(), off).map_or(tuple::NO_PAGE, |b| tuple::centroid_header(b).0)
}

/// Lists ordered by how close their centroid is to `q`, closest first. Centroids of
/// inner-product and cosine indexes are unit vectors, ranked by inner product.
pub fn ranked(centroids: &[f32], dims: usize, metric: Metric, q: &[f32]) -> Vec<(f32, u32)> {
    let metric = list_metric(metric);
    let mut r: Vec<(f32, u32)> = centroids
        .chunks_exact(dims)
        .enumerate()
        .map(|(j, c)| (order_distance(metric, q, c), j as u32))
        .collect();
    r.sort_by(|a, b| a.0.total_cmp(&b.0));
    r
}

/// The list a new vector belongs to.
pub fn nearest(centroids: &[f32], dims: usize, metric: Metric, v: &[f32]) -> usize {
    let metric = list_metric(metric);
    let mut best = (f32::INFINITY, 0usize);
    for (j, c) in centroids.chunks_exact(dims).enumerate() {
        let d = order_distance(metric, v, c);
        if d < best.0 {
            best = (d, j);
        }
    }
    best.1
}

/// Every list's centroid and newest page, in list order.
pub struct Lists {
    pub dims: usize,
    pub centroids: Vec<f32>,
    pub heads: Vec<u32>,
}

impl Lists {
    pub unsafe fn read(index: pg_sys::Relation, meta: &IvfMeta) -> Lists {
        let dims = meta.dims as usize;
        let mut l = Lists {
            dims,
            centroids: Vec::with_capacity(meta.lists as usize * dims),
            heads: Vec::new(),
        };
        for blk in meta.centroid_start..meta.centroid_start + meta.centroid_pages {
            pgrx::check_for_interrupts!();
            let buf = LockedBuffer::read(index, blk, Lock::Share);
            let p = buf.page();
            if page::kind(p) != Some(PAGE_CENTROIDS) {
                pgrx::error!(
                    "ivfflat index \"{}\" has a damaged centroid page; REINDEX it",
                    crate::opclass::relname(index)
                );
            }
            for off in 1..=page::max_offset(p) {
                if let Some(b) = page::item(p, off) {
                    l.heads.push(tuple::centroid_header(b).0);
                    l.centroids
                        .extend_from_slice(&tuple::centroid_vector(b, dims));
                }
            }
        }
        l
    }

    pub fn len(&self) -> usize {
        self.heads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }
}

/// The metric lists are formed and ranked by: Euclidean for L2, inner product with unit
/// centroids (spherical k-means) for inner product and cosine.
pub fn list_metric(metric: Metric) -> Metric {
    match metric {
        Metric::L2 | Metric::L1 => Metric::L2,
        Metric::InnerProduct | Metric::Cosine => Metric::InnerProduct,
    }
}
