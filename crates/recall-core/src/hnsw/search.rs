//! Best-first graph search (HNSW paper, Algorithm 2), written once over [`GraphView`] so the
//! in-memory build graph and the index's Postgres pages run the same code.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// What a search needs from a graph: distances to the current query and adjacency lists.
pub trait GraphView {
    type Id: Copy + Eq;

    /// Distance from the query to `id`; `None` if the node no longer exists (a reused or
    /// freed slot), in which case the search neither returns nor expands it.
    fn distance(&mut self, id: Self::Id) -> Option<f32>;

    /// Appends `id`'s neighbours at `level` to `out`.
    fn neighbours(&mut self, id: Self::Id, level: usize, out: &mut Vec<Self::Id>);

    /// A hint that `distance(id)` comes soon: the search is bound by memory latency, so
    /// starting the loads of a whole neighbour list before computing any of it lets the
    /// misses overlap instead of being paid one after another.
    fn prefetch(&mut self, _id: Self::Id) {}

    /// A hint that `neighbours(id, level)` probably comes next (`id` heads the candidates
    /// while another node's list is evaluated): its list can load meanwhile.
    fn prefetch_neighbours(&mut self, _id: Self::Id, _level: usize) {}

    /// Puts a list of nodes about to be evaluated in the order that is cheapest to read
    /// (any order gives the same search). Paged graphs group nodes sharing a page.
    fn arrange(&self, _ids: &mut [Self::Id]) {}
}

/// Evaluates the not-yet-visited ids of `buf` (in order), all of them prefetched first, and
/// calls `f` with each one's distance.
#[inline]
fn evaluate_new<G: GraphView, V: Visited<G::Id>>(
    g: &mut G,
    buf: &mut Vec<G::Id>,
    visited: &mut V,
    mut f: impl FnMut(Scored<G::Id>),
) {
    buf.retain(|&n| visited.insert(n));
    g.arrange(buf);
    for &n in buf.iter() {
        g.prefetch(n);
    }
    for &n in buf.iter() {
        if let Some(d) = g.distance(n) {
            f(Scored { dist: d, id: n });
        }
    }
}

/// A [`GraphView`] that counts distance evaluations — the unit of work of a search (each
/// one is a vector read), for benchmarks and tuning.
pub struct Counted<'a, G> {
    pub inner: &'a mut G,
    pub evaluations: usize,
}

impl<'a, G> Counted<'a, G> {
    pub fn new(inner: &'a mut G) -> Self {
        Counted {
            inner,
            evaluations: 0,
        }
    }
}

impl<G: GraphView> GraphView for Counted<'_, G> {
    type Id = G::Id;
    fn distance(&mut self, id: G::Id) -> Option<f32> {
        self.evaluations += 1;
        self.inner.distance(id)
    }
    fn neighbours(&mut self, id: G::Id, level: usize, out: &mut Vec<G::Id>) {
        self.inner.neighbours(id, level, out)
    }
    fn prefetch(&mut self, id: G::Id) {
        self.inner.prefetch(id)
    }
    fn prefetch_neighbours(&mut self, id: G::Id, level: usize) {
        self.inner.prefetch_neighbours(id, level)
    }
    fn arrange(&self, ids: &mut [G::Id]) {
        self.inner.arrange(ids)
    }
}

/// Marks nodes seen by one search.
pub trait Visited<Id> {
    /// Returns true the first time `id` is inserted.
    fn insert(&mut self, id: Id) -> bool;

    /// Forgets every id.
    fn clear(&mut self);
}

impl<Id: std::hash::Hash + Eq, S: std::hash::BuildHasher> Visited<Id>
    for std::collections::HashSet<Id, S>
{
    fn insert(&mut self, id: Id) -> bool {
        std::collections::HashSet::insert(self, id)
    }

    fn clear(&mut self) {
        std::collections::HashSet::clear(self)
    }
}

