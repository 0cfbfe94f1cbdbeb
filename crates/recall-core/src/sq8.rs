//! 8-bit scalar quantisation: the distances of graph construction, and the codes ivfflat
//! lists store (scans bound the exact distance from them and the executor rechecks).
//!
//! Building a graph is tens of millions of distance evaluations over vectors that do not fit
//! in cache (fashion-mnist: 188 MB of f32), and profiles show it bound by memory traffic. One
//! signed byte per dimension cuts that traffic by four and lets the integer kernels do 16
//! dimensions per instruction. The hnsw build drops its codes once the graph is built (its
//! pages store exact `f32`); ivfflat lists keep only the codes, with each row's error.
//!
//! One scale for all dimensions (not one per dimension), so distances between codes are plain
//! integer sums and keep the metric's geometry: x ≈ centre + step·code, with `code` in
//! [-127, 127]. The range comes from quantiles of the data, not its extremes, so a few
//! outliers cannot flatten everybody else into a handful of levels; values beyond it clamp.

use crate::distance::Metric;

/// The quantiser of one data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sq8 {
    centre: f32,
    step: f32,
}

/// Codes of many vectors, row-major, with what each metric needs besides the codes.
pub struct Codes {
    pub dims: usize,
    pub metric: Metric,
    codes: Vec<i8>,
    /// Per vector: Σ code (inner product and cosine: the cross terms of the centre).
    sums: Vec<i32>,
    /// centre / step, for the inner-product cross terms.
    bias: f32,
    step: f32,
}

const LEVELS: f32 = 127.0;
/// Values sampled to choose the range; plenty for a quantile at 1e-4.
const SAMPLE: usize = 1 << 20;
/// Fraction of values allowed to clamp at each end.
const TAIL: f64 = 1e-4;

impl Sq8 {
    /// Chooses the range from `values` (every vector's coordinates, concatenated).
    pub fn fit(values: &[f32]) -> Sq8 {
        let stride = values.len().div_ceil(SAMPLE).max(1);
        let mut sample: Vec<f32> = values
            .iter()
            .step_by(stride)
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        if sample.is_empty() {
            return Sq8 {
                centre: 0.0,
                step: 1.0,
            };
        }
        sample.sort_by(f32::total_cmp);
        let at = |q: f64| sample[((sample.len() - 1) as f64 * q).round() as usize];
        let (lo, hi) = (at(TAIL), at(1.0 - TAIL));
        let centre = (lo + hi) / 2.0;
        let half = (hi - lo) / 2.0;
        let step = if half > 0.0 && half.is_finite() {
            half / LEVELS
        } else {
            1.0
        };
        Sq8 { centre, step }
    }

    /// A quantiser with a known range (read back from an index's metapage).
    pub fn new(centre: f32, step: f32) -> Sq8 {
        let step = if step > 0.0 && step.is_finite() {
            step
        } else {
            1.0
        };
        let centre = if centre.is_finite() { centre } else { 0.0 };
        Sq8 { centre, step }
    }

    pub fn centre(&self) -> f32 {
        self.centre
    }

    pub fn step(&self) -> f32 {
        self.step
    }

    /// Encodes one vector into `out`; returns an upper bound of ‖x − decode(code(x))‖, the
    /// Euclidean error of this row's codes (clamped outliers included), for distance bounds.
    pub fn encode_row(&self, x: &[f32], out: &mut [i8]) -> f32 {
        // Eight partial sums: one running sum is a chain of dependent additions, and it was
        // most of the time an hnsw build spends writing its elements.
        let mut sums = [0.0f64; 8];
        for (o, v) in out.chunks_mut(8).zip(x.chunks(8)) {
            for ((o, &v), s) in o.iter_mut().zip(v).zip(sums.iter_mut()) {
                *o = self.code(v);
                let d = v as f64 - self.decode(*o) as f64;
                *s += d * d;
            }
        }
        let err: f64 = sums.iter().sum();
        // Rounded up so the bound survives the conversion to f32 (and covers the summation
        // order: f64 rounding is orders of magnitude below the 1e-6 margin).
        (err.sqrt() * (1.0 + 1e-6) + f64::MIN_POSITIVE) as f32
    }

