//! Distance kernels with runtime CPU dispatch.
//!
//! The binary must run on any x86-64 (and non-x86) machine, so no kernel is chosen at compile
//! time: [`kernels`] probes the CPU once and hands out function pointers. Hot loops fetch the
//! table once and call through the pointers, which costs one indirect call per distance.
//!
//! All kernels accumulate in `f32`, like pgvector, but in several independent lanes; results
//! can differ from a sequential loop in the last bits, never more than float rounding allows.

use std::sync::OnceLock;

/// The distance functions an index or operator can be built on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Euclidean distance (`<->`); indexes order by its square.
    L2,
    /// Negative inner product (`<#>`).
    InnerProduct,
    /// Cosine distance (`<=>`), 1 − cos θ.
    Cosine,
    /// Manhattan distance (`<+>`).
    L1,
}

type Binary = fn(&[f32], &[f32]) -> f32;
type Triple = fn(&[f32], &[f32]) -> (f32, f32, f32);

/// One CPU's set of kernels.
#[derive(Clone, Copy)]
pub struct Kernels {
    /// Which instruction set the table uses, for benchmarks and `EXPLAIN`-style diagnostics.
    pub isa: &'static str,
    pub l2_squared: Binary,
    pub dot: Binary,
    pub l1: Binary,
    /// (a·b, a·a, b·b) in one pass, for cosine.
    pub dot_norms: Triple,
}

static KERNELS: OnceLock<Kernels> = OnceLock::new();

/// The best kernels this CPU supports, chosen on first use.
#[inline]
pub fn kernels() -> &'static Kernels {
    KERNELS.get_or_init(detect)
}

fn detect() -> Kernels {
    #[cfg(target_arch = "x86_64")]
    {
        if std::env::var_os("RECALL_FORCE_SCALAR").is_none() {
            if is_x86_feature_detected!("avx512f") {
                return x86::AVX512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return x86::AVX2;
            }
        }
    }
    SCALAR
}

/// Portable kernels: 8 independent accumulators let the compiler use whatever vector unit the
/// baseline target has (SSE2 on x86-64, NEON on aarch64) without any feature detection.
pub const SCALAR: Kernels = Kernels {
    isa: "scalar",
    l2_squared: portable::l2_squared,
    dot: portable::dot,
    l1: portable::l1,
    dot_norms: portable::dot_norms,
};

#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    (kernels().l2_squared)(a, b)
}

#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (kernels().dot)(a, b)
}

#[inline]
pub fn l1(a: &[f32], b: &[f32]) -> f32 {
    (kernels().l1)(a, b)
}

/// Cosine distance in `f64`, as pgvector computes it: `sqrt(|a|²·|b|²)` in one root, the
/// similarity clamped to [-1, 1]; NaN when either vector is zero.
#[inline]
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (ab, aa, bb) = (kernels().dot_norms)(a, b);
    cosine_from_parts(ab, aa, bb)
}

#[inline]
pub fn cosine_from_parts(ab: f32, aa: f32, bb: f32) -> f64 {
    let sim = ab as f64 / ((aa as f64) * (bb as f64)).sqrt();
    let sim = if sim > 1.0 {
        1.0
    } else if sim < -1.0 {
        -1.0
    } else {
        sim
    };
    1.0 - sim
}

/// The SQL operator's own result for `metric` (`<->`, `<#>`, `<=>`, `<+>`), computed as the
/// operator computes it: scans that order by it return rows in the operator's exact order.
pub fn operator_value(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
    match metric {
        Metric::L2 => (l2_squared(a, b) as f64).sqrt(),
        Metric::InnerProduct => -(dot(a, b) as f64),
        Metric::Cosine => cosine(a, b),
        Metric::L1 => l1(a, b) as f64,
    }
}

/// The value an index orders by for `metric`: monotone in the SQL operator's result.
/// L2 uses the square (no root per comparison); cosine assumes both sides are unit length,
/// which the index guarantees by normalising on the way in.
#[inline]
pub fn order_distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::L2 => l2_squared(a, b),
        Metric::InnerProduct => -dot(a, b),
        Metric::Cosine => 1.0 - dot(a, b),
        Metric::L1 => l1(a, b),
    }
}

