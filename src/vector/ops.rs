//! Distance operators, vector functions, arithmetic and btree comparison for `vector`.

use pgrx::prelude::*;
use recall_core::distance;

use super::datum::{Vector, VectorBuf};
use super::errors::{self, check_same_dims};

/// Both operands' slices after pgvector's dimension check.
#[inline]
fn pair<'a>(a: &Vector<'a>, b: &Vector<'a>) -> (&'a [f32], &'a [f32]) {
    check_same_dims(a.dim(), b.dim());
    (a.as_slice(), b.as_slice())
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn l2_distance(a: Vector<'_>, b: Vector<'_>) -> f64 {
    let (x, y) = pair(&a, &b);
    (distance::l2_squared(x, y) as f64).sqrt()
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_l2_squared_distance(a: Vector<'_>, b: Vector<'_>) -> f64 {
    let (x, y) = pair(&a, &b);
    distance::l2_squared(x, y) as f64
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn inner_product(a: Vector<'_>, b: Vector<'_>) -> f64 {
    let (x, y) = pair(&a, &b);
    distance::dot(x, y) as f64
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_negative_inner_product(a: Vector<'_>, b: Vector<'_>) -> f64 {
    let (x, y) = pair(&a, &b);
    -(distance::dot(x, y) as f64)
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn cosine_distance(a: Vector<'_>, b: Vector<'_>) -> f64 {
    let (x, y) = pair(&a, &b);
    distance::cosine(x, y)
}

/// Angle between unit vectors scaled to [0, 1]; the k-means distance for spherical IVF.
#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_spherical_distance(a: Vector<'_>, b: Vector<'_>) -> f64 {
    let (x, y) = pair(&a, &b);
    let dp = (distance::dot(x, y) as f64).clamp(-1.0, 1.0);
    dp.acos() / std::f64::consts::PI
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn l1_distance(a: Vector<'_>, b: Vector<'_>) -> f64 {
    let (x, y) = pair(&a, &b);
    distance::l1(x, y) as f64
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_dims(a: Vector<'_>) -> i32 {
    a.dim() as i32
}

/// Accumulated in `f64` as pgvector does, so large vectors do not lose precision.
#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_norm(a: Vector<'_>) -> f64 {
    a.as_slice()
        .iter()
        .map(|&x| x as f64 * x as f64)
        .sum::<f64>()
        .sqrt()
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn l2_normalize(a: Vector<'_>) -> VectorBuf {
    let x = a.as_slice();
    let norm = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
    let mut out = VectorBuf::zeroed(x.len());
    // A zero vector stays zero, as in pgvector.
    if norm > 0.0 {
        for (o, &v) in out.as_mut_slice().iter_mut().zip(x) {
            *o = (v as f64 / norm) as f32;
            if o.is_infinite() {
                errors::overflow();
            }
        }
    }
    out
}

/// 1-based like `substring`; a start before 1 is clamped, a window past the end is cut.
#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn subvector(a: Vector<'_>, start: i32, count: i32) -> VectorBuf {
    let dim = a.dim() as i32;
    if count < 1 {
        errors::data_exception("vector must have at least 1 dimension".into());
    }
    // start + count may overflow i32; dim - count cannot, both being positive.
    let end = if start > dim - count {
        dim + 1
    } else {
        start + count
    };
    let start = if start < 1 {
        1
    } else if start > dim {
        errors::data_exception("vector must have at least 1 dimension".into());
    } else {
        start
    };
    let n = end - start;
    errors::check_dim(n.max(0) as usize);
    VectorBuf::from_slice(&a.as_slice()[(start - 1) as usize..(end - 1) as usize])
}

fn elementwise(
    a: &Vector<'_>,
    b: &Vector<'_>,
    f: impl Fn(f32, f32) -> f32,
    check_underflow: bool,
) -> VectorBuf {
    let (x, y) = pair(a, b);
    let mut out = VectorBuf::zeroed(x.len());
    for ((o, &p), &q) in out.as_mut_slice().iter_mut().zip(x).zip(y) {
        let r = f(p, q);
        if r.is_infinite() {
            errors::overflow();
        }
        if check_underflow && r == 0.0 && !(p == 0.0 || q == 0.0) {
            errors::underflow();
        }
        *o = r;
    }
    out
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_add(a: Vector<'_>, b: Vector<'_>) -> VectorBuf {
    elementwise(&a, &b, |p, q| p + q, false)
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_sub(a: Vector<'_>, b: Vector<'_>) -> VectorBuf {
    elementwise(&a, &b, |p, q| p - q, false)
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_mul(a: Vector<'_>, b: Vector<'_>) -> VectorBuf {
    elementwise(&a, &b, |p, q| p * q, true)
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_concat(a: Vector<'_>, b: Vector<'_>) -> VectorBuf {
    errors::check_dim(a.dim() + b.dim());
    let mut out = VectorBuf::zeroed(a.dim() + b.dim());
    let o = out.as_mut_slice();
    o[..a.dim()].copy_from_slice(a.as_slice());
    o[a.dim()..].copy_from_slice(b.as_slice());
    out
}

/// Element-wise first, then by dimension count — the order Postgres uses for arrays, and the
/// one pgvector's btree opclass defines.
fn compare(a: &Vector<'_>, b: &Vector<'_>) -> std::cmp::Ordering {
    use std::cmp::Ordering::{Greater, Less};
    for (x, y) in a.as_slice().iter().zip(b.as_slice()) {
        if x < y {
            return Less;
        }
        if x > y {
            return Greater;
        }
    }
    a.dim().cmp(&b.dim())
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_cmp(a: Vector<'_>, b: Vector<'_>) -> i32 {
    compare(&a, &b) as i32
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_lt(a: Vector<'_>, b: Vector<'_>) -> bool {
    compare(&a, &b).is_lt()
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_le(a: Vector<'_>, b: Vector<'_>) -> bool {
    compare(&a, &b).is_le()
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_eq(a: Vector<'_>, b: Vector<'_>) -> bool {
    compare(&a, &b).is_eq()
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_ne(a: Vector<'_>, b: Vector<'_>) -> bool {
    compare(&a, &b).is_ne()
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_ge(a: Vector<'_>, b: Vector<'_>) -> bool {
    compare(&a, &b).is_ge()
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_gt(a: Vector<'_>, b: Vector<'_>) -> bool {
    compare(&a, &b).is_gt()
}