/// A node with its distance, ordered by distance (NaN sorts last so a bad value can never
/// stop a search early).
#[derive(Clone, Copy, Debug)]
pub struct Scored<Id> {
    pub dist: f32,
    pub id: Id,
}

impl<Id> PartialEq for Scored<Id> {
    fn eq(&self, o: &Self) -> bool {
        self.dist.total_cmp(&o.dist) == Ordering::Equal
    }
}
impl<Id> Eq for Scored<Id> {}
impl<Id> PartialOrd for Scored<Id> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<Id> Ord for Scored<Id> {
    fn cmp(&self, o: &Self) -> Ordering {
        self.dist.total_cmp(&o.dist)
    }
}

/// Greedy descent through an upper layer: moves to the closest neighbour until no neighbour
/// is closer. Returns the local minimum.
pub fn greedy<G: GraphView>(
    g: &mut G,
    mut cur: Scored<G::Id>,
    level: usize,
    buf: &mut Vec<G::Id>,
) -> Scored<G::Id> {
    loop {
        buf.clear();
        g.neighbours(cur.id, level, buf);
        let mut moved = false;
        for &n in buf.iter() {
            if let Some(d) = g.distance(n) {
                if d < cur.dist {
                    cur = Scored { dist: d, id: n };
                    moved = true;
                }
            }
        }
        if !moved {
            return cur;
        }
    }
}

/// Descent from `entry` (at `top`) through the upper layers down to `stop` (exclusive),
/// returning the entry points for layer `stop`. `width` 1 is the paper's greedy descent;
/// a wider beam keeps `width` candidates per layer, which matters on clustered data: the
/// upper layers are the only routes between clusters, and a greedy walk across a landscape
/// where every other cluster is about equally far stops in a local minimum — the layer-0
/// search then explores the wrong cluster whatever its `ef`.
pub fn descend<G: GraphView, V: Visited<G::Id>>(
    g: &mut G,
    entry: Scored<G::Id>,
    top: usize,
    stop: usize,
    width: usize,
    visited: &mut V,
    buf: &mut Vec<G::Id>,
) -> Vec<Scored<G::Id>> {
    let mut eps = vec![entry];
    for l in (stop + 1..=top).rev() {
        if width <= 1 {
            eps = vec![greedy(g, eps[0], l, buf)];
        } else {
            visited.clear();
            eps = search_layer(g, &eps, width, l, visited, buf);
        }
    }
    eps
}

/// An insert's descent from the entry point (at `top`) to its own top level `level`: a beam
/// of [`super::INSERT_DESCENT_WIDTH`] through every upper layer. Returns the entry points of
/// the insert's first layer search.
///
/// With the paper's greedy descent, inserts on clustered data often start their layer
/// search in the wrong cluster; the node is then linked among strangers, its real
/// neighbours never link back, and it sits in a pocket that searches walk past — on the 1M
/// clustered inner-product set recall@10 stopped at 0.96 whatever ef_search was. The beam
/// finds the right cluster (0.9995 at ef_search 1000; a beam on layers 2 and up only, greedy
/// on layer 1, reached 0.996).
pub fn descend_for_insert<G: GraphView, V: Visited<G::Id>>(
    g: &mut G,
    entry: Scored<G::Id>,
    top: usize,
    level: usize,
    visited: &mut V,
    buf: &mut Vec<G::Id>,
) -> Vec<Scored<G::Id>> {
    let width = super::INSERT_DESCENT_WIDTH;
    descend(g, entry, top, level.min(top), width, visited, buf)
}

/// A scan's descent from `entry` (at `top`) through the upper layers: a beam of
/// [`super::SCAN_DESCENT_WIDTH`]. Returns the layer-0 entry points, closest first, and leaves
/// `visited` to be cleared by the caller.
pub fn descend_for_scan<G: GraphView, V: Visited<G::Id>>(
    g: &mut G,
    entry: Scored<G::Id>,
    top: usize,
    visited: &mut V,
    buf: &mut Vec<G::Id>,
) -> Vec<Scored<G::Id>> {
    descend(g, entry, top, 0, super::SCAN_DESCENT_WIDTH, visited, buf)
}

