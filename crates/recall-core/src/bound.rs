//! Lower bounds of the SQL distance operators from a row's 8-bit codes.
//!
//! ivfflat lists and quantised hnsw elements store codes, not vectors. A scan ranks rows by a
//! value no larger than the operator's exact result, reads the exact value from the heap row
//! and hands a row out once its exact value is no larger than every bound still waiting, so
//! the output is in exact order — which only holds if a bound is never above the exact value,
//! hence the margins below. With `e = ‖x − x̂‖` the row's quantisation error and `x̂` its
//! decoded vector:
//!
//! - L2: ‖q − x‖ ≥ ‖q − x̂‖ − e (triangle inequality);
//! - inner product: −q·x ≥ −q·x̂ − ‖q‖·e (Cauchy–Schwarz on q·(x − x̂));
//! - cosine, both sides unit length as the index stores them: 1 − q·x ≥ 1 − q·x̂ − e.
//!
//! The margins cover the rounding of both this computation and the operator's own (`f32`
//! sums, relative error far below 1e-5 at any supported dimension count).

use crate::distance::{dot, Metric};
use crate::sq8::Sq8;
use crate::sq8_scan::{decoded_dot, decoded_l2_squared};

const RELATIVE_MARGIN: f64 = 1e-5;

/// A prepared query (normalised for cosine, as the index's rows are) against the rows of one
/// quantiser.
pub struct QueryBound<'a> {
    metric: Metric,
    query: &'a [f32],
    sq: Sq8,
    norm: f64,
}

impl<'a> QueryBound<'a> {
    pub fn new(metric: Metric, query: &'a [f32], sq: Sq8) -> Self {
        Self::with_norm(metric, query, sq, (dot(query, query) as f64).sqrt())
    }

    /// [`QueryBound::new`] with the query's norm (‖query‖) computed once by the caller: a
    /// walk prepares a bound for every element it evaluates.
    pub fn with_norm(metric: Metric, query: &'a [f32], sq: Sq8, norm: f64) -> Self {
        QueryBound {
            metric,
            query,
            sq,
            norm,
        }
    }

    /// A value ≤ the operator's result for the row stored as `codes` with quantisation error
    /// `err`.
    pub fn lower_bound(&self, codes: &[i8], err: f32) -> f64 {
        self.estimate_and_bound(codes, err).1
    }

    /// [`Self::estimate`] and [`Self::lower_bound`] from one pass over the codes: a walk
    /// that records each element's bound as it evaluates it never reads the element again
    /// to rank its row.
    pub fn estimate_and_bound(&self, codes: &[i8], err: f32) -> (f32, f64) {
        let e = err as f64;
        match self.metric {
            Metric::L2 => {
                let l2 = decoded_l2_squared(&self.sq, self.query, codes);
                let d = (l2 as f64).sqrt();
                (l2, ((d - e) - RELATIVE_MARGIN * (d + e)).max(0.0))
            }
            Metric::InnerProduct => {
                let (p, n2) = decoded_dot(&self.sq, self.query, codes);
                let slack = self.norm * e;
                let scale = self.norm * (n2 as f64).sqrt() + slack;
                (-p, -(p as f64) - slack - RELATIVE_MARGIN * scale)
            }
            Metric::Cosine => {
                let (p, _) = decoded_dot(&self.sq, self.query, codes);
                (
                    1.0 - p,
                    (1.0 - p as f64 - e - RELATIVE_MARGIN * (1.0 + e)).max(0.0),
                )
            }
            // No index stores L1 rows as codes; a bound of zero would still be correct.
            Metric::L1 => (self.estimate(codes), 0.0),
        }
    }

    /// The index's order distance (`distance::order_distance`) from the query to the decoded
    /// row: what a graph walk over codes navigates by.
    pub fn estimate(&self, codes: &[i8]) -> f32 {
        estimate(self.metric, &self.sq, self.query, codes)
    }
}

