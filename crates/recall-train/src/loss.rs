//! Sampled-softmax (InfoNCE) loss over in-batch negatives with the sampling-bias correction.
//!
//! In a batch of (user, positive item) pairs every other row's item is a negative. Popular
//! items appear as negatives more often than uniform sampling would make them, which pushes
//! their scores down; the logQ correction subtracts log p(item) from every logit,
//! s(u, i) − log p(i), so the softmax estimates the full one (Yi et al., RecSys 2019).

use ndarray::{Array2, ArrayView2};

pub struct Loss {
    pub value: f64,
    pub d_users: Array2<f32>,
    pub d_items: Array2<f32>,
}

/// logits[i][j] = u_i·v_j / τ − log p(item_j) (without the last term when `log_q` is None);
/// another row's copy of row i's positive item is masked (not a negative).
pub fn logits(
    users: ArrayView2<f32>,
    items: ArrayView2<f32>,
    item_ids: &[usize],
    temperature: f32,
    log_q: Option<&[f32]>,
) -> Array2<f32> {
    let mut l = users.dot(&items.t()) / temperature;
    for ((i, j), v) in l.indexed_iter_mut() {
        if let Some(q) = log_q {
            *v -= q[item_ids[j]];
        }
        if i != j && item_ids[i] == item_ids[j] {
            *v = f32::NEG_INFINITY;
        }
    }
    l
}

pub fn in_batch_softmax(
    users: ArrayView2<f32>,
    items: ArrayView2<f32>,
    item_ids: &[usize],
    temperature: f32,
    log_q: Option<&[f32]>,
) -> Loss {
    let b = users.nrows();
    let mut g = logits(users, items, item_ids, temperature, log_q);
    let mut value = 0.0f64;
    for (i, mut row) in g.rows_mut().into_iter().enumerate() {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
        let lse = max as f64 + sum.ln();
        value += lse - row[i] as f64;
        // d(loss)/d(logit) = (softmax − one-hot) / batch
        for (j, v) in row.iter_mut().enumerate() {
            let p = ((*v as f64) - lse).exp();
            *v = ((p - if i == j { 1.0 } else { 0.0 }) / b as f64) as f32;
        }
    }
    let d_users = g.dot(&items) / temperature;
    let d_items = g.t().dot(&users) / temperature;
    Loss {
        value: value / b as f64,
        d_users,
        d_items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::normal;
    use recall_core::rng::SplitMix64;

    fn data(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
        let mut rng = SplitMix64::new(seed);
        Array2::from_shape_fn((rows, cols), |_| normal(&mut rng))
    }

    #[test]
    fn log_q_shifts_each_column_by_minus_log_p() {
        let (u, v) = (data(4, 3, 1), data(4, 3, 2));
        let ids = [0, 1, 2, 3];
        let log_q = [-1.0f32, -2.0, -3.0, -0.5];
        let plain = logits(u.view(), v.view(), &ids, 0.1, None);
        let corrected = logits(u.view(), v.view(), &ids, 0.1, Some(&log_q));
        for ((i, j), &c) in corrected.indexed_iter() {
            assert!((c - (plain[(i, j)] - log_q[j])).abs() < 1e-5, "({i},{j})");
        }
    }

    #[test]
    fn a_repeated_positive_is_not_a_negative() {
        let (u, v) = (data(3, 3, 1), data(3, 3, 2));
        let l = logits(u.view(), v.view(), &[5, 5, 6], 1.0, None);
        assert_eq!(l[(0, 1)], f32::NEG_INFINITY);
        assert_eq!(l[(1, 0)], f32::NEG_INFINITY);
        assert!(l[(0, 0)].is_finite() && l[(0, 2)].is_finite());
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (u, v) = (data(5, 4, 3), data(5, 4, 4));
        let ids = [0, 1, 2, 1, 3];
        let q = [-1.0f32, -2.0, -0.3, -4.0];
        let loss = in_batch_softmax(u.view(), v.view(), &ids, 0.5, Some(&q));
        let h = 1e-2f32;
        for idx in [(0, 0), (2, 3), (4, 1)] {
            let (mut up, mut um) = (u.clone(), u.clone());
            up[idx] += h;
            um[idx] -= h;
            let n = (in_batch_softmax(up.view(), v.view(), &ids, 0.5, Some(&q)).value
                - in_batch_softmax(um.view(), v.view(), &ids, 0.5, Some(&q)).value)
                / (2.0 * h as f64);
            assert!(
                (n - loss.d_users[idx] as f64).abs() < 1e-3,
                "users {idx:?}: {n} vs {}",
                loss.d_users[idx]
            );
            let (mut vp, mut vm) = (v.clone(), v.clone());
            vp[idx] += h;
            vm[idx] -= h;
            let n = (in_batch_softmax(u.view(), vp.view(), &ids, 0.5, Some(&q)).value
                - in_batch_softmax(u.view(), vm.view(), &ids, 0.5, Some(&q)).value)
                / (2.0 * h as f64);
            assert!(
                (n - loss.d_items[idx] as f64).abs() < 1e-3,
                "items {idx:?}: {n} vs {}",
                loss.d_items[idx]
            );
        }
    }
}