/// Asks the CPU to start loading the first cache lines of `v` (the hardware prefetcher
/// follows the rest once the scan is sequential).
#[inline]
pub fn prefetch(v: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = v.as_ptr() as *const i8;
        let bytes = v.len() * 4;
        let mut off = 0;
        while off < bytes.min(256) {
            _mm_prefetch(p.add(off), _MM_HINT_T0);
            off += 64;
        }
    }
}

/// Asks the CPU to start loading `len` bytes from `p`, every cache line of them: for data
/// the caller knows it reads whole soon, where waiting for the hardware prefetcher to pick
/// up the stream costs the first misses. Never faults, whatever `p` is.
#[inline]
pub fn prefetch_bytes(p: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let mut off = 0;
        while off < len {
            _mm_prefetch(p.wrapping_add(off) as *const i8, _MM_HINT_T0);
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
}

/// Sequential reference loops: the semantics every kernel must reproduce, and the benches'
/// baseline. A plain `fold` over `f32` keeps strict evaluation order, so the compiler cannot
/// vectorise it.
pub mod reference {
    pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).fold(0.0, |s, (x, y)| s + (x - y) * (x - y))
    }
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).fold(0.0, |s, (x, y)| s + x * y)
    }
    pub fn l1(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).fold(0.0, |s, (x, y)| s + (x - y).abs())
    }
}

mod portable {
    const LANES: usize = 8;