/// Beam search of width `ef` at `level` from `entry`. Returns up to `ef` nodes, closest first.
pub fn search_layer<G, V>(
    g: &mut G,
    entry: &[Scored<G::Id>],
    ef: usize,
    level: usize,
    visited: &mut V,
    buf: &mut Vec<G::Id>,
) -> Vec<Scored<G::Id>>
where
    G: GraphView,
    V: Visited<G::Id>,
{
    let mut candidates: BinaryHeap<Reverse<Scored<G::Id>>> = BinaryHeap::with_capacity(ef * 2);
    let mut results: BinaryHeap<Scored<G::Id>> = BinaryHeap::with_capacity(ef + 1);
    for &e in entry {
        if visited.insert(e.id) {
            candidates.push(Reverse(e));
            results.push(e);
            if results.len() > ef {
                results.pop();
            }
        }
    }
    while let Some(Reverse(c)) = candidates.pop() {
        if results.len() >= ef && c.dist > results.peek().unwrap().dist {
            break;
        }
        buf.clear();
        g.neighbours(c.id, level, buf);
        if let Some(Reverse(next)) = candidates.peek() {
            g.prefetch_neighbours(next.id, level);
        }
        evaluate_new(g, buf, visited, |s| {
            if results.len() < ef || s.dist < results.peek().unwrap().dist {
                candidates.push(Reverse(s));
                results.push(s);
                if results.len() > ef {
                    results.pop();
                }
            }
        });
    }
    results.into_sorted_vec()
}

/// Smallest batch after a resumable search's first (see `ResumableSearch::fill_batch`).
pub const MIN_CONTINUATION_BATCH: usize = 20;

/// How a resumable scan continues after its first `ef` results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Continuation {
    /// One batch of `ef` results, like a plain HNSW search (pgvector's default).
    Off,
    /// Keep producing batches; each batch is in distance order, and a row found by a later
    /// batch may be closer than the last row of the previous one.
    Relaxed,
    /// Keep producing batches but drop any row closer than one already returned, so the
    /// output order is exact (pgvector's `strict_order`; can skip rows).
    Strict,
}

/// A layer-0 search that hands out results batch by batch until the graph is exhausted, for
/// index scans whose `WHERE` clause filters rows after the index: the executor keeps asking
/// and the scan keeps exploring, so a filter never silently shortens a `LIMIT`.
///
/// The first batch is exactly [`search_layer`]. Later batches resume from the unexpanded
/// frontier and from the nodes the earlier batches evaluated but did not return.
pub struct ResumableSearch<Id> {
    ef: usize,
    mode: Continuation,
    /// Evaluated nodes whose neighbours are not expanded yet.
    frontier: BinaryHeap<Reverse<Scored<Id>>>,
    /// Evaluated nodes not returned yet.
    pending: BinaryHeap<Reverse<Scored<Id>>>,
    /// The current batch, closest last (so `pop` yields the next row).
    batch: Vec<Scored<Id>>,
    batches: usize,
    last_returned: f32,
    /// Distance evaluations so far, for `max_scan_tuples`.
    pub evaluated: u64,
    buf: Vec<Id>,
}

impl<Id: Copy + Eq> ResumableSearch<Id> {
    /// Starts from layer-0 entry points (normally the result of the upper-layer descent).
    pub fn new<V: Visited<Id>>(
        entry: &[Scored<Id>],
        ef: usize,
        mode: Continuation,
        visited: &mut V,
    ) -> Self {
        let mut s = ResumableSearch {
            ef: ef.max(1),
            mode,
            frontier: BinaryHeap::new(),
            pending: BinaryHeap::new(),
            batch: Vec::new(),
            batches: 0,
            last_returned: f32::NEG_INFINITY,
            evaluated: entry.len() as u64,
            buf: Vec::new(),
        };
        for &e in entry {
            if visited.insert(e.id) {
                s.frontier.push(Reverse(e));
                s.pending.push(Reverse(e));
            }
        }
        s
    }

