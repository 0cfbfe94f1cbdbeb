//! A query in `f32` against rows stored as 8-bit codes, for scans that read codes only.
//!
//! Each code is decoded with exactly the arithmetic of [`Sq8::decode`] (a multiply, then an
//! add: no fused multiply-add), so the per-row errors measured at encode time hold for the
//! vectors these kernels see; only the accumulation differs from a plain loop.

use crate::sq8::Sq8;

/// Σ (q_i − x̂_i)² with x̂ the decoded `codes`.
pub fn decoded_l2_squared(sq: &Sq8, q: &[f32], codes: &[i8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        return unsafe { x86::l2_squared(sq.centre(), sq.step(), q, codes) };
    }
    portable_l2_squared(sq, q, codes)
}

/// (q·x̂, x̂·x̂) with x̂ the decoded `codes`.
pub fn decoded_dot(sq: &Sq8, q: &[f32], codes: &[i8]) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        return unsafe { x86::dot(sq.centre(), sq.step(), q, codes) };
    }
    portable_dot(sq, q, codes)
}

fn portable_l2_squared(sq: &Sq8, q: &[f32], codes: &[i8]) -> f32 {
    q.iter()
        .zip(codes)
        .map(|(&x, &c)| {
            let d = x - sq.decode(c);
            d * d
        })
        .sum()
}

fn portable_dot(sq: &Sq8, q: &[f32], codes: &[i8]) -> (f32, f32) {
    q.iter().zip(codes).fold((0.0, 0.0), |(p, n), (&x, &c)| {
        let v = sq.decode(c);
        (p + x * v, n + v * v)
    })
}

#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX2.get_or_init(|| {
        std::env::var_os("RECALL_FORCE_SCALAR").is_none()
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
    })
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use crate::distance::x86::hsum256 as hsum;

    /// Eight codes decoded: `centre + step · c`, rounded as the scalar decode rounds.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn decode8(p: *const i8, centre: __m256, step: __m256) -> __m256 {
        let c = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)));
        _mm256_add_ps(_mm256_mul_ps(c, step), centre)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn l2_squared(centre: f32, step: f32, q: &[f32], codes: &[i8]) -> f32 {
        let n = q.len().min(codes.len());
        let (vc, vs) = (_mm256_set1_ps(centre), _mm256_set1_ps(step));
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut i = 0;
        while i + 16 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                let x = decode8(codes.as_ptr().add(i + 8 * k), vc, vs);
                let d = _mm256_sub_ps(_mm256_loadu_ps(q.as_ptr().add(i + 8 * k)), x);
                *a = _mm256_fmadd_ps(d, d, *a);
            }
            i += 16;
        }
        let mut s = hsum(_mm256_add_ps(acc[0], acc[1]));
        while i < n {
            let d = q[i] - (codes[i] as f32 * step + centre);
            s += d * d;
            i += 1;
        }
        s
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(centre: f32, step: f32, q: &[f32], codes: &[i8]) -> (f32, f32) {
        let n = q.len().min(codes.len());
        let (vc, vs) = (_mm256_set1_ps(centre), _mm256_set1_ps(step));
        let (mut p, mut m) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        while i + 8 <= n {
            let x = decode8(codes.as_ptr().add(i), vc, vs);
            p = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(i)), x, p);
            m = _mm256_fmadd_ps(x, x, m);
            i += 8;
        }
        let (mut sp, mut sm) = (hsum(p), hsum(m));
        while i < n {
            let x = codes[i] as f32 * step + centre;
            sp += q[i] * x;
            sm += x * x;
            i += 1;
        }
        (sp, sm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// The dispatched kernels agree with decode-then-compute on every length (tails
    /// included) and at the code extremes.
    #[test]
    fn kernels_match_the_decoded_vectors() {
        let mut rng = SplitMix64::new(21);
        let sq = Sq8::new(0.3, 0.02);
        for n in 0..70 {
            let q: Vec<f32> = (0..n)
                .map(|_| rng.next_f64_open0() as f32 * 6.0 - 3.0)
                .collect();
            let codes: Vec<i8> = (0..n)
                .map(|i| match i % 7 {
                    0 => 127,
                    1 => -127,
                    _ => (rng.below(255) as i32 - 127) as i8,
                })
                .collect();
            let mut dec = vec![0f32; n];
            sq.decode_into(&codes, &mut dec);
            let l2: f64 = q
                .iter()
                .zip(&dec)
                .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                .sum();
            let p: f64 = q.iter().zip(&dec).map(|(&a, &b)| a as f64 * b as f64).sum();
            let m: f64 = dec.iter().map(|&b| b as f64 * b as f64).sum();
            let tol = |x: f64| 1e-5 * (1.0 + x.abs());
            assert!(
                (decoded_l2_squared(&sq, &q, &codes) as f64 - l2).abs() <= tol(l2),
                "n={n}"
            );
            let (gp, gm) = decoded_dot(&sq, &q, &codes);
            assert!(
                (gp as f64 - p).abs() <= tol(m.sqrt() * 3.0 * (n as f64).sqrt()),
                "n={n}"
            );
            assert!((gm as f64 - m).abs() <= tol(m), "n={n}");
            assert_eq!(portable_l2_squared(&sq, &q, &codes) == 0.0, l2 == 0.0);
        }
    }
}
