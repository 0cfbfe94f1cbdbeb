//! Scoring approximate search against exact search: tie-aware Recall@k, NDCG@k and
//! percentiles, as `recall.evaluate` reports them.

use std::collections::HashSet;
use std::hash::Hash;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueryScore {
    pub recall: f64,
    pub ndcg: f64,
}

/// One query. `returned` and `exact` are (row id, distance) in the order the searches gave
/// them; `exact` is the true top-k. A returned row is relevant when it is one of the exact
/// rows or ties with the k-th exact distance (ann-benchmarks' convention); a row returned
/// twice counts once. None when the exact search found no row (nothing to recall).
pub fn score<T: Eq + Hash>(
    returned: &[(T, f64)],
    exact: &[(T, f64)],
    k: usize,
) -> Option<QueryScore> {
    let n = exact.len().min(k);
    if n == 0 {
        return None;
    }
    let kth = exact[n - 1].1;
    let tolerance = 1e-6 * kth.abs().max(1e-12);
    let truth: HashSet<&T> = exact[..n].iter().map(|(id, _)| id).collect();
    let mut seen = HashSet::new();
    let (mut hits, mut dcg) = (0usize, 0.0f64);
    for (rank, (id, d)) in returned.iter().take(k).enumerate() {
        if !seen.insert(id) {
            continue;
        }
        if truth.contains(id) || *d <= kth + tolerance {
            hits += 1;
            dcg += 1.0 / ((rank + 2) as f64).log2();
        }
    }
    let ideal: f64 = (0..n).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
    Some(QueryScore {
        recall: (hits.min(n)) as f64 / n as f64,
        ndcg: (dcg / ideal).min(1.0),
    })
}

/// The p-th percentile (0..=100) with linear interpolation between order statistics, as
/// numpy's default; NaN for no values.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = (p / 100.0).clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_partial_and_tied_results() {
        let exact = [(1, 0.1), (2, 0.2), (3, 0.3)];
        assert_eq!(
            score(&exact, &exact, 3),
            Some(QueryScore {
                recall: 1.0,
                ndcg: 1.0
            })
        );
        let half = score(&[(1, 0.1), (9, 0.9), (2, 0.2)], &exact, 3).unwrap();
        assert!((half.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!(half.ndcg < 1.0 && half.ndcg > 0.5);
        // Another row at exactly the k-th distance is as good as the one exact search kept.
        assert_eq!(
            score(&[(1, 0.1), (2, 0.2), (7, 0.3)], &exact, 3)
                .unwrap()
                .recall,
            1.0
        );
        // Duplicates count once; fewer rows than k lower recall.
        assert!(
            (score(&[(1, 0.1), (1, 0.1), (1, 0.1)], &exact, 3)
                .unwrap()
                .recall
                - 1.0 / 3.0)
                .abs()
                < 1e-12
        );
        assert!((score(&[(1, 0.1)], &exact, 3).unwrap().recall - 1.0 / 3.0).abs() < 1e-12);
        // A filter leaving fewer than k rows: recall is over what exists.
        assert_eq!(score(&[(1, 0.1)], &[(1, 0.1)], 10).unwrap().recall, 1.0);
        assert_eq!(score::<i32>(&[], &[], 10), None);
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 4.0);
        assert!((percentile(&v, 5.0) - 1.15).abs() < 1e-12);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