    pub fn mode(&self) -> Continuation {
        self.mode
    }

    /// Batches started so far (the first is the search at `ef`).
    pub fn batches(&self) -> usize {
        self.batches
    }

    /// Results of the current batch not handed out yet: a caller that reranks takes a
    /// whole batch before ordering it.
    pub fn left_in_batch(&self) -> usize {
        self.batch.len()
    }

    /// The next node in (batch-wise) distance order, or `None` when the graph is exhausted,
    /// the mode stops after one batch, or `max_evaluated` distance evaluations were spent.
    pub fn next<G, V>(
        &mut self,
        g: &mut G,
        visited: &mut V,
        max_evaluated: u64,
    ) -> Option<Scored<Id>>
    where
        G: GraphView<Id = Id>,
        V: Visited<Id>,
    {
        loop {
            if let Some(s) = self.batch.pop() {
                if self.mode == Continuation::Strict && s.dist < self.last_returned {
                    continue;
                }
                self.last_returned = self.last_returned.max(s.dist);
                return Some(s);
            }
            if self.batches > 0
                && (self.mode == Continuation::Off || self.evaluated >= max_evaluated)
            {
                return None;
            }
            if !self.fill_batch(g, visited, max_evaluated) {
                return None;
            }
        }
    }

    /// Expands the frontier until the `ef` best pending nodes beat every frontier node, then
    /// moves those `ef` into the batch. Returns false when nothing is left.
    fn fill_batch<G, V>(&mut self, g: &mut G, visited: &mut V, max_evaluated: u64) -> bool
    where
        G: GraphView<Id = Id>,
        V: Visited<Id>,
    {
        // The first batch is a search at `ef`; later ones are at least
        // `MIN_CONTINUATION_BATCH` wide, because each batch has a fixed cost for the scan
        // that drains it (1M × 128 top-500 at ef_search 1: 500 batches and 812 ms per 300
        // queries, against 696 ms at ef_search 10; batches of 20 then took 7 % less backend
        // CPU than batches of 10 with recall@500 0.982 vs 0.981, and 40 no less than 20).
        let ef = if self.batches == 0 {
            self.ef
        } else {
            self.ef.max(MIN_CONTINUATION_BATCH)
        };
        self.batches += 1;
        // `best` holds this batch's candidates (max-heap, at most ef); the rest stay pending.
        let mut best: BinaryHeap<Scored<Id>> = BinaryHeap::with_capacity(ef + 1);
        while best.len() < ef {
            match self.pending.pop() {
                Some(Reverse(s)) => best.push(s),
                None => break,
            }
        }
        while let Some(&Reverse(c)) = self.frontier.peek() {
            if best.len() >= ef && c.dist > best.peek().unwrap().dist {
                break;
            }
            if self.evaluated >= max_evaluated {
                break;
            }
            self.frontier.pop();
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            g.neighbours(c.id, 0, &mut buf);
            if let Some(Reverse(next)) = self.frontier.peek() {
                g.prefetch_neighbours(next.id, 0);
            }
            let (frontier, pending) = (&mut self.frontier, &mut self.pending);
            let mut evaluated = 0;
            evaluate_new(g, &mut buf, visited, |s| {
                evaluated += 1;
                frontier.push(Reverse(s));
                if best.len() < ef || s.dist < best.peek().unwrap().dist {
                    best.push(s);
                    if best.len() > ef {
                        pending.push(Reverse(best.pop().unwrap()));
                    }
                } else {
                    pending.push(Reverse(s));
                }
            });
            self.evaluated += evaluated;
            self.buf = buf;
        }
        let mut v = best.into_vec();
        v.sort_by(|a, b| b.cmp(a));
        self.batch = v;
        !self.batch.is_empty()
    }
}
