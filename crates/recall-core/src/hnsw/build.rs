//! Parallel in-memory HNSW construction.
//!
//! Levels are drawn up front from a seeded generator, so the entry point (the first node of
//! the highest level) is known before any insert and never changes; rayon workers then
//! insert the other nodes concurrently, each node's adjacency behind its own lock. Pure
//! computation only: the caller copies vectors out of Postgres first and writes pages after.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;

use super::adjacency::Adjacency;
use super::search::{
    descend, descend_for_insert, search_layer, Counted, GraphView, Scored, Visited,
};
use super::select::select_neighbours;
use super::visited::VisitedList;
use super::{max_neighbours, HnswParams, MAX_LEVEL};
use crate::distance::{order_distance, Metric};
use crate::rng::SplitMix64;
use crate::sq8::{Codes, Sq8};

/// A built (or being built) graph over vectors `0..n`.
pub struct MemGraph {
    pub dims: usize,
    pub metric: Metric,
    pub m: usize,
    vectors: Vec<f32>,
    levels: Vec<u8>,
    links: Adjacency,
    entry: Option<u32>,
    keep_pruned: bool,
    /// The build's distances when it runs on 8-bit codes; kept after the build, because
    /// they are also what an index storing codes navigates by ([`MemGraph::estimate_view`]).
    codes: Option<Codes>,
    /// Their quantiser, kept: an index may store its elements as codes of it.
    sq: Option<Sq8>,
}

/// The build was cancelled through its flag (query cancel, backend termination).
#[derive(Debug, PartialEq, Eq)]
pub struct Cancelled;

/// The level distribution of the paper: P(level ≥ l) = m^-l.
pub fn draw_level(rng: &mut SplitMix64, m: usize) -> u8 {
    draw_level_from(rng.next_f64_open0(), m)
}

/// [`draw_level`] for a caller-supplied uniform draw `u` in [0, 1).
pub fn draw_level_from(u: f64, m: usize) -> u8 {
    let ml = 1.0 / (m.max(2) as f64).ln();
    let u = (1.0 - u).clamp(f64::MIN_POSITIVE, 1.0);
    let l = (-u.ln() * ml).floor();
    (l as usize).min(MAX_LEVEL) as u8
}

impl MemGraph {
    /// Builds the graph with rayon's current pool. `vectors` holds `n × dims` values, already
    /// normalised for cosine. `cancel` is polled between inserts; `done` counts inserted nodes.
    pub fn build(
        vectors: Vec<f32>,
        dims: usize,
        params: &HnswParams,
        cancel: &AtomicBool,
        done: &AtomicUsize,
    ) -> Result<MemGraph, Cancelled> {
        let keep = super::keep_pruned_for(params.metric, &vectors, dims);
        Self::build_with(vectors, dims, params, cancel, done, keep)
    }

    pub fn build_with(
        vectors: Vec<f32>,
        dims: usize,
        params: &HnswParams,
        cancel: &AtomicBool,
        done: &AtomicUsize,
        keep_pruned: bool,
    ) -> Result<MemGraph, Cancelled> {
        let n = if dims == 0 { 0 } else { vectors.len() / dims };
        let mut rng = SplitMix64::new(params.seed);
        let levels: Vec<u8> = (0..n).map(|_| draw_level(&mut rng, params.m)).collect();
        let links = Adjacency::new(&levels, params.m);
        let entry = (0..n)
            .max_by_key(|&i| (levels[i], std::cmp::Reverse(i)))
            .map(|i| i as u32);
        let sq = (params.quantized && n > 0).then(|| Sq8::fit(&vectors));
        let codes = sq.map(|sq| sq.encode(&vectors, dims, params.metric));
        let g = MemGraph {
            dims,
            metric: params.metric,
            m: params.m,
            vectors,
            levels,
            links,
            entry,
            keep_pruned,
            codes,
            sq,
        };
        let Some(entry) = entry else { return Ok(g) };
        done.fetch_add(1, Ordering::Relaxed);
        // Upper-layer nodes first so the express lanes exist early; the rest in a seeded
        // random order so a table loaded in clusters does not build a clustered graph.
        let mut order: Vec<u32> = (0..n as u32).filter(|&i| i != entry).collect();
        rng.shuffle(&mut order);
        order.sort_by_key(|&i| std::cmp::Reverse(g.levels[i as usize]));
        order.par_iter().try_for_each_init(
            || (VisitedList::new(n), Vec::new()),
            |(visited, buf), &q| {
                if cancel.load(Ordering::Relaxed) {
                    return Err(Cancelled);
                }
                g.insert(q, entry, params.ef_construction, visited, buf);
                done.fetch_add(1, Ordering::Relaxed);
                Ok(())
            },
        )?;
        g.connect_unreachable(cancel)?;
        Ok(g)
    }