    /// The decoded vector of `codes`, into `out`. The same arithmetic as [`Sq8::decode`], so
    /// an error measured by [`Sq8::encode_row`] holds for what a scan decodes.
    pub fn decode_into(&self, codes: &[i8], out: &mut [f32]) {
        for (o, &c) in out.iter_mut().zip(codes) {
            *o = self.decode(c);
        }
    }

    /// The level nearest `x` (halves away from zero), clamped to ±127. `f32::round` is a
    /// libm call on baseline x86-64 (no SSE4.1), and it was a third of writing an hnsw
    /// index's elements; truncation plus a comparison of the exact fraction rounds the same.
    #[inline]
    pub fn code(&self, x: f32) -> i8 {
        let v = ((x - self.centre) / self.step).clamp(-LEVELS, LEVELS);
        // |v| ≤ 127, so the truncation and the fraction are exact; NaN converts to 0.
        let t = v as i32;
        let frac = v - t as f32;
        (t + (frac >= 0.5) as i32 - (frac <= -0.5) as i32) as i8
    }

    #[inline]
    pub fn decode(&self, c: i8) -> f32 {
        self.centre + self.step * c as f32
    }

    /// Encodes `n × dims` values for `metric`, on rayon's current pool.
    pub fn encode(&self, values: &[f32], dims: usize, metric: Metric) -> Codes {
        use rayon::prelude::*;
        let block = dims.max(1) * 1024;
        let mut codes = vec![0i8; values.len()];
        codes
            .par_chunks_mut(block)
            .zip(values.par_chunks(block))
            .for_each(|(c, v)| c.iter_mut().zip(v).for_each(|(o, &x)| *o = self.code(x)));
        let sums = if dims == 0 {
            Vec::new()
        } else {
            codes
                .par_chunks(dims)
                .map(|c| c.iter().map(|&x| x as i32).sum())
                .collect()
        };
        Codes {
            dims,
            metric,
            codes,
            sums,
            bias: self.centre / self.step,
            step: self.step,
        }
    }
}

impl Codes {
    pub fn len(&self) -> usize {
        self.sums.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sums.is_empty()
    }

    #[inline]
    pub fn code(&self, i: u32) -> &[i8] {
        &self.codes[i as usize * self.dims..(i as usize + 1) * self.dims]
    }

    /// [`crate::distance::order_distance`] between the decoded vectors `a` and `b`: integer
    /// sums over the codes, scaled back to the metric's units so they mix with exact ones.
    #[inline]
    pub fn distance(&self, a: u32, b: u32) -> f32 {
        let (x, y) = (self.code(a), self.code(b));
        let k = kernels();
        let s2 = self.step * self.step;
        match self.metric {
            Metric::L2 => s2 * (k.l2)(x, y) as f32,
            Metric::L1 => self.step * (k.l1)(x, y) as f32,
            // x·y = step²·(cx·cy + bias·(Σcx + Σcy) + dims·bias²).
            Metric::InnerProduct | Metric::Cosine => {
                let cross = self.sums[a as usize] as f32 + self.sums[b as usize] as f32;
                let bias = self.bias;
                let dot =
                    s2 * ((k.dot)(x, y) as f32 + bias * cross + self.dims as f32 * bias * bias);
                if self.metric == Metric::Cosine {
                    1.0 - dot
                } else {
                    -dot
                }
            }
        }
    }

    /// Starts loading vector `i`'s codes.
    #[inline]
    pub fn prefetch(&self, i: u32) {
        let c = self.code(i);
        crate::distance::prefetch_bytes(c.as_ptr() as *const u8, c.len());
    }
}

type IntBinary = fn(&[i8], &[i8]) -> i32;

struct IntKernels {
    l2: IntBinary,
    dot: IntBinary,
    l1: IntBinary,
}

fn kernels() -> &'static IntKernels {
    static K: std::sync::OnceLock<IntKernels> = std::sync::OnceLock::new();
    K.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if std::env::var_os("RECALL_FORCE_SCALAR").is_none() && is_x86_feature_detected!("avx2") {
            return x86::AVX2;
        }
        PORTABLE
    })
}

const PORTABLE: IntKernels = IntKernels {
    l2: portable::l2,
    dot: portable::dot,
    l1: portable::l1,
};

