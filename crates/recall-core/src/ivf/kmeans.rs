//! k-means for IVF lists: k-means++ seeding, then Lloyd iterations with Hamerly's bounds so
//! that after the first iterations most points skip the distance computations entirely.
//!
//! Spherical mode (inner product and cosine indexes) clusters directions: points are
//! normalised first and centroids are renormalised after every update, so the Euclidean
//! bounds still hold and the nearest centroid is the one with the largest inner product.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;

use crate::hnsw::build::Cancelled;
use crate::nearest::{nearest_two, nearest_two_rows, squared_norms};
use crate::rng::SplitMix64;

#[derive(Clone, Debug)]
pub struct KMeansParams {
    pub k: usize,
    pub max_iterations: usize,
    pub spherical: bool,
    pub seed: u64,
}

/// The centroids, `count × dims` values. `count` can be below `k` when the points have fewer
/// than `k` distinct values.
#[derive(Clone, Debug)]
pub struct Centroids {
    pub dims: usize,
    pub data: Vec<f32>,
    /// Lloyd iterations run.
    pub iterations: usize,
}

impl Centroids {
    pub fn count(&self) -> usize {
        if self.dims == 0 {
            0
        } else {
            self.data.len() / self.dims
        }
    }

    pub fn get(&self, j: usize) -> &[f32] {
        &self.data[j * self.dims..(j + 1) * self.dims]
    }
}

/// Scales `v` to unit length; false (and `v` untouched) for a zero vector.
pub fn normalize(v: &mut [f32]) -> bool {
    let norm = crate::distance::dot(v, v).sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    true
}

/// Clusters `points` (`n × dims`). `cancel` is polled between steps; `progress` counts
/// finished iterations (seeding counts as one).
pub fn kmeans(
    points: &[f32],
    dims: usize,
    params: &KMeansParams,
    cancel: &AtomicBool,
    progress: &AtomicUsize,
) -> Result<Centroids, Cancelled> {
    let owned;
    let points = if params.spherical {
        let mut v: Vec<f32> = Vec::with_capacity(points.len());
        for p in points.chunks_exact(dims) {
            let mut p = p.to_vec();
            if normalize(&mut p) {
                v.extend_from_slice(&p);
            }
        }
        owned = v;
        &owned[..]
    } else {
        points
    };
    let n = if dims == 0 { 0 } else { points.len() / dims };
    let mut rng = SplitMix64::new(params.seed);
    let mut centroids = seed_plus_plus(points, dims, params.k.max(1), &mut rng, cancel)?;
    progress.fetch_add(1, Ordering::Relaxed);
    let k = centroids.len() / dims.max(1);
    if n == 0 || k == 0 {
        return Ok(Centroids {
            dims,
            data: centroids,
            iterations: 0,
        });
    }
    if params.spherical {
        centroids.chunks_exact_mut(dims).for_each(|c| {
            normalize(c);
        });
    }

    // Hamerly's state: assignment, upper bound on the distance to it, lower bound on the
    // distance to every other centroid (plain Euclidean, not squared).
    let near = nearest_two(points, &centroids, &squared_norms(&centroids, dims), dims);
    let mut assign: Vec<u32> = near.iter().map(|e| e.first).collect();
    let mut upper: Vec<f32> = near.iter().map(|e| e.d1.sqrt()).collect();
    let mut lower: Vec<f32> = near.iter().map(|e| e.d2.sqrt()).collect();
    let mut iterations = 0;
    while iterations < params.max_iterations {
        if cancel.load(Ordering::Relaxed) {
            return Err(Cancelled);
        }
        iterations += 1;
        let old = centroids.clone();
        update_centroids(
            points,
            dims,
            &assign,
            &upper,
            &mut centroids,
            params.spherical,
        );
        let moved: Vec<f32> = old
            .chunks_exact(dims)
            .zip(centroids.chunks_exact(dims))
            .map(|(a, b)| crate::distance::l2_squared(a, b).sqrt())
            .collect();
        let max_moved = moved.iter().copied().fold(0.0f32, f32::max);
        if max_moved == 0.0 {
            break;
        }
        // Half the distance from each centroid to its nearest other centroid: a point closer
        // than that to its own centroid cannot belong to another.
        let c_norms = squared_norms(&centroids, dims);
        let half_gap: Vec<f32> = nearest_two(&centroids, &centroids, &c_norms, dims)
            .iter()
            .map(|e| 0.5 * e.d2.sqrt())
            .collect();
        // Bounds first; the points whose bounds fail even after tightening are gathered and
        // reassigned together by the blocked kernel.
        let full: Vec<u32> = assign
            .par_chunks(256)
            .zip(upper.par_chunks_mut(256))
            .zip(lower.par_chunks_mut(256))
            .enumerate()
            .flat_map_iter(|(b, ((a, u), l))| {
                let mut out = Vec::new();
                for t in 0..a.len() {
                    let i = b * 256 + t;
                    let j = a[t] as usize;
                    u[t] += moved[j];
                    l[t] -= max_moved;
                    let bound = l[t].max(half_gap[j]);
                    if u[t] <= bound {
                        continue;
                    }
                    u[t] = crate::distance::l2_squared(
                        &points[i * dims..(i + 1) * dims],
                        &centroids[j * dims..(j + 1) * dims],
                    )
                    .sqrt();
                    if u[t] > bound {
                        out.push(i as u32);
                    }
                }
                out
            })
            .collect();
        let near = nearest_two_rows(points, &full, &centroids, &c_norms, dims);
        let mut changed = 0;
        for (&i, e) in full.iter().zip(near) {
            let i = i as usize;
            changed += usize::from(assign[i] != e.first);
            assign[i] = e.first;
            upper[i] = e.d1.sqrt();
            lower[i] = e.d2.sqrt();
        }
        progress.fetch_add(1, Ordering::Relaxed);
        // Converged enough for a partition: moving 0.1% of points changes no list materially.
        if changed * 1000 <= n {
            break;
        }
    }
    Ok(Centroids {
        dims,
        data: centroids,
        iterations,
    })
}