    /// Pruning can leave a node with no incoming layer-0 edge, and then no scan can ever
    /// return it — fatal for filtered scans that must be able to reach every row. This finds
    /// the nodes a breadth-first walk from the entry point misses and gives each one an
    /// incoming edge from the closest reachable node, evicting that node's farthest neighbour
    /// only if the evicted node keeps another incoming edge.
    fn connect_unreachable(&self, cancel: &AtomicBool) -> Result<(), Cancelled> {
        let Some(entry) = self.entry else {
            return Ok(());
        };
        let n = self.len();
        let mut indegree = self.in_degrees();
        let mut reached = vec![false; n];
        self.mark_reachable(entry, &mut reached);
        let mut visited = VisitedList::new(n);
        let mut buf = Vec::new();
        for u in 0..n as u32 {
            if reached[u as usize] {
                continue;
            }
            if cancel.load(Ordering::Relaxed) {
                return Err(Cancelled);
            }
            // Reachable nodes near u, closest first.
            let mut view = self.build_view(u);
            visited.reset();
            visited.insert(u);
            let start = Scored {
                dist: self.dist(u, entry),
                id: entry,
            };
            let near = search_layer(&mut view, &[start], 2 * self.m, 0, &mut visited, &mut buf);
            for r in near.iter().filter(|s| reached[s.id as usize]) {
                let writer = self.links.lock(r.id);
                if !writer.push(0, u) {
                    let mut list = writer.list(0);
                    // Evict the farthest neighbour that has another way in.
                    let mut by_dist: Vec<(f32, usize)> = list
                        .iter()
                        .enumerate()
                        .map(|(k, &t)| (self.dist(r.id, t), k))
                        .collect();
                    by_dist.sort_by(|a, b| b.0.total_cmp(&a.0));
                    let Some(&(_, k)) = by_dist
                        .iter()
                        .find(|(_, k)| indegree[list[*k] as usize] >= 2)
                    else {
                        continue;
                    };
                    indegree[list[k] as usize] -= 1;
                    list[k] = u;
                    writer.set(0, &list);
                }
                indegree[u as usize] += 1;
                break;
            }
            if indegree[u as usize] > 0 {
                self.mark_reachable(u, &mut reached);
            }
        }
        Ok(())
    }

    /// Every node once, in breadth-first order over layer 0 from the entry point (nodes no
    /// walk from it reaches follow in id order): the order to lay nodes out on pages, so a
    /// node's neighbours tend to share its page — a scan expanding it then finds them in a
    /// page it has pinned and in cache, instead of one buffer and cache miss each.
    pub fn locality_order(&self) -> Vec<u32> {
        let n = self.len();
        let mut order = Vec::with_capacity(n);
        let mut seen = vec![false; n];
        let starts = self.entry.into_iter().chain(0..n as u32);
        for start in starts {
            if !seen[start as usize] {
                self.breadth_first(start, &mut seen, &mut order);
            }
        }
        order
    }

    /// Appends to `out`, breadth first over layer 0, `from` and every node reachable from
    /// it through nodes `seen` does not mark yet, marking them.
    fn breadth_first(&self, from: u32, seen: &mut [bool], out: &mut Vec<u32>) {
        seen[from as usize] = true;
        let mut head = out.len();
        out.push(from);
        let mut list = Vec::new();
        while head < out.len() {
            let x = out[head];
            head += 1;
            list.clear();
            self.links.read(x, 0, &mut list);
            for &t in &list {
                if !seen[t as usize] {
                    seen[t as usize] = true;
                    out.push(t);
                }
            }
        }
    }

