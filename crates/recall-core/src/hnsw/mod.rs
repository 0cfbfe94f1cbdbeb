//! Hierarchical navigable small-world graphs (Malkov & Yashunin), the algorithms behind the
//! `hnsw` access method: construction, neighbour selection and resumable search. Storage is
//! not here — the graph is read through [`search::GraphView`], which the extension implements
//! over Postgres pages.

pub mod adjacency;
pub mod build;
pub mod dedup;
pub mod search;
pub mod select;
pub mod tuple;
pub mod visited;

use crate::distance::Metric;

/// Highest level a node can get; with m ≥ 2 a level above 15 has probability < 2^-16 per node
/// and would only waste page space.
pub const MAX_LEVEL: usize = 15;

#[derive(Clone, Debug)]
pub struct HnswParams {
    /// Neighbours per node on upper levels; level 0 keeps twice as many.
    pub m: usize,
    /// Beam width while inserting.
    pub ef_construction: usize,
    pub metric: Metric,
    pub seed: u64,
    /// Construct on 8-bit codes ([`crate::sq8`]) instead of the f32 vectors. The finished
    /// graph and every search on it still use the exact vectors.
    pub quantized: bool,
}

/// Below this many dimensions a distance is cheap and the vectors are small, so the build
/// keeps exact distances; above it, it builds on 8-bit codes.
pub const QUANTIZED_BUILD_MIN_DIMS: usize = 64;

/// Fewest distinct vectors a build must see before its index stores 8-bit codes: the
/// quantiser's range comes from the build's data, and a range fitted to a handful of rows
/// would clamp the rows inserted later (correct — bounds stay valid — but a poor graph).
pub const CODES_MIN_ROWS: usize = 1000;

/// Whether a build of `rows` distinct vectors stores its elements as 8-bit codes (about a
/// quarter of the bytes a walk touches; scans rerank on the heap). L1 keeps exact vectors:
/// its bound would need a different error per row, and nobody asked for it.
pub fn store_codes(metric: Metric, dims: usize, rows: usize) -> bool {
    metric != Metric::L1 && dims >= QUANTIZED_BUILD_MIN_DIMS && rows >= CODES_MIN_ROWS
}

/// Beam width of an insert's descent through the upper layers
/// ([`search::descend_for_insert`]).
pub const INSERT_DESCENT_WIDTH: usize = 16;

/// Beam width of a scan's descent through the upper layers ([`search::descend_for_scan`]).
///
/// The paper's greedy walk (width 1) stops in local minima on clustered data, and the
/// layer-0 search then has to walk out of the wrong cluster. Measured in memory, recall@10
/// and distance evaluations per query at ef 40 / 160 / 320:
/// - 1M clustered inner-product set: greedy 0.689 / 0.934 / 0.990 at 806 / 1493 / 1720;
///   width 4: 0.864 / 0.978 / 0.990 at 853 / 1330 / 1493; width 16: 0.949 / 0.993 / 0.995
///   at 1162 / 1553 / 1701.
/// - fashion-mnist (ef 15): the same recall at every width; width 4 costs 260 evaluations
///   instead of 251, width 16 332.
///
/// Width 4 buys most of the clustered gain for almost nothing on easy data.
pub const SCAN_DESCENT_WIDTH: usize = 4;

/// Whether neighbour selection refills the slots the diversity heuristic leaves empty.
///
/// In a metric space the heuristic alone gives the best recall per distance evaluation and
/// builds about 2.5× faster (measured on fashion-mnist: mean degree 11 instead of 32, the
/// same recall for the same number of evaluations). Inner product on vectors of varying
/// norm is not a metric: "closer to the base than to a kept neighbour" then rejects almost
/// every candidate of a long vector, nodes end up with one or two edges and recall collapses
/// (0.76 instead of 0.97 in the opclass test), so there the empty slots are refilled.
pub fn keep_pruned(metric: Metric) -> bool {
    metric == Metric::InnerProduct
}

/// [`keep_pruned`] for a build that can look at all its vectors: inner product over vectors
/// that are all unit length orders exactly like cosine, a metric, so the heuristic alone
/// works there too (and the build is cheaper: on the clustered 1M set, keeping pruned edges
/// fills every list to 2·m and each overflowing list is re-selected).
pub fn keep_pruned_for(metric: Metric, vectors: &[f32], dims: usize) -> bool {
    use rayon::prelude::*;
    keep_pruned(metric)
        && !(dims > 0
            && vectors.par_chunks(dims).all(|v| {
                let n2: f32 = crate::distance::dot(v, v);
                (n2 - 1.0).abs() <= 1e-3
            }))
}

/// Capacity of a node's neighbour list at `level`.
#[inline]
pub fn max_neighbours(m: usize, level: usize) -> usize {
    if level == 0 {
        2 * m
    } else {
        m
    }
}

