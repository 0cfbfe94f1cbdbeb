//! The graph as stored in the index's pages, seen through `recall_core`'s [`GraphView`]: the
//! same search code runs here as in the in-memory build. Pages are read under share locks,
//! one item at a time; nothing is held across calls.

use pgrx::pg_sys;
use recall_core::bound::QueryBound;
use recall_core::distance::{order_distance, Metric};
use recall_core::fasthash::IdMap;
use recall_core::hnsw::search::{GraphView, Scored};
use recall_core::hnsw::tuple::{Element, ItemPtr, Layout, Neighbours};
use std::collections::VecDeque;

use super::meta::HnswMeta;
use super::PAGE_ELEMENTS;
use crate::storage::buffer::Lock;
use crate::storage::recent::{self, Remembered};
use crate::storage::unguarded::{self, ffi};
use crate::storage::{page, LockedBuffer};

/// What a scan needs of an element after evaluating it, recorded at evaluation so that
/// neither expanding the element nor returning its row reads it again (on the 1M × 128 set a
/// top-500 returns a fifth of the elements it evaluates).
#[derive(Clone, Copy)]
pub struct Seen {
    pub neighbours: ItemPtr,
    /// The row's lower bound ([`QueryBound`]) in an index of codes; NaN otherwise.
    pub bound: f64,
    /// The heap row, when the element has exactly one (duplicates are read again).
    pub tid: Option<ItemPtr>,
}

pub struct PageGraph {
    pages: Remembered,
    pub layout: Layout,
    pub m: usize,
    pub metric: Metric,
    query: Vec<f32>,
    query_norm: f64,
    seen: IdMap<u64, Seen>,
    /// Vectors of evaluated elements, kept only when the caller needs pairwise distances
    /// (inserts selecting neighbours).
    vectors: Option<IdMap<u64, Vec<f32>>>,
    /// The last page read stays pinned: an element's neighbour tuple is usually on its page,
    /// and re-pinning costs at least a buffer-header lock.
    pinned: Option<(u32, pg_sys::Buffer)>,
    reads: u32,
    /// Elements announced by `prefetch` whose distance is not computed yet, in order, with
    /// the buffer their page was last seen in: each distance starts loading the next one's
    /// item, whose line pointer has arrived by then.
    ahead: VecDeque<(ItemPtr, Option<pg_sys::Buffer>)>,
}

impl Drop for PageGraph {
    fn drop(&mut self) {
        self.release_pin();
    }
}

impl PageGraph {
    pub fn new(
        rel: pg_sys::Relation,
        meta: &HnswMeta,
        query: Vec<f32>,
        keep_vectors: bool,
    ) -> Self {
        let query_norm = (recall_core::distance::dot(&query, &query) as f64).sqrt();
        PageGraph {
            pages: Remembered::new(rel),
            layout: meta.layout(),
            m: meta.m as usize,
            metric: meta.metric(),
            query,
            query_norm,
            seen: IdMap::with_capacity_and_hasher(512, Default::default()),
            vectors: keep_vectors.then(IdMap::default),
            pinned: None,
            reads: 0,
            ahead: VecDeque::new(),
        }
    }

    pub fn query(&self) -> &[f32] {
        &self.query
    }

    /// Drops the pin kept on the last page read. A graph that outlives one executor call (an
    /// index scan's) must do this before returning: after an `ERROR` the transaction's
    /// resource owner releases every pin, and a later release from here would unpin a buffer
    /// this backend no longer holds.
    pub fn release_pin(&mut self) {
        if let Some((_, buf)) = self.pinned.take() {
            unsafe { pg_sys::ReleaseBuffer(buf) };
        }
    }