    /// Incoming layer-0 edges per node.
    fn in_degrees(&self) -> Vec<u32> {
        let mut indegree = vec![0u32; self.len()];
        let mut list = Vec::new();
        for i in 0..self.len() as u32 {
            list.clear();
            self.links.read(i, 0, &mut list);
            for &t in &list {
                indegree[t as usize] += 1;
            }
        }
        indegree
    }

    fn mark_reachable(&self, from: u32, reached: &mut [bool]) {
        self.breadth_first(from, reached, &mut Vec::new());
    }

    pub fn len(&self) -> usize {
        self.levels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    pub fn entry(&self) -> Option<u32> {
        self.entry
    }

    pub fn level(&self, i: u32) -> u8 {
        self.levels[i as usize]
    }

    /// Every node's vector, node order.
    /// The quantiser of a build on codes.
    pub fn quantizer(&self) -> Option<Sq8> {
        self.sq
    }

    pub fn vectors(&self) -> &[f32] {
        &self.vectors
    }

    pub fn vector(&self, i: u32) -> &[f32] {
        &self.vectors[i as usize * self.dims..(i as usize + 1) * self.dims]
    }

    /// Node `i`'s neighbours at every level, level 0 first.
    pub fn links(&self, i: u32) -> Vec<Vec<u32>> {
        (0..=self.levels[i as usize] as usize)
            .map(|l| self.links.get(i, l))
            .collect()
    }

    /// The build's distance between two nodes: on codes when the build is quantised.
    fn dist(&self, a: u32, b: u32) -> f32 {
        match &self.codes {
            Some(c) => c.distance(a, b),
            None => order_distance(self.metric, self.vector(a), self.vector(b)),
        }
    }

    /// A search view for node `q` during the build, in the build's distances.
    fn build_view(&self, q: u32) -> BuildView<'_> {
        BuildView { g: self, q }
    }

    /// A search view of this graph for query `q`.
    pub fn view<'a>(&'a self, q: &'a [f32]) -> MemView<'a> {
        MemView { g: self, q }
    }

    /// A search view for query `q` whose distances are the query's to each node's decoded
    /// codes ([`crate::bound::estimate`]): the walk an index storing these codes makes.
    /// `None` when the build did not run on codes.
    pub fn estimate_view<'a>(&'a self, q: &'a [f32]) -> Option<EstimateView<'a>> {
        Some(EstimateView {
            g: self,
            codes: self.codes.as_ref()?,
            sq: self.sq?,
            q,
        })
    }

    fn insert(
        &self,
        q: u32,
        entry: u32,
        ef_construction: usize,
        visited: &mut VisitedList,
        buf: &mut Vec<u32>,
    ) {
        let lq = self.levels[q as usize] as usize;
        let top = self.levels[entry as usize] as usize;
        let mut view = self.build_view(q);
        let cur = Scored {
            dist: self.dist(q, entry),
            id: entry,
        };
        let mut eps = descend_for_insert(&mut view, cur, top, lq, visited, buf);
        for l in (0..=lq.min(top)).rev() {
            visited.reset();
            visited.insert(q);
            let w = search_layer(&mut view, &eps, ef_construction, l, visited, buf);
            let mmax = max_neighbours(self.m, l);
            let chosen = select_neighbours(&w, mmax, self.keep_pruned, |a, b| self.dist(a, b));
            let ids: Vec<u32> = chosen.iter().map(|s| s.id).collect();
            self.links.lock(q).set(l, &ids);
            for s in &chosen {
                self.link_back(s.id, q, s.dist, l, mmax);
            }
            eps = w;
        }
    }

    /// Adds the edge `n → q`, re-selecting `n`'s neighbours when its list is full.
    fn link_back(&self, n: u32, q: u32, dist: f32, level: usize, mmax: usize) {
        let writer = self.links.lock(n);
        if writer.contains(level, q) || writer.push(level, q) {
            return;
        }
        let list = writer.list(level);
        let mut cands: Vec<Scored<u32>> = list
            .iter()
            .map(|&c| Scored {
                dist: self.dist(n, c),
                id: c,
            })
            .collect();
        cands.push(Scored { dist, id: q });
        cands.sort();
        let chosen = select_neighbours(&cands, mmax, self.keep_pruned, |a, b| self.dist(a, b));
        let ids: Vec<u32> = chosen.iter().map(|s| s.id).collect();
        writer.set(level, &ids);
    }
}

