//! Trainable layers with hand-written gradients. Activations are batch-major
//! (`[batch, features]`); parameters use PyTorch's layouts so they export as-is.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use recall_core::rng::SplitMix64;

/// A parameter tensor with its gradient and Adam moments, stored flat.
#[derive(Clone, Debug)]
pub struct Param {
    pub shape: Vec<usize>,
    pub w: Vec<f32>,
    pub g: Vec<f32>,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
}

impl Param {
    pub fn new(shape: Vec<usize>, w: Vec<f32>) -> Param {
        let n = w.len();
        assert_eq!(n, shape.iter().product::<usize>());
        Param {
            shape,
            w,
            g: vec![0.0; n],
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    pub fn matrix(&self) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape((self.shape[0], self.shape[1]), &self.w).expect("2-d")
    }

    /// Adds a gradient given in logical (row-major) order, whatever its memory layout.
    fn add_grad<'a>(&mut self, g: impl IntoIterator<Item = &'a f32>) {
        self.g.iter_mut().zip(g).for_each(|(a, b)| *a += b);
    }
}

pub fn normal(rng: &mut SplitMix64) -> f32 {
    // Box-Muller; one of the pair is enough here.
    let (u, v) = (rng.next_f64_open0(), rng.next_f64_open0());
    ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
}

pub fn uniform(rng: &mut SplitMix64, bound: f32) -> f32 {
    ((rng.next_f64_open0() * 2.0 - 1.0) as f32) * bound
}

/// `nn.Linear`: y = x Wᵀ + b, W is [out, in]. PyTorch's default initialisation.
#[derive(Clone, Debug)]
pub struct Linear {
    pub w: Param,
    pub b: Param,
}

impl Linear {
    pub fn new(in_dim: usize, out_dim: usize, rng: &mut SplitMix64) -> Linear {
        let bound = 1.0 / (in_dim as f32).sqrt();
        let w = (0..in_dim * out_dim).map(|_| uniform(rng, bound)).collect();
        let b = (0..out_dim).map(|_| uniform(rng, bound)).collect();
        Linear {
            w: Param::new(vec![out_dim, in_dim], w),
            b: Param::new(vec![out_dim], b),
        }
    }

    pub fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut y = x.dot(&self.w.matrix().t());
        y += &ndarray::aview1(&self.b.w);
        y
    }

    /// Accumulates dW and db; returns dx.
    pub fn backward(&mut self, x: ArrayView2<f32>, dy: ArrayView2<f32>) -> Array2<f32> {
        let dw = dy.t().dot(&x);
        self.w.add_grad(dw.iter());
        let db = dy.sum_axis(Axis(0));
        self.b.add_grad(db.iter());
        dy.dot(&self.w.matrix())
    }
}

/// `nn.BatchNorm1d`: batch statistics while training (running statistics updated with
/// PyTorch's momentum and unbiased variance), running statistics at inference.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    pub gamma: Param,
    pub beta: Param,
    pub running_mean: Vec<f32>,
    pub running_var: Vec<f32>,
    pub eps: f32,
    pub momentum: f32,
}

pub struct BatchNormCache {
    xhat: Array2<f32>,
    inv_std: Array1<f32>,
}

impl BatchNorm {
    pub fn new(dim: usize, eps: f32) -> BatchNorm {
        BatchNorm {
            gamma: Param::new(vec![dim], vec![1.0; dim]),
            beta: Param::new(vec![dim], vec![0.0; dim]),
            running_mean: vec![0.0; dim],
            running_var: vec![1.0; dim],
            eps,
            momentum: 0.1,
        }
    }

    pub fn forward_train(&mut self, x: ArrayView2<f32>) -> (Array2<f32>, BatchNormCache) {
        let n = x.nrows() as f32;
        let mean = x.mean_axis(Axis(0)).expect("non-empty batch");
        let centered = &x - &mean;
        let var = centered.mapv(|v| v * v).sum_axis(Axis(0)) / n;
        let inv_std = var.mapv(|v| 1.0 / (v + self.eps).sqrt());
        let xhat = &centered * &inv_std;
        let y = &xhat * &ndarray::aview1(&self.gamma.w) + &ndarray::aview1(&self.beta.w);
        let unbias = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
        for j in 0..mean.len() {
            self.running_mean[j] =
                (1.0 - self.momentum) * self.running_mean[j] + self.momentum * mean[j];
            self.running_var[j] =
                (1.0 - self.momentum) * self.running_var[j] + self.momentum * var[j] * unbias;
        }
        (y, BatchNormCache { xhat, inv_std })
    }

    pub fn forward_eval(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut y = x.to_owned();
        for mut row in y.rows_mut() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (*v - self.running_mean[j]) / (self.running_var[j] + self.eps).sqrt()
                    * self.gamma.w[j]
                    + self.beta.w[j];
            }
        }
        y
    }

    pub fn backward(&mut self, c: &BatchNormCache, dy: ArrayView2<f32>) -> Array2<f32> {
        let n = dy.nrows() as f32;
        let dbeta = dy.sum_axis(Axis(0));
        let dgamma = (&dy * &c.xhat).sum_axis(Axis(0));
        self.beta.add_grad(dbeta.iter());
        self.gamma.add_grad(dgamma.iter());
        let dxhat = &dy * &ndarray::aview1(&self.gamma.w);
        let sum_dxhat = dxhat.sum_axis(Axis(0));
        let sum_dxhat_xhat = (&dxhat * &c.xhat).sum_axis(Axis(0));
        // dx = inv_std / n · (n·dxhat − Σdxhat − xhat·Σ(dxhat·xhat))
        let mut dx = dxhat * n - &sum_dxhat - &c.xhat * &sum_dxhat_xhat;
        dx *= &(&c.inv_std / n);
        dx
    }
}

