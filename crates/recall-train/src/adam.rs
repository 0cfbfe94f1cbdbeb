//! Adam (Kingma & Ba) with bias correction, on flat parameters.

use crate::layers::Param;

pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    step: i32,
}

impl Adam {
    pub fn new(lr: f32) -> Adam {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step: 0,
        }
    }

    /// One update of every parameter from its accumulated gradient, which is then cleared.
    pub fn step(&mut self, params: Vec<&mut Param>) {
        self.step += 1;
        let c1 = 1.0 - self.beta1.powi(self.step);
        let c2 = 1.0 - self.beta2.powi(self.step);
        for p in params {
            for k in 0..p.w.len() {
                let g = p.g[k];
                p.m[k] = self.beta1 * p.m[k] + (1.0 - self.beta1) * g;
                p.v[k] = self.beta2 * p.v[k] + (1.0 - self.beta2) * g * g;
                p.w[k] -= self.lr * (p.m[k] / c1) / ((p.v[k] / c2).sqrt() + self.eps);
                p.g[k] = 0.0;
            }
        }
    }
}