/// [`GraphView`] over a [`MemGraph`] for one query.
pub struct MemView<'a> {
    g: &'a MemGraph,
    q: &'a [f32],
}

impl GraphView for MemView<'_> {
    type Id = u32;

    fn distance(&mut self, id: u32) -> Option<f32> {
        Some(order_distance(self.g.metric, self.q, self.g.vector(id)))
    }

    fn neighbours(&mut self, id: u32, level: usize, out: &mut Vec<u32>) {
        self.g.links.read(id, level, out);
    }

    fn prefetch_neighbours(&mut self, id: u32, level: usize) {
        self.g.links.prefetch(id, level);
    }

    fn prefetch(&mut self, id: u32) {
        crate::distance::prefetch(self.g.vector(id));
    }
}

/// [`GraphView`] over a [`MemGraph`]'s codes for one query (see [`MemGraph::estimate_view`]).
pub struct EstimateView<'a> {
    g: &'a MemGraph,
    codes: &'a Codes,
    sq: Sq8,
    q: &'a [f32],
}

impl GraphView for EstimateView<'_> {
    type Id = u32;

    fn distance(&mut self, id: u32) -> Option<f32> {
        Some(crate::bound::estimate(
            self.g.metric,
            &self.sq,
            self.q,
            self.codes.code(id),
        ))
    }

    fn neighbours(&mut self, id: u32, level: usize, out: &mut Vec<u32>) {
        self.g.links.read(id, level, out);
    }

    fn prefetch_neighbours(&mut self, id: u32, level: usize) {
        self.g.links.prefetch(id, level);
    }

    fn prefetch(&mut self, id: u32) {
        self.codes.prefetch(id);
    }
}

/// [`GraphView`] for inserting node `q`: distances as the build measures them.
struct BuildView<'a> {
    g: &'a MemGraph,
    q: u32,
}

impl GraphView for BuildView<'_> {
    type Id = u32;

    fn distance(&mut self, id: u32) -> Option<f32> {
        Some(self.g.dist(self.q, id))
    }

    fn neighbours(&mut self, id: u32, level: usize, out: &mut Vec<u32>) {
        self.g.links.read(id, level, out);
    }

    fn prefetch_neighbours(&mut self, id: u32, level: usize) {
        self.g.links.prefetch(id, level);
    }

    fn prefetch(&mut self, id: u32) {
        match &self.g.codes {
            Some(c) => c.prefetch(id),
            None => crate::distance::prefetch(self.g.vector(id)),
        }
    }
}

/// Full k-NN search on a built graph, as an index scan runs it: the upper-layer descent
/// of [`super::SCAN_DESCENT_WIDTH`], then a beam of width `ef` at layer 0. Returns up to `k`
/// nodes, closest first.
pub fn search(g: &MemGraph, q: &[f32], k: usize, ef: usize) -> Vec<Scored<u32>> {
    search_counted(g, q, k, ef).0
}

/// [`search`], also returning the number of distance evaluations it took.
pub fn search_counted(g: &MemGraph, q: &[f32], k: usize, ef: usize) -> (Vec<Scored<u32>>, usize) {
    search_counted_with(g, q, k, ef, super::SCAN_DESCENT_WIDTH)
}

/// [`search_counted`] with a beam of `upper` candidates through the upper layers.
pub fn search_counted_with(
    g: &MemGraph,
    q: &[f32],
    k: usize,
    ef: usize,
    upper: usize,
) -> (Vec<Scored<u32>>, usize) {
    let Some(entry) = g.entry() else {
        return (Vec::new(), 0);
    };
    let mut inner = g.view(q);
    let mut view = Counted::new(&mut inner);
    let mut buf = Vec::new();
    let start = Scored {
        dist: view.distance(entry).unwrap(),
        id: entry,
    };
    let mut visited = std::collections::HashSet::new();
    let top = g.level(entry) as usize;
    let eps = descend(&mut view, start, top, 0, upper, &mut visited, &mut buf);
    visited.clear();
    let mut r = search_layer(&mut view, &eps, ef.max(k), 0, &mut visited, &mut buf);
    r.truncate(k);
    (r, view.evaluations)
}