    /// Runs `f` on the bytes of item `at` under a share lock on its page.
    fn with_item<R>(&mut self, at: ItemPtr, f: impl FnOnce(&[u8]) -> Option<R>) -> Option<R> {
        self.reads = self.reads.wrapping_add(1);
        if self.reads % 256 == 0 {
            pgrx::check_for_interrupts!();
        }
        // Moving to another page releases the last one, pins and locks the new one behind a
        // single guard ([`crate::storage::unguarded`]).
        let buf = match self.pinned {
            Some((blk, buf)) if blk == at.block => {
                unsafe { pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_SHARE as i32) };
                buf
            }
            _ => {
                let old = self.pinned.take().map(|(_, b)| b);
                let buf = unsafe {
                    self.pages
                        .pin(at.block, old, |b| ffi::LockBuffer(b, unguarded::SHARE))
                };
                self.pinned = Some((at.block, buf));
                buf
            }
        };
        unsafe {
            let r = page::item(pg_sys::BufferGetPage(buf), at.offset).and_then(f);
            pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_UNLOCK as i32);
            r
        }
    }

    /// Runs `f` on element `id` under a share lock; `None` if the slot holds no element.
    pub fn with_element<R>(&mut self, id: ItemPtr, f: impl FnOnce(Element<'_>) -> R) -> Option<R> {
        let layout = self.layout;
        self.with_item(id, |bytes| Element::parse(bytes, layout).map(f))
    }

    /// An element's vector as stored (decoded from codes in a quantised index; cached when
    /// this graph keeps vectors).
    pub fn vector(&mut self, id: u64) -> Option<Vec<f32>> {
        if let Some(v) = self.vectors.as_ref().and_then(|c| c.get(&id)) {
            return Some(v.clone());
        }
        self.with_element(ItemPtr::from_u64(id), |e| e.vector().into_owned())
    }

    /// Makes sure `id`'s vector is in the cache; false if it has no element.
    fn cache(&mut self, id: u64) -> bool {
        if self.vectors.as_ref().is_some_and(|c| c.contains_key(&id)) {
            return true;
        }
        let Some(v) = self.vector(id) else {
            return false;
        };
        self.vectors
            .get_or_insert_with(IdMap::default)
            .insert(id, v);
        true
    }

    /// Distance between two stored elements (their vectors are cached on first use).
    pub fn pair_distance(&mut self, a: u64, b: u64) -> f32 {
        if !(self.cache(a) && self.cache(b)) {
            return f32::INFINITY;
        }
        let c = self.vectors.as_ref().unwrap();
        order_distance(self.metric, &c[&a], &c[&b])
    }

    /// The entry point as a scored node, or `None` when its element is gone.
    pub fn score_entry(&mut self, entry: ItemPtr) -> Option<Scored<u64>> {
        let id = entry.to_u64();
        Some(Scored {
            dist: self.distance(id)?,
            id,
        })
    }

    /// Room for `n` more evaluated elements.
    pub fn reserve(&mut self, n: usize) {
        self.seen.reserve(n);
    }

    /// What was recorded of element `id` when it was evaluated.
    pub fn seen(&self, id: u64) -> Option<&Seen> {
        self.seen.get(&id)
    }

    /// The heap TIDs of element `id` (none if it was deleted or its slot reused).
    pub fn heap_tids(&mut self, id: u64) -> Vec<ItemPtr> {
        if let Some(tid) = self.seen(id).and_then(|s| s.tid) {
            return vec![tid];
        }
        self.with_element(ItemPtr::from_u64(id), |e| e.tids().collect())
            .unwrap_or_default()
    }
}

impl GraphView for PageGraph {
    type Id = u64;

    fn distance(&mut self, id: u64) -> Option<f32> {
        if self.ahead.front().map(|a| a.0) == Some(ItemPtr::from_u64(id)) {
            self.ahead.pop_front();
            if let Some(&(next, Some(buf))) = self.ahead.front() {
                recent::prefetch_item(buf, next.offset);
            }
        }
        let (sq, metric, keep) = (self.layout.sq, self.metric, self.vectors.is_some());
        let query = std::mem::take(&mut self.query);
        let norm = self.query_norm;
        let r = self.with_element(ItemPtr::from_u64(id), |e| {
            let (d, bound) = match (sq, e.codes()) {
                (Some(sq), Some((codes, err))) => {
                    QueryBound::with_norm(metric, &query, sq, norm).estimate_and_bound(codes, err)
                }
                _ => (order_distance(metric, &query, &e.vector()), f64::NAN),
            };
            let tid = (e.tid_count() == 1).then(|| e.tid(0));
            let seen = Seen {
                neighbours: e.neighbours_ptr(),
                bound,
                tid,
            };
            (d, seen, keep.then(|| e.vector().into_owned()))
        });
        self.query = query;
        let (d, seen, v) = r?;
        self.seen.insert(id, seen);
        if let (Some(cache), Some(v)) = (self.vectors.as_mut(), v) {
            cache.insert(id, v);
        }
        Some(d)
    }