/// [`QueryBound::estimate`] without preparing a bound (a walk that never needs one).
pub fn estimate(metric: Metric, sq: &Sq8, query: &[f32], codes: &[i8]) -> f32 {
    match metric {
        Metric::L2 => decoded_l2_squared(sq, query, codes),
        Metric::InnerProduct => -decoded_dot(sq, query, codes).0,
        Metric::Cosine => 1.0 - decoded_dot(sq, query, codes).0,
        Metric::L1 => {
            let mut x = vec![0.0; codes.len()];
            sq.decode_into(codes, &mut x);
            crate::distance::l1(query, &x)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::operator_value as exact;
    use crate::rng::SplitMix64;
    use crate::sq8::Sq8;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = (dot(v, v) as f64).sqrt() as f32;
        v.iter().map(|x| x / n).collect()
    }

    /// Never above the exact operator value (computed as the SQL operator computes it, on
    /// the raw vectors), for every metric, dimension count and data scale, including rows
    /// far outside the quantiser's range; and tight for in-range rows.
    #[test]
    fn bounds_never_exceed_the_operator_and_are_tight() {
        let mut rng = SplitMix64::new(11);
        let mut r = || rng.next_f64_open0() as f32 * 2.0 - 1.0;
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            for dims in [1usize, 3, 16, 100, 784, 2000] {
                for scale in [1e-3f32, 1.0, 255.0] {
                    let prep = |v: Vec<f32>| {
                        if metric == Metric::Cosine {
                            unit(&v)
                        } else {
                            v
                        }
                    };
                    let rows: Vec<Vec<f32>> = (0..40)
                        .map(|_| (0..dims).map(|_| r() * scale).collect())
                        .collect();
                    let flat: Vec<f32> = rows.iter().flat_map(|v| prep(v.clone())).collect();
                    let sq = Sq8::fit(&flat);
                    let raw_q: Vec<f32> = (0..dims).map(|_| r() * scale).collect();
                    let q = prep(raw_q.clone());
                    let qb = QueryBound::new(metric, &q, sq);
                    let mut codes = vec![0i8; dims];
                    let mut worst_gap = 0.0f64;
                    for (i, raw) in rows.iter().enumerate() {
                        // Every fifth row is an outlier the quantiser clamps.
                        let raw: Vec<f32> = if i % 5 == 4 {
                            raw.iter().map(|x| x * 7.0).collect()
                        } else {
                            raw.clone()
                        };
                        let x = prep(raw.clone());
                        let err = sq.encode_row(&x, &mut codes);
                        let b = qb.lower_bound(&codes, err);
                        let ex = exact(metric, &raw_q, &raw);
                        assert!(
                            b <= ex,
                            "{metric:?} dims={dims} scale={scale} row {i}: bound {b} > exact {ex}"
                        );
                        if i % 5 != 4 {
                            let spread = match metric {
                                Metric::L2 => ex.abs().max(1e-30),
                                _ => (qb.norm * (dot(&x, &x) as f64).sqrt()).max(1e-30),
                            };
                            worst_gap = worst_gap.max((ex - b) / spread);
                        }
                    }
                    // In range, 127 levels per side: the bound is within a few percent.
                    if dims >= 16 {
                        assert!(worst_gap < 0.1, "{metric:?} dims={dims}: gap {worst_gap}");
                    }
                }
            }
        }
    }

    /// A graph walk over codes navigates by the order distance to the decoded row.
    #[test]
    fn estimate_is_the_order_distance_to_the_decoded_row() {
        let mut rng = SplitMix64::new(5);
        let mut r = || rng.next_f64_open0() as f32 * 2.0 - 1.0;
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine, Metric::L1] {
            for dims in [3usize, 64, 785] {
                let x: Vec<f32> = (0..dims).map(|_| r()).collect();
                let q: Vec<f32> = (0..dims).map(|_| r()).collect();
                let sq = Sq8::fit(&x);
                let mut codes = vec![0i8; dims];
                let err = sq.encode_row(&x, &mut codes);
                let mut d = vec![0f32; dims];
                sq.decode_into(&codes, &mut d);
                let want = crate::distance::order_distance(metric, &q, &d);
                let qb = QueryBound::new(metric, &q, sq);
                let got = qb.estimate(&codes);
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{metric:?} {dims}: {got} vs {want}"
                );
                // The one-pass form a walk uses navigates by exactly the same value.
                let (e, _) = qb.estimate_and_bound(&codes, err);
                assert_eq!(e.to_bits(), got.to_bits(), "{metric:?} {dims}");
            }
        }
    }

    #[test]
    fn encode_error_is_the_decoded_distance() {
        let sq = Sq8::new(0.5, 0.01);
        let x = [0.5f32, 0.513, 0.4, 9.0, -3.0];
        let mut c = [0i8; 5];
        let err = sq.encode_row(&x, &mut c);
        let mut d = [0f32; 5];
        sq.decode_into(&c, &mut d);
        let real: f64 = x
            .iter()
            .zip(&d)
            .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(err as f64 >= real && (err as f64) < real * 1.0001 + 1e-30);
        assert_eq!(c[3], 127);
        assert_eq!(c[4], -127);
    }
}