/// An embedding table [vocab, dim]; a lookup of one id per row or the mean of a bag of ids.
#[derive(Clone, Debug)]
pub struct Embedding {
    pub table: Param,
}

impl Embedding {
    pub fn new(vocab: usize, dim: usize, std: f32, rng: &mut SplitMix64) -> Embedding {
        let w = (0..vocab * dim).map(|_| normal(rng) * std).collect();
        Embedding {
            table: Param::new(vec![vocab, dim], w),
        }
    }

    pub fn dim(&self) -> usize {
        self.table.shape[1]
    }

    pub fn lookup(&self, ids: &[usize]) -> Array2<f32> {
        let t = self.table.matrix();
        let mut out = Array2::zeros((ids.len(), self.dim()));
        for (mut row, &id) in out.rows_mut().into_iter().zip(ids) {
            row.assign(&t.row(id));
        }
        out
    }

    pub fn lookup_backward(&mut self, ids: &[usize], dy: ArrayView2<f32>) {
        let d = self.dim();
        for (row, &id) in dy.rows().into_iter().zip(ids) {
            let g = &mut self.table.g[id * d..(id + 1) * d];
            g.iter_mut().zip(row).for_each(|(a, b)| *a += b);
        }
    }

    /// Mean of each bag's rows; an empty bag gives zeros (`nn.EmbeddingBag(mode="mean")`).
    pub fn bag(&self, bags: &[Vec<usize>]) -> Array2<f32> {
        let t = self.table.matrix();
        let mut out = Array2::zeros((bags.len(), self.dim()));
        for (mut row, bag) in out.rows_mut().into_iter().zip(bags) {
            for &id in bag {
                row += &t.row(id);
            }
            if !bag.is_empty() {
                row /= bag.len() as f32;
            }
        }
        out
    }

    pub fn bag_backward(&mut self, bags: &[Vec<usize>], dy: ArrayView2<f32>) {
        let d = self.dim();
        for (row, bag) in dy.rows().into_iter().zip(bags) {
            let scale = 1.0 / bag.len().max(1) as f32;
            for &id in bag {
                let g = &mut self.table.g[id * d..(id + 1) * d];
                g.iter_mut().zip(row).for_each(|(a, b)| *a += b * scale);
            }
        }
    }
}

/// Rows scaled to unit length (`F.normalize`, eps 1e-12); returns (y, norms).
pub fn normalize(x: ArrayView2<f32>) -> (Array2<f32>, Vec<f32>) {
    let mut y = x.to_owned();
    let mut norms = Vec::with_capacity(x.nrows());
    for mut row in y.rows_mut() {
        let n = row.dot(&row).sqrt().max(1e-12);
        row /= n;
        norms.push(n);
    }
    (y, norms)
}

/// dx = (dy − y (y·dy)) / ‖x‖.
pub fn normalize_backward(y: ArrayView2<f32>, norms: &[f32], dy: ArrayView2<f32>) -> Array2<f32> {
    let mut dx = dy.to_owned();
    for ((mut d, yr), &n) in dx.rows_mut().into_iter().zip(y.rows()).zip(norms) {
        let dot = yr.dot(&d);
        d.zip_mut_with(&yr, |a, &b| *a = (*a - b * dot) / n);
    }
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central differences of a scalar function of x against the analytic gradient.
    fn check(f: impl Fn(&Array2<f32>) -> f64, x: &Array2<f32>, analytic: &Array2<f32>) {
        let h = 1e-2f32;
        for idx in [(0, 0), (1, 2), (2, 1), (3, 3)] {
            let mut xp = x.clone();
            xp[idx] += h;
            let mut xm = x.clone();
            xm[idx] -= h;
            let numeric = (f(&xp) - f(&xm)) / (2.0 * h as f64);
            let a = analytic[idx] as f64;
            assert!(
                (numeric - a).abs() < 2e-3 * (1.0 + a.abs()),
                "{idx:?}: numeric {numeric}, analytic {a}"
            );
        }
    }

    fn data(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
        let mut rng = SplitMix64::new(seed);
        Array2::from_shape_fn((rows, cols), |_| normal(&mut rng))
    }

    /// A fixed random linear functional of the output, so every output element matters.
    fn weights_like(y: &Array2<f32>) -> Array2<f32> {
        data(y.nrows(), y.ncols(), 99)
    }

    #[test]
    fn linear_gradient() {
        let mut rng = SplitMix64::new(1);
        let mut l = Linear::new(4, 3, &mut rng);
        let x = data(5, 4, 2);
        let w = weights_like(&l.forward(x.view()));
        let dx = l.backward(x.view(), w.view());
        check(|x| (l.forward(x.view()) * &w).sum() as f64, &x, &dx);
    }

    #[test]
    fn batchnorm_gradient() {
        let mut bn = BatchNorm::new(4, 1e-5);
        bn.gamma.w = vec![0.5, 1.5, -1.0, 2.0];
        bn.beta.w = vec![0.1, 0.2, 0.3, 0.4];
        let x = data(6, 4, 3);
        let (y, cache) = bn.forward_train(x.view());
        let w = weights_like(&y);
        let dx = bn.backward(&cache, w.view());
        let probe = bn.clone();
        check(
            |x| (probe.clone().forward_train(x.view()).0 * &w).sum() as f64,
            &x,
            &dx,
        );
    }

    #[test]
    fn normalize_gradient() {
        let x = data(4, 5, 4);
        let (y, norms) = normalize(x.view());
        let w = weights_like(&y);
        let dx = normalize_backward(y.view(), &norms, w.view());
        check(|x| (normalize(x.view()).0 * &w).sum() as f64, &x, &dx);
    }
}