/// k-means++ seeding (D² sampling) on a subsample of a few points per centroid: the seeds are
/// as good, and the cost no longer grows as k² × n. Stops early when every remaining point
/// coincides with a seed.
fn seed_plus_plus(
    points: &[f32],
    dims: usize,
    k: usize,
    rng: &mut SplitMix64,
    cancel: &AtomicBool,
) -> Result<Vec<f32>, Cancelled> {
    let n = if dims == 0 { 0 } else { points.len() / dims };
    if n == 0 {
        return Ok(Vec::new());
    }
    let m = n.min(4 * k.max(256));
    let mut idx: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut idx);
    idx.truncate(m);
    let sub: Vec<f32> = idx
        .iter()
        .flat_map(|&i| points[i * dims..(i + 1) * dims].iter().copied())
        .collect();
    let row = |i: usize| &sub[i * dims..(i + 1) * dims];
    let mut centres: Vec<f32> = Vec::with_capacity(k * dims);
    let first = rng.below(m as u64) as usize;
    centres.extend_from_slice(row(first));
    let mut d2: Vec<f32> = (0..m)
        .into_par_iter()
        .map(|i| crate::distance::l2_squared(row(i), row(first)))
        .collect();
    while centres.len() / dims < k {
        if cancel.load(Ordering::Relaxed) {
            return Err(Cancelled);
        }
        let total: f64 = d2.iter().map(|&d| d as f64).sum();
        if total <= 0.0 {
            break;
        }
        let mut target = rng.next_f64_open0() * total;
        let mut pick = m - 1;
        for (i, &d) in d2.iter().enumerate() {
            target -= d as f64;
            if target <= 0.0 && d > 0.0 {
                pick = i;
                break;
            }
        }
        let c = row(pick).to_vec();
        d2.par_iter_mut().enumerate().for_each(|(i, d)| {
            let e = crate::distance::l2_squared(row(i), &c);
            if e < *d {
                *d = e;
            }
        });
        centres.extend_from_slice(&c);
    }
    Ok(centres)
}