mod portable {
    pub fn l2(a: &[i8], b: &[i8]) -> i32 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| {
                let d = x as i32 - y as i32;
                d * d
            })
            .sum()
    }
    pub fn dot(a: &[i8], b: &[i8]) -> i32 {
        a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
    }
    pub fn l1(a: &[i8], b: &[i8]) -> i32 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (x as i32 - y as i32).abs())
            .sum()
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::IntKernels;
    use std::arch::x86_64::*;

    pub const AVX2: IntKernels = IntKernels {
        l2: |a, b| unsafe { l2_avx2(a, b) },
        dot: |a, b| unsafe { dot_avx2(a, b) },
        l1: |a, b| unsafe { l1_avx2(a, b) },
    };

    #[target_feature(enable = "avx2")]
    unsafe fn hsum(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }

    /// Widens 16 codes at a time to i16 and folds `step(x, y)` (eight i32 lanes of pairwise
    /// sums) into two accumulators; the tail goes through `scalar`. Codes are within ±127, so
    /// no i16 product or pairwise sum can overflow, and the i32 lanes hold any vector up to
    /// hundreds of thousands of dimensions.
    macro_rules! int_reduce {
        ($a:ident, $b:ident, |$x:ident, $y:ident| $step:expr, $scalar:path) => {{
            let n = $a.len().min($b.len());
            let (pa, pb) = ($a.as_ptr(), $b.as_ptr());
            let mut acc = [_mm256_setzero_si256(); 2];
            let mut i = 0;
            while i + 32 <= n {
                for k in 0..2 {
                    let $x =
                        _mm256_cvtepi8_epi16(_mm_loadu_si128(pa.add(i + 16 * k) as *const __m128i));
                    let $y =
                        _mm256_cvtepi8_epi16(_mm_loadu_si128(pb.add(i + 16 * k) as *const __m128i));
                    acc[k] = _mm256_add_epi32(acc[k], $step);
                }
                i += 32;
            }
            while i + 16 <= n {
                let $x = _mm256_cvtepi8_epi16(_mm_loadu_si128(pa.add(i) as *const __m128i));
                let $y = _mm256_cvtepi8_epi16(_mm_loadu_si128(pb.add(i) as *const __m128i));
                acc[0] = _mm256_add_epi32(acc[0], $step);
                i += 16;
            }
            hsum(_mm256_add_epi32(acc[0], acc[1])) + $scalar(&$a[i..n], &$b[i..n])
        }};
    }

    #[target_feature(enable = "avx2")]
    unsafe fn dot_avx2(a: &[i8], b: &[i8]) -> i32 {
        int_reduce!(a, b, |x, y| _mm256_madd_epi16(x, y), super::portable::dot)
    }

    #[target_feature(enable = "avx2")]
    unsafe fn l2_avx2(a: &[i8], b: &[i8]) -> i32 {
        int_reduce!(
            a,
            b,
            |x, y| {
                let d = _mm256_sub_epi16(x, y);
                _mm256_madd_epi16(d, d)
            },
            super::portable::l2
        )
    }

    #[target_feature(enable = "avx2")]
    unsafe fn l1_avx2(a: &[i8], b: &[i8]) -> i32 {
        int_reduce!(
            a,
            b,
            |x, y| _mm256_madd_epi16(
                _mm256_abs_epi16(_mm256_sub_epi16(x, y)),
                _mm256_set1_epi16(1)
            ),
            super::portable::l1
        )
    }

    #[cfg(test)]
    pub fn available() -> bool {
        is_x86_feature_detected!("avx2")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::distance::order_distance;
    use crate::rng::SplitMix64;

    #[test]
    fn code_rounds_like_f32_round() {
        let reference =
            |sq: &Sq8, x: f32| ((x - sq.centre) / sq.step).round().clamp(-LEVELS, LEVELS) as i8;
        let mut rng = crate::rng::SplitMix64::new(3);
        for sq in [
            Sq8::new(0.0, 1.0),
            Sq8::new(127.5, 1.003937),
            Sq8::new(-0.3, 0.0071),
        ] {
            let mut xs: Vec<f32> = vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0];
            for i in -300..=300 {
                // Exact halves and their neighbours on both sides.
                let h = sq.centre + sq.step * (i as f32 * 0.5);
                xs.extend([
                    h,
                    f32::from_bits(h.to_bits() + 1),
                    f32::from_bits(h.to_bits().wrapping_sub(1)),
                ]);
            }
            xs.extend([
                0.49999997f32,
                -0.49999997,
                126.5,
                -126.5,
                127.49999,
                1e30,
                -1e30,
            ]);
            xs.extend(
                (0..100_000)
                    .map(|_| (rng.next_f64_open0() as f32 - 0.5) * 400.0 * sq.step + sq.centre),
            );
            for x in xs {
                assert_eq!(sq.code(x), reference(&sq, x), "x = {x:e} ({sq:?})");
            }
        }
    }

    fn random_codes(n: usize, seed: u64) -> Vec<i8> {
        let mut r = SplitMix64::new(seed);
        (0..n).map(|_| (r.below(255) as i32 - 127) as i8).collect()
    }

    #[test]
    fn simd_kernels_match_portable_on_all_lengths_and_extremes() {
        #[cfg(target_arch = "x86_64")]
        if x86::available() {
            for len in (0..70).chain([127, 128, 783, 784, 2000, 16000]) {
                let a = random_codes(len, len as u64);
                let b = random_codes(len, len as u64 + 1000);
                let lo = vec![-127i8; len];
                let hi = vec![127i8; len];
                for (x, y) in [(&a, &b), (&lo, &hi), (&hi, &hi), (&lo, &lo)] {
                    assert_eq!((x86::AVX2.l2)(x, y), portable::l2(x, y), "l2 len {len}");
                    assert_eq!((x86::AVX2.dot)(x, y), portable::dot(x, y), "dot len {len}");
                    assert_eq!((x86::AVX2.l1)(x, y), portable::l1(x, y), "l1 len {len}");
                }
            }
        }
    }

    #[test]
    fn range_ignores_outliers_and_clamps_them() {
        let mut v: Vec<f32> = (0..100_000)
            .map(|i| (i % 201) as f32 / 100.0 - 1.0)
            .collect();
        v[7] = 1e6;
        v[8] = -1e6;
        let q = Sq8::fit(&v);
        assert!((q.decode(127) - 1.0).abs() < 0.02, "{q:?}");
        assert!((q.decode(-127) + 1.0).abs() < 0.02, "{q:?}");
        assert_eq!(q.code(1e6), 127);
        assert_eq!(q.code(-1e6), -127);
        assert_eq!(q.code(f32::NAN), 0);
        // Constant data: every value codes to the centre, no division by zero.
        let c = Sq8::fit(&[3.0; 64]);
        assert_eq!(c.code(3.0), 0);
        assert_eq!(c.decode(0), 3.0);
    }

    /// Code distances approximate the exact ones and order pairs as they do, up to quantisation
    /// error: for random triples, the closer of two candidates is (almost always) the same.
    #[test]
    fn code_distances_order_like_exact_ones() {
        let (n, dims) = (400usize, 96usize);
        let mut r = SplitMix64::new(3);
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine, Metric::L1] {
            let mut v: Vec<f32> = (0..n * dims)
                .map(|_| (r.next_f64_open0() as f32 - 0.3) * 2.0)
                .collect();
            if metric == Metric::Cosine {
                for row in v.chunks_mut(dims) {
                    let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
                    row.iter_mut().for_each(|x| *x /= norm);
                }
            }
            let codes = Sq8::fit(&v).encode(&v, dims, metric);
            let row = |i: usize| &v[i * dims..(i + 1) * dims];
            let (mut agree, mut total) = (0, 0);
            let scale = order_distance(metric, row(0), row(1)).abs().max(1e-3);
            for t in 0..2000 {
                let (a, b, c) = (t % n, (t * 7 + 1) % n, (t * 13 + 5) % n);
                let exact =
                    order_distance(metric, row(a), row(b)) < order_distance(metric, row(a), row(c));
                let approx =
                    codes.distance(a as u32, b as u32) < codes.distance(a as u32, c as u32);
                total += 1;
                agree += (exact == approx) as usize;
                let (e, q) = (
                    order_distance(metric, row(a), row(b)),
                    codes.distance(a as u32, b as u32),
                );
                assert!(
                    (e - q).abs() <= 0.05 * scale,
                    "{metric:?}: exact {e} coded {q}"
                );
            }
            assert!(agree * 100 >= total * 98, "{metric:?}: {agree}/{total}");
        }
    }
}