    /// Block order (ids are block << 16 | offset): elements sharing a page are read under one
    /// pin, and the page is announced once.
    fn arrange(&self, ids: &mut [u64]) {
        ids.sort_unstable();
    }

    fn prefetch(&mut self, id: u64) {
        let at = ItemPtr::from_u64(id);
        let buf = self.pages.buffer(at.block);
        if let Some(buf) = buf {
            recent::prefetch_page_header(buf, at.offset);
            if self.ahead.is_empty() {
                recent::prefetch_item(buf, at.offset);
            }
        }
        if self.ahead.len() >= 4 * self.m.max(16) {
            // Hints that never met their distance call (a caller that prefetches and then
            // stops): drop them rather than grow.
            self.ahead.clear();
        }
        self.ahead.push_back((at, buf));
    }

    /// Only for elements already evaluated (their neighbour tuple's address is known
    /// without a read); the tuple is usually on the element's own page.
    fn prefetch_neighbours(&mut self, id: u64, _level: usize) {
        let Some(nptr) = self.seen.get(&id).map(|s| s.neighbours) else {
            return;
        };
        if !nptr.is_valid() {
            return;
        }
        if let Some(buf) = self.pages.buffer(nptr.block) {
            recent::prefetch_tuple(buf, nptr.offset);
        }
    }

    fn neighbours(&mut self, id: u64, level: usize, out: &mut Vec<u64>) {
        let nptr = match self.seen.get(&id) {
            Some(s) => s.neighbours,
            None => match self.with_element(ItemPtr::from_u64(id), |e| e.neighbours_ptr()) {
                Some(p) => p,
                None => return,
            },
        };
        if !nptr.is_valid() {
            return;
        }
        let m = self.m;
        self.with_item(nptr, |bytes| {
            Neighbours::parse(bytes, m).map(|n| out.extend(n.at(level).map(|p| p.to_u64())))
        });
    }
}

pub fn nblocks(index: pg_sys::Relation) -> u32 {
    unsafe { pg_sys::RelationGetNumberOfBlocksInFork(index, pg_sys::ForkNumber::MAIN_FORKNUM) }
}

/// Calls `f(element pointer, element)` for every element, page by page under share locks
/// (vacuum and the scan's final sweep).
pub unsafe fn for_each_element(
    index: pg_sys::Relation,
    layout: Layout,
    mut f: impl FnMut(ItemPtr, Element<'_>),
) {
    for blk in 1..nblocks(index) {
        pg_sys::vacuum_delay_point();
        elements_on(index, blk, layout, &mut f);
    }
}

/// Calls `f(element pointer, element)` for every element on block `blk` (none if it is not
/// an element page), under a share lock released on return.
pub unsafe fn elements_on(
    index: pg_sys::Relation,
    blk: u32,
    layout: Layout,
    mut f: impl FnMut(ItemPtr, Element<'_>),
) {
    pgrx::check_for_interrupts!();
    let buf = LockedBuffer::read(index, blk, Lock::Share);
    let p = buf.page();
    if page::kind(p) != Some(PAGE_ELEMENTS) {
        return;
    }
    for off in 1..=page::max_offset(p) {
        if let Some(e) = page::item(p, off).and_then(|b| Element::parse(b, layout)) {
            f(
                ItemPtr {
                    block: blk,
                    offset: off,
                },
                e,
            );
        }
    }
}