#[cfg(test)]
mod tests {
    use super::build::{search, MemGraph};
    use super::search::{Continuation, GraphView, ResumableSearch, Scored};
    use super::*;
    use crate::distance::order_distance;
    use crate::rng::SplitMix64;
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    fn mixture(n: usize, dims: usize, centres: usize, seed: u64, normalize: bool) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        let mut gauss = || {
            // Box–Muller
            let (u, v) = (rng.next_f64_open0(), rng.next_f64_open0());
            ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
        };
        let c: Vec<f32> = (0..centres * dims).map(|_| gauss()).collect();
        let mut out = Vec::with_capacity(n * dims);
        let mut pick = SplitMix64::new(seed ^ 99);
        for _ in 0..n {
            let k = pick.below(centres as u64) as usize;
            let mut x: Vec<f32> = (0..dims).map(|d| c[k * dims + d] + 0.5 * gauss()).collect();
            if normalize {
                let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
                x.iter_mut().for_each(|v| *v /= norm);
            }
            out.extend(x);
        }
        out
    }

    fn exact(data: &[f32], dims: usize, q: &[f32], k: usize, metric: Metric) -> Vec<u32> {
        let mut d: Vec<(f32, u32)> = data
            .chunks(dims)
            .enumerate()
            .map(|(i, x)| (order_distance(metric, q, x), i as u32))
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0));
        d.into_iter().take(k).map(|x| x.1).collect()
    }

    fn build(data: &[f32], dims: usize, metric: Metric) -> MemGraph {
        build_q(data, dims, metric, false)
    }

    fn build_q(data: &[f32], dims: usize, metric: Metric, quantized: bool) -> MemGraph {
        let p = HnswParams {
            m: 16,
            ef_construction: 64,
            metric,
            seed: 42,
            quantized,
        };
        MemGraph::build(
            data.to_vec(),
            dims,
            &p,
            &AtomicBool::new(false),
            &AtomicUsize::new(0),
        )
        .unwrap()
    }

    fn recall_at_10(metric: Metric, normalize: bool) -> f64 {
        recall_at_10_with(metric, normalize, 24, false)
    }

    fn recall_at_10_with(metric: Metric, normalize: bool, dims: usize, quantized: bool) -> f64 {
        // Queries come from the same mixture as the data (held out), as in real workloads.
        let all = mixture(3100, dims, 30, 1, normalize);
        let (data, queries) = all.split_at(3000 * dims);
        let g = build_q(data, dims, metric, quantized);
        let mut hits = 0;
        for q in queries.chunks(dims) {
            let truth: HashSet<u32> = exact(data, dims, q, 10, metric).into_iter().collect();
            hits += search(&g, q, 10, 64)
                .iter()
                .filter(|s| truth.contains(&s.id))
                .count();
        }
        hits as f64 / 1000.0
    }

    #[test]
    fn recall_l2() {
        let r = recall_at_10(Metric::L2, false);
        assert!(r >= 0.97, "{r}");
    }

    #[test]
    fn recall_inner_product_unit_vectors() {
        let r = recall_at_10(Metric::InnerProduct, true);
        assert!(r >= 0.97, "{r}");
    }

    #[test]
    fn recall_cosine() {
        let r = recall_at_10(Metric::Cosine, true);
        assert!(r >= 0.97, "{r}");
    }

    #[test]
    fn recall_l1() {
        let r = recall_at_10(Metric::L1, false);
        assert!(r >= 0.95, "{r}");
    }

    /// Building on 8-bit codes must not cost recall: the graph it gives is searched with exact
    /// distances and should be as good as the exact build's.
    #[test]
    fn quantized_build_matches_exact_build() {
        for (metric, normalize) in [
            (Metric::L2, false),
            (Metric::InnerProduct, true),
            (Metric::Cosine, true),
            (Metric::L1, false),
        ] {
            let exact = recall_at_10_with(metric, normalize, 96, false);
            let quantized = recall_at_10_with(metric, normalize, 96, true);
            assert!(
                quantized >= exact - 0.02 && quantized >= 0.9,
                "{metric:?}: quantized {quantized} exact {exact}"
            );
        }
    }

    #[test]
    fn inner_product_keeps_pruned_edges_only_for_vectors_of_varying_length() {
        let unit = mixture(200, 16, 4, 9, true);
        let raw = mixture(200, 16, 4, 9, false);
        assert!(!keep_pruned_for(Metric::InnerProduct, &unit, 16));
        assert!(keep_pruned_for(Metric::InnerProduct, &raw, 16));
        assert!(!keep_pruned_for(Metric::L2, &raw, 16));
        assert!(!keep_pruned_for(Metric::Cosine, &unit, 16));
    }

    /// The page layout order visits every node once, starts at the entry point, and keeps
    /// neighbours close: on clustered rows stored in random order, far more layer-0 edges
    /// join nodes a page apart than in id order.
    #[test]
    fn locality_order_is_a_permutation_that_keeps_neighbours_close() {
        let dims = 8;
        let data = mixture(4000, dims, 40, 9, false);
        let g = build(&data, dims, Metric::L2);
        let order = g.locality_order();
        assert_eq!(order[0], g.entry().unwrap());
        let mut seen = order.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..g.len() as u32).collect::<Vec<_>>());
        let near = |position: &dyn Fn(u32) -> usize| {
            let mut close = 0;
            for i in 0..g.len() as u32 {
                for &t in &g.links(i)[0] {
                    close += (position(i).abs_diff(position(t)) <= 20) as usize;
                }
            }
            close
        };
        let mut at = vec![0usize; g.len()];
        for (p, &i) in order.iter().enumerate() {
            at[i as usize] = p;
        }
        let (bfs, by_id) = (near(&|i| at[i as usize]), near(&|i| i as usize));
        assert!(
            bfs > 5 * by_id,
            "edges within 20 positions: bfs {bfs}, id order {by_id}"
        );
    }

    /// A scan's upper-layer descent keeps a beam: its layer-0 entry points start at least
    /// as close as the greedy walk's local minimum, and on clustered data strictly closer
    /// for some queries (the greedy walk stopped in the wrong cluster).
    #[test]
    fn the_scan_descent_starts_no_farther_than_the_greedy_walk() {
        use super::search::{descend, descend_for_scan};
        let dims = 32;
        let all = mixture(20_400, dims, 400, 21, true);
        let (data, queries) = all.split_at(20_000 * dims);
        let g = build(data, dims, Metric::InnerProduct);
        let entry = g.entry().unwrap();
        let top = g.level(entry) as usize;
        assert!(top >= 2, "too few layers to test a descent: {top}");
        let (mut closer, mut buf) = (0, Vec::new());
        let mut visited = HashSet::new();
        for q in queries.chunks(dims) {
            let mut view = g.view(q);
            let start = Scored {
                dist: view.distance(entry).unwrap(),
                id: entry,
            };
            let beam = descend_for_scan(&mut view, start, top, &mut visited, &mut buf);
            let greedy = descend(&mut view, start, top, 0, 1, &mut visited, &mut buf);
            assert!(beam.len() <= SCAN_DESCENT_WIDTH && beam.is_sorted());
            assert!(beam[0].dist <= greedy[0].dist);
            closer += (beam[0].dist < greedy[0].dist) as usize;
        }
        assert!(closer > 0, "the beam never did better than the greedy walk");
    }

    #[test]
    fn neighbour_lists_respect_capacity_and_have_no_self_loops() {
        let dims = 8;
        let data = mixture(2000, dims, 10, 3, false);
        let g = build(&data, dims, Metric::L2);
        for i in 0..g.len() as u32 {
            for (l, list) in g.links(i).iter().enumerate() {
                assert!(list.len() <= max_neighbours(16, l));
                assert!(!list.contains(&i));
                let uniq: HashSet<_> = list.iter().collect();
                assert_eq!(uniq.len(), list.len());
            }
        }
    }

    #[test]
    fn every_node_is_reachable_from_the_entry_point() {
        for (seed, dims) in [(11u64, 8usize), (12, 32), (13, 4)] {
            let data = mixture(4000, dims, 40, seed, false);
            let g = build(&data, dims, Metric::L2);
            let mut seen = vec![false; g.len()];
            let mut stack = vec![g.entry().unwrap()];
            seen[stack[0] as usize] = true;
            while let Some(x) = stack.pop() {
                for &t in &g.links(x)[0] {
                    if !seen[t as usize] {
                        seen[t as usize] = true;
                        stack.push(t);
                    }
                }
            }
            assert!(
                seen.iter().all(|&s| s),
                "unreachable nodes with seed {seed}"
            );
        }
    }

    #[test]
    fn duplicates_do_not_break_the_graph() {
        // 500 copies of one vector plus 500 distinct ones. Grouped, the copies are one node, and
        // every distinct vector is found as its own nearest neighbour.
        let dims = 4;
        let mut rows: Vec<f32> = std::iter::repeat_n([1.0f32, 1.0, 1.0, 1.0], 500)
            .flatten()
            .collect();
        rows.extend(mixture(500, dims, 5, 4, false));
        let groups = super::dedup::group_identical(&rows, dims);
        assert_eq!(groups.len(), 501);
        assert_eq!(groups[0].len(), 500);
        let unique: Vec<f32> = groups
            .iter()
            .flat_map(|g| rows[g[0] as usize * dims..(g[0] as usize + 1) * dims].to_vec())
            .collect();
        let g = build(&unique, dims, Metric::L2);
        for i in 0..g.len() as u32 {
            let r = search(&g, g.vector(i), 1, 40);
            assert_eq!(r[0].dist, 0.0, "node {i} not found");
        }
    }

    #[test]
    fn cancel_stops_the_build() {
        let data = mixture(5000, 8, 10, 5, false);
        let p = HnswParams {
            m: 8,
            ef_construction: 32,
            metric: Metric::L2,
            seed: 1,
            quantized: false,
        };
        let r = MemGraph::build(data, 8, &p, &AtomicBool::new(true), &AtomicUsize::new(0));
        assert_eq!(r.err(), Some(super::build::Cancelled));
    }

    /// A layer-0 resumable search for `q` from the entry point, with its view and visited set.
    fn resumable<'a>(
        g: &'a MemGraph,
        q: &'a [f32],
        ef: usize,
        mode: Continuation,
    ) -> (
        super::build::MemView<'a>,
        HashSet<u32>,
        ResumableSearch<u32>,
    ) {
        let entry = g.entry().unwrap();
        let mut visited = HashSet::new();
        let start = Scored {
            dist: order_distance(g.metric, q, g.vector(entry)),
            id: entry,
        };
        let s = ResumableSearch::new(&[start], ef, mode, &mut visited);
        (g.view(q), visited, s)
    }

    fn resumable_all(g: &MemGraph, q: &[f32], ef: usize, mode: Continuation) -> Vec<Scored<u32>> {
        let (mut view, mut visited, mut s) = resumable(g, q, ef, mode);
        std::iter::from_fn(|| s.next(&mut view, &mut visited, u64::MAX)).collect()
    }

    /// 1,500 clustered 8-dimension points under L2 and a query from the same clusters.
    fn clustered_graph_and_query() -> (MemGraph, Vec<f32>) {
        let dims = 8;
        let data = mixture(1500, dims, 10, 6, false);
        (
            build(&data, dims, Metric::L2),
            mixture(1, dims, 10, 7, false),
        )
    }

    /// The first batch is a search at `ef`; later batches are at least
    /// `MIN_CONTINUATION_BATCH` wide, so a tiny ef under a large LIMIT does not pay a batch's
    /// fixed cost per row.
    #[test]
    fn continuation_batches_have_a_floor() {
        use super::search::MIN_CONTINUATION_BATCH;
        let (g, q) = clustered_graph_and_query();
        let q = &q[..];
        assert_eq!(resumable_all(&g, q, 1, Continuation::Off).len(), 1);
        let (mut view, mut visited, mut s) = resumable(&g, q, 1, Continuation::Relaxed);
        s.next(&mut view, &mut visited, u64::MAX).unwrap();
        assert_eq!(s.left_in_batch(), 0, "the first batch holds ef = 1 node");
        s.next(&mut view, &mut visited, u64::MAX).unwrap();
        assert_eq!(s.left_in_batch(), MIN_CONTINUATION_BATCH - 1);
        let rest = std::iter::from_fn(|| s.next(&mut view, &mut visited, u64::MAX)).count();
        assert_eq!(
            rest + 2,
            g.len(),
            "the scan must still reach every node once"
        );
    }

    #[test]
    fn resumable_search_returns_every_node_once() {
        let (g, q) = clustered_graph_and_query();
        let q = &q[..];
        let all = resumable_all(&g, q, 40, Continuation::Relaxed);
        let ids: HashSet<u32> = all.iter().map(|s| s.id).collect();
        assert_eq!(ids.len(), all.len(), "a node was returned twice");
        assert_eq!(ids.len(), g.len(), "the scan must reach every node");
        // Off: exactly one batch, identical to the plain beam search.
        let off = resumable_all(&g, q, 40, Continuation::Off);
        assert_eq!(off.len(), 40);
        let plain = search(&g, q, 40, 40);
        assert_eq!(
            off.iter().map(|s| s.id).collect::<Vec<_>>(),
            plain.iter().map(|s| s.id).collect::<Vec<_>>()
        );
        // Strict: never out of order.
        let strict = resumable_all(&g, q, 40, Continuation::Strict);
        assert!(strict.windows(2).all(|w| w[0].dist <= w[1].dist));
        assert!(strict.len() > 40);
    }

    #[test]
    fn resumable_search_stops_at_budget() {
        let dims = 8;
        let data = mixture(1500, dims, 10, 8, false);
        let g = build(&data, dims, Metric::L2);
        let q = g.vector(3).to_vec();
        let (mut view, mut visited, mut s) = resumable(&g, &q, 20, Continuation::Relaxed);
        let mut n = 0;
        while s.next(&mut view, &mut visited, 300).is_some() {
            n += 1;
        }
        assert!(n < 1500 && n >= 20, "{n}");
    }
}
