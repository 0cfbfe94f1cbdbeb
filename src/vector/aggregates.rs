//! `avg(vector)` and `sum(vector)` support. The `avg` state is pgvector's: a `float8[]` of
//! `[count, sum_1, …, sum_d]`, so partial aggregates combine across parallel workers.

use pgrx::prelude::*;

use super::datum::{Vector, VectorBuf};
use super::errors;

fn check_state(state: &[f64], caller: &str) {
    if state.is_empty() {
        error!("{caller}: expected state array");
    }
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_accum(state: Vec<f64>, v: Vector<'_>) -> Vec<f64> {
    check_state(&state, "vector_accum");
    let n = state[0];
    let x = v.as_slice();
    if n < 1.0 {
        let mut out = Vec::with_capacity(x.len() + 1);
        out.push(1.0);
        out.extend(x.iter().map(|&f| f as f64));
        return out;
    }
    errors::check_expected_dim(state.len() as i32 - 1, x.len());
    let mut out = state;
    out[0] = n + 1.0;
    for (s, &f) in out[1..].iter_mut().zip(x) {
        *s += f as f64;
        if s.is_infinite() {
            errors::overflow();
        }
    }
    out
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_combine(a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
    check_state(&a, "vector_combine");
    check_state(&b, "vector_combine");
    if a[0] < 1.0 {
        return b;
    }
    if b[0] < 1.0 {
        return a;
    }
    errors::check_expected_dim(a.len() as i32 - 1, b.len() - 1);
    let mut out = a;
    out[0] += b[0];
    for (s, &t) in out[1..].iter_mut().zip(&b[1..]) {
        *s += t;
        if s.is_infinite() {
            errors::overflow();
        }
    }
    out
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_avg(state: Vec<f64>) -> Option<VectorBuf> {
    check_state(&state, "vector_avg");
    let n = state[0];
    if n < 1.0 {
        return None;
    }
    let mut out = VectorBuf::zeroed(state.len() - 1);
    for (o, &s) in out.as_mut_slice().iter_mut().zip(&state[1..]) {
        *o = (s / n) as f32;
        errors::check_element(*o);
    }
    Some(out)
}