    #[inline(always)]
    fn fold8(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0.0f32; LANES];
        let chunks = n / LANES;
        for c in 0..chunks {
            let (x, y) = (
                &a[c * LANES..c * LANES + LANES],
                &b[c * LANES..c * LANES + LANES],
            );
            for l in 0..LANES {
                acc[l] += f(x[l], y[l]);
            }
        }
        let mut tail = 0.0;
        for i in chunks * LANES..n {
            tail += f(a[i], b[i]);
        }
        acc.iter().sum::<f32>() + tail
    }

    pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        fold8(a, b, |x, y| (x - y) * (x - y))
    }
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        fold8(a, b, |x, y| x * y)
    }
    pub fn l1(a: &[f32], b: &[f32]) -> f32 {
        fold8(a, b, |x, y| (x - y).abs())
    }
    pub fn dot_norms(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
        (dot(a, b), dot(a, a), dot(b, b))
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use super::Kernels;
    use std::arch::x86_64::*;

    pub const AVX2: Kernels = Kernels {
        isa: "avx2+fma",
        l2_squared: |a, b| unsafe { l2_squared_avx2(a, b) },
        dot: |a, b| unsafe { dot_avx2(a, b) },
        l1: |a, b| unsafe { l1_avx2(a, b) },
        dot_norms: |a, b| unsafe { dot_norms_avx2(a, b) },
    };

    pub const AVX512: Kernels = Kernels {
        isa: "avx512f",
        l2_squared: |a, b| unsafe { l2_squared_avx512(a, b) },
        dot: |a, b| unsafe { dot_avx512(a, b) },
        l1: |a, b| unsafe { l1_avx512(a, b) },
        dot_norms: |a, b| unsafe { dot_norms_avx512(a, b) },
    };

    /// The sum of the eight lanes (also the other kernels' final reduction).
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn hsum256(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// Runs `step` over 32-float blocks with four independent accumulators (to hide FMA
    /// latency), then 8-float blocks, then a scalar tail.
    macro_rules! avx2_reduce {
        ($a:ident, $b:ident, |$acc:ident, $x:ident, $y:ident| $step:expr, |$sx:ident, $sy:ident| $scalar:expr) => {{
            let n = $a.len().min($b.len());
            let pa = $a.as_ptr();
            let pb = $b.as_ptr();
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut i = 0;
            while i + 32 <= n {
                for k in 0..4 {
                    let $x = _mm256_loadu_ps(pa.add(i + 8 * k));
                    let $y = _mm256_loadu_ps(pb.add(i + 8 * k));
                    let $acc = acc[k];
                    acc[k] = $step;
                }
                i += 32;
            }
            while i + 8 <= n {
                let $x = _mm256_loadu_ps(pa.add(i));
                let $y = _mm256_loadu_ps(pb.add(i));
                let $acc = acc[0];
                acc[0] = $step;
                i += 8;
            }
            let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            let mut total = hsum256(s);
            while i < n {
                let $sx = *pa.add(i);
                let $sy = *pb.add(i);
                total += $scalar;
                i += 1;
            }
            total
        }};
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        avx2_reduce!(a, b, |acc, x, y| _mm256_fmadd_ps(x, y, acc), |x, y| x * y)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn l2_squared_avx2(a: &[f32], b: &[f32]) -> f32 {
        avx2_reduce!(
            a,
            b,
            |acc, x, y| {
                let d = _mm256_sub_ps(x, y);
                _mm256_fmadd_ps(d, d, acc)
            },
            |x, y| (x - y) * (x - y)
        )
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn l1_avx2(a: &[f32], b: &[f32]) -> f32 {
        let sign = _mm256_set1_ps(-0.0);
        avx2_reduce!(
            a,
            b,
            |acc, x, y| _mm256_add_ps(acc, _mm256_andnot_ps(sign, _mm256_sub_ps(x, y))),
            |x, y| (x - y).abs()
        )
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_norms_avx2(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut ab, mut aa, mut bb) = (
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
        );
        let mut i = 0;
        while i + 8 <= n {
            let x = _mm256_loadu_ps(pa.add(i));
            let y = _mm256_loadu_ps(pb.add(i));
            ab = _mm256_fmadd_ps(x, y, ab);
            aa = _mm256_fmadd_ps(x, x, aa);
            bb = _mm256_fmadd_ps(y, y, bb);
            i += 8;
        }
        let (mut sab, mut saa, mut sbb) = (hsum256(ab), hsum256(aa), hsum256(bb));
        while i < n {
            let (x, y) = (*pa.add(i), *pb.add(i));
            sab += x * y;
            saa += x * x;
            sbb += y * y;
            i += 1;
        }
        (sab, saa, sbb)
    }

    /// AVX-512 versions: 16 lanes, two accumulators, and a masked load for the tail so no
    /// scalar loop is needed.
    macro_rules! avx512_reduce {
        ($a:ident, $b:ident, |$acc:ident, $x:ident, $y:ident| $step:expr) => {{
            let n = $a.len().min($b.len());
            let pa = $a.as_ptr();
            let pb = $b.as_ptr();
            let mut acc0 = _mm512_setzero_ps();
            let mut acc1 = _mm512_setzero_ps();
            let mut i = 0;
            while i + 32 <= n {
                let $x = _mm512_loadu_ps(pa.add(i));
                let $y = _mm512_loadu_ps(pb.add(i));
                let $acc = acc0;
                acc0 = $step;
                let $x = _mm512_loadu_ps(pa.add(i + 16));
                let $y = _mm512_loadu_ps(pb.add(i + 16));
                let $acc = acc1;
                acc1 = $step;
                i += 32;
            }
            while i < n {
                let rem = n - i;
                let mask: __mmask16 = if rem >= 16 { 0xFFFF } else { (1u16 << rem) - 1 };
                let $x = _mm512_maskz_loadu_ps(mask, pa.add(i));
                let $y = _mm512_maskz_loadu_ps(mask, pb.add(i));
                let $acc = acc0;
                acc0 = $step;
                i += 16;
            }
            _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
        }};
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        avx512_reduce!(a, b, |acc, x, y| _mm512_fmadd_ps(x, y, acc))
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn l2_squared_avx512(a: &[f32], b: &[f32]) -> f32 {
        avx512_reduce!(a, b, |acc, x, y| {
            let d = _mm512_sub_ps(x, y);
            _mm512_fmadd_ps(d, d, acc)
        })
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn l1_avx512(a: &[f32], b: &[f32]) -> f32 {
        avx512_reduce!(a, b, |acc, x, y| _mm512_add_ps(
            acc,
            _mm512_abs_ps(_mm512_sub_ps(x, y))
        ))
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn dot_norms_avx512(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut ab, mut aa, mut bb) = (
            _mm512_setzero_ps(),
            _mm512_setzero_ps(),
            _mm512_setzero_ps(),
        );
        let mut i = 0;
        while i < n {
            let rem = n - i;
            let mask: __mmask16 = if rem >= 16 { 0xFFFF } else { (1u16 << rem) - 1 };
            let x = _mm512_maskz_loadu_ps(mask, pa.add(i));
            let y = _mm512_maskz_loadu_ps(mask, pb.add(i));
            ab = _mm512_fmadd_ps(x, y, ab);
            aa = _mm512_fmadd_ps(x, x, aa);
            bb = _mm512_fmadd_ps(y, y, bb);
            i += 16;
        }
        (
            _mm512_reduce_add_ps(ab),
            _mm512_reduce_add_ps(aa),
            _mm512_reduce_add_ps(bb),
        )
    }

    /// Every table this CPU can run, so tests can check each one against the reference.
    pub fn supported() -> Vec<Kernels> {
        let mut v = Vec::new();
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            v.push(AVX2);
        }
        if is_x86_feature_detected!("avx512f") {
            v.push(AVX512);
        }
        v
    }
}

/// Every kernel table the running CPU supports (the portable one first).
pub fn supported_kernels() -> Vec<Kernels> {
    #[allow(unused_mut)]
    let mut v = vec![SCALAR];
    #[cfg(target_arch = "x86_64")]
    v.extend(x86::supported());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn close(x: f32, y: f32, scale: f32) -> bool {
        (x - y).abs() <= 1e-5 * scale.max(1.0)
    }

    #[test]
    fn every_kernel_matches_reference_on_all_lengths() {
        for k in supported_kernels() {
            for n in (0..70).chain([127, 128, 129, 768, 1536, 2001]) {
                let a = pseudo_random(n, n as u32 + 1);
                let b = pseudo_random(n, n as u32 + 1000);
                let scale = n as f32;
                assert!(
                    close((k.dot)(&a, &b), reference::dot(&a, &b), scale),
                    "{} dot n={n}",
                    k.isa
                );
                assert!(
                    close((k.l2_squared)(&a, &b), reference::l2_squared(&a, &b), scale),
                    "{} l2 n={n}",
                    k.isa
                );
                assert!(
                    close((k.l1)(&a, &b), reference::l1(&a, &b), scale),
                    "{} l1 n={n}",
                    k.isa
                );
                let (ab, aa, bb) = (k.dot_norms)(&a, &b);
                assert!(
                    close(ab, reference::dot(&a, &b), scale),
                    "{} dot_norms.ab n={n}",
                    k.isa
                );
                assert!(
                    close(aa, reference::dot(&a, &a), scale),
                    "{} dot_norms.aa n={n}",
                    k.isa
                );
                assert!(
                    close(bb, reference::dot(&b, &b), scale),
                    "{} dot_norms.bb n={n}",
                    k.isa
                );
            }
        }
    }

    #[test]
    fn exact_small_integers() {
        let a = [1.0, 2.0, 3.0];
        let b = [1.0, 1.0, 1.0];
        assert_eq!(dot(&a, &b), 6.0);
        assert_eq!(l2_squared(&a, &b), 5.0);
        assert_eq!(l1(&a, &b), 3.0);
        assert_eq!(order_distance(Metric::InnerProduct, &a, &b), -6.0);
    }

    #[test]
    fn cosine_edge_cases() {
        assert!(cosine(&[0.0, 0.0], &[1.0, 2.0]).is_nan());
        assert_eq!(cosine(&[1.0, 0.0], &[2.0, 0.0]), 0.0);
        assert_eq!(cosine(&[1.0, 0.0], &[-3.0, 0.0]), 2.0);
        assert!((cosine(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-12);
    }
}