/// New centroids as the means of their points. A centroid left without points takes over the
/// point farthest from its own centroid, which splits the loosest cluster.
fn update_centroids(
    points: &[f32],
    dims: usize,
    assign: &[u32],
    upper: &[f32],
    centroids: &mut [f32],
    spherical: bool,
) {
    let k = centroids.len() / dims;
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); k];
    for (i, &a) in assign.iter().enumerate() {
        members[a as usize].push(i as u32);
    }
    centroids
        .par_chunks_mut(dims)
        .zip(members.par_iter())
        .for_each(|(c, m)| {
            if m.is_empty() {
                return;
            }
            let mut sum = vec![0f64; dims];
            for &i in m {
                for (s, &x) in sum
                    .iter_mut()
                    .zip(&points[i as usize * dims..(i as usize + 1) * dims])
                {
                    *s += x as f64;
                }
            }
            for (c, s) in c.iter_mut().zip(&sum) {
                *c = (*s / m.len() as f64) as f32;
            }
            if spherical {
                normalize(c);
            }
        });
    let mut far: Vec<usize> = (0..assign.len()).collect();
    far.sort_by(|&a, &b| upper[b].total_cmp(&upper[a]));
    let mut far = far
        .into_iter()
        .filter(|&i| members[assign[i] as usize].len() > 1);
    for (j, m) in members.iter().enumerate() {
        if m.is_empty() {
            if let Some(i) = far.next() {
                centroids[j * dims..(j + 1) * dims]
                    .copy_from_slice(&points[i * dims..(i + 1) * dims]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(
        centres: usize,
        per: usize,
        dims: usize,
        spread: f32,
        seed: u64,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut rng = SplitMix64::new(seed);
        let c: Vec<f32> = (0..centres * dims)
            .map(|_| rng.next_f64_open0() as f32 * 20.0 - 10.0)
            .collect();
        let mut pts = Vec::new();
        for i in 0..centres * per {
            let k = i % centres;
            pts.extend(
                (0..dims).map(|d| c[k * dims + d] + spread * (rng.next_f64_open0() as f32 - 0.5)),
            );
        }
        (c, pts)
    }

    fn run(points: &[f32], dims: usize, k: usize, spherical: bool) -> Centroids {
        let p = KMeansParams {
            k,
            max_iterations: 25,
            spherical,
            seed: 1,
        };
        kmeans(
            points,
            dims,
            &p,
            &AtomicBool::new(false),
            &AtomicUsize::new(0),
        )
        .unwrap()
    }

    #[test]
    fn finds_well_separated_blobs() {
        let (truth, pts) = blobs(8, 200, 16, 1.0, 11);
        let c = run(&pts, 16, 8, false);
        assert_eq!(c.count(), 8);
        // Every true centre has a centroid within the blob's radius.
        for t in truth.chunks(16) {
            let best = (0..8)
                .map(|j| crate::distance::l2_squared(t, c.get(j)))
                .fold(f32::INFINITY, f32::min);
            assert!(best < 0.5, "a blob was missed: {best}");
        }
    }

    #[test]
    fn fewer_distinct_points_than_k() {
        let pts: Vec<f32> = [[1.0, 2.0], [1.0, 2.0], [3.0, 4.0], [3.0, 4.0], [5.0, 0.0]].concat();
        let c = run(&pts, 2, 10, false);
        assert_eq!(c.count(), 3);
    }

    #[test]
    fn spherical_centroids_are_unit_length() {
        let (_, pts) = blobs(5, 100, 8, 2.0, 3);
        let c = run(&pts, 8, 5, true);
        for j in 0..c.count() {
            let n = crate::distance::dot(c.get(j), c.get(j));
            assert!((n - 1.0).abs() < 1e-4);
        }
    }

    #[test]
    fn hamerly_gives_the_lloyd_fixed_point() {
        // At convergence every point is assigned to its nearest centroid and every centroid
        // is the mean of its points.
        let (_, pts) = blobs(6, 150, 12, 8.0, 5);
        let p = KMeansParams {
            k: 6,
            max_iterations: 100,
            spherical: false,
            seed: 2,
        };
        let c = kmeans(&pts, 12, &p, &AtomicBool::new(false), &AtomicUsize::new(0)).unwrap();
        let near = nearest_two(&pts, &c.data, &squared_norms(&c.data, 12), 12);
        let mut sums = vec![0f64; 6 * 12];
        let mut counts = [0usize; 6];
        for (i, e) in near.iter().enumerate() {
            counts[e.first as usize] += 1;
            for d in 0..12 {
                sums[e.first as usize * 12 + d] += pts[i * 12 + d] as f64;
            }
        }
        let mut worst = 0f64;
        for j in 0..6 {
            for d in 0..12 {
                worst = worst.max((sums[j * 12 + d] / counts[j] as f64 - c.get(j)[d] as f64).abs());
            }
        }
        assert!(
            worst < 0.05,
            "centroids are not the means of their points: {worst}"
        );
    }

    #[test]
    fn cancel_stops() {
        let (_, pts) = blobs(4, 50, 4, 1.0, 1);
        let p = KMeansParams {
            k: 4,
            max_iterations: 10,
            spherical: false,
            seed: 1,
        };
        assert!(kmeans(&pts, 4, &p, &AtomicBool::new(true), &AtomicUsize::new(0)).is_err());
    }
}
