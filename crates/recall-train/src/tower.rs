//! A trainable tower built from the same `TowerConfig` that `recall.load_model` reads, so the
//! exported tensor names and shapes match the inference side by construction.

use ndarray::{concatenate, s, Array2, ArrayView2, Axis};
use recall_core::rng::SplitMix64;
use recall_core::tower::config::{InputConfig, LayerConfig, TowerConfig};

use crate::layers::{
    normalize, normalize_backward, BatchNorm, BatchNormCache, Embedding, Linear, Param,
};

/// One batch's value for one input block.
#[derive(Clone, Debug)]
pub enum Feed {
    Ids(Vec<usize>),
    Bags(Vec<Vec<usize>>),
    Dense(Array2<f32>),
}

enum Block {
    Embedding(Embedding),
    Bag(Embedding),
    Dense(Linear),
}

enum Layer {
    Linear(Linear),
    BatchNorm(BatchNorm),
    Relu,
    Dropout(f32),
}

pub struct Tower {
    pub config: TowerConfig,
    blocks: Vec<Block>,
    layers: Vec<Layer>,
}

/// What the backward pass needs from a training forward pass.
pub struct Trace {
    feeds: Vec<Feed>,
    /// The input of every layer, then the MLP output.
    acts: Vec<Array2<f32>>,
    bn: Vec<Option<BatchNormCache>>,
    masks: Vec<Option<Array2<f32>>>,
    out: Array2<f32>,
    norms: Vec<f32>,
}

impl Trace {
    pub fn output(&self) -> ArrayView2<'_, f32> {
        self.out.view()
    }
}

impl Tower {
    pub fn new(config: &TowerConfig, rng: &mut SplitMix64) -> Tower {
        let blocks = config
            .inputs
            .iter()
            .map(|i| match i {
                InputConfig::Embedding { vocab, dim, .. } => {
                    Block::Embedding(Embedding::new(*vocab, *dim, 0.1, rng))
                }
                InputConfig::Bag { vocab, dim, .. } => {
                    Block::Bag(Embedding::new(*vocab, *dim, 0.1, rng))
                }
                InputConfig::Dense {
                    in_dim, out_dim, ..
                } => Block::Dense(Linear::new(*in_dim, *out_dim, rng)),
            })
            .collect();
        let layers = config
            .layers
            .iter()
            .map(|l| match l {
                LayerConfig::Linear {
                    in_dim, out_dim, ..
                } => Layer::Linear(Linear::new(*in_dim, *out_dim, rng)),
                LayerConfig::Batchnorm { dim, eps, .. } => {
                    Layer::BatchNorm(BatchNorm::new(*dim, *eps as f32))
                }
                LayerConfig::Relu => Layer::Relu,
                LayerConfig::Dropout { p } => Layer::Dropout(p.unwrap_or(0.0) as f32),
            })
            .collect();
        Tower {
            config: config.clone(),
            blocks,
            layers,
        }
    }

    fn concat(&self, feeds: &[Feed]) -> Array2<f32> {
        assert_eq!(feeds.len(), self.blocks.len(), "one feed per input block");
        let parts: Vec<Array2<f32>> = self
            .blocks
            .iter()
            .zip(feeds)
            .map(|(b, f)| match (b, f) {
                (Block::Embedding(e), Feed::Ids(ids)) => e.lookup(ids),
                (Block::Bag(e), Feed::Bags(bags)) => e.bag(bags),
                (Block::Dense(l), Feed::Dense(x)) => l.forward(x.view()),
                _ => panic!("feed kind does not match the input block"),
            })
            .collect();
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        concatenate(Axis(1), &views).expect("same batch size")
    }

    /// Training-mode forward: batch statistics, dropout masks drawn from `rng`.
    pub fn forward_train(&mut self, feeds: Vec<Feed>, rng: &mut SplitMix64) -> Trace {
        let mut x = self.concat(&feeds);
        let mut acts = Vec::with_capacity(self.layers.len() + 1);
        let mut bn = Vec::with_capacity(self.layers.len());
        let mut masks = Vec::with_capacity(self.layers.len());
        for layer in &mut self.layers {
            let (y, cache, mask) = match layer {
                Layer::Linear(l) => (l.forward(x.view()), None, None),
                Layer::BatchNorm(b) => {
                    let (y, c) = b.forward_train(x.view());
                    (y, Some(c), None)
                }
                Layer::Relu => (x.mapv(|v| v.max(0.0)), None, None),
                Layer::Dropout(p) if *p > 0.0 => {
                    let keep = 1.0 / (1.0 - *p);
                    let mask = Array2::from_shape_fn(x.raw_dim(), |_| {
                        if rng.next_f64_open0() as f32 > *p {
                            keep
                        } else {
                            0.0
                        }
                    });
                    (&x * &mask, None, Some(mask))
                }
                Layer::Dropout(_) => (x.clone(), None, None),
            };
            acts.push(std::mem::replace(&mut x, y));
            bn.push(cache);
            masks.push(mask);
        }
        let (out, norms) = if self.config.normalize {
            normalize(x.view())
        } else {
            let n = vec![1.0; x.nrows()];
            (x.clone(), n)
        };
        acts.push(x);
        Trace {
            feeds,
            acts,
            bn,
            masks,
            out,
            norms,
        }
    }

    /// Inference-mode forward (running statistics, no dropout), as the extension computes it.
    pub fn forward_eval(&self, feeds: &[Feed]) -> Array2<f32> {
        let mut x = self.concat(feeds);
        for layer in &self.layers {
            x = match layer {
                Layer::Linear(l) => l.forward(x.view()),
                Layer::BatchNorm(b) => b.forward_eval(x.view()),
                Layer::Relu => x.mapv(|v| v.max(0.0)),
                Layer::Dropout(_) => x,
            };
        }
        if self.config.normalize {
            normalize(x.view()).0
        } else {
            x
        }
    }

    /// Accumulates every parameter's gradient from d(loss)/d(output).
    pub fn backward(&mut self, t: &Trace, dout: ArrayView2<f32>) {
        let mut d = if self.config.normalize {
            normalize_backward(t.out.view(), &t.norms, dout)
        } else {
            dout.to_owned()
        };
        for (i, layer) in self.layers.iter_mut().enumerate().rev() {
            let x = t.acts[i].view();
            d = match layer {
                Layer::Linear(l) => l.backward(x, d.view()),
                Layer::BatchNorm(b) => b.backward(t.bn[i].as_ref().expect("train cache"), d.view()),
                Layer::Relu => {
                    d.zip_mut_with(&x, |g, &v| {
                        if v <= 0.0 {
                            *g = 0.0
                        }
                    });
                    d
                }
                Layer::Dropout(_) => match &t.masks[i] {
                    Some(m) => d * m,
                    None => d,
                },
            };
        }
        let mut col = 0;
        for (block, feed) in self.blocks.iter_mut().zip(&t.feeds) {
            let width = match block {
                Block::Embedding(e) | Block::Bag(e) => e.dim(),
                Block::Dense(l) => l.w.shape[0],
            };
            let part = d.slice(s![.., col..col + width]);
            match (block, feed) {
                (Block::Embedding(e), Feed::Ids(ids)) => e.lookup_backward(ids, part),
                (Block::Bag(e), Feed::Bags(bags)) => e.bag_backward(bags, part),
                (Block::Dense(l), Feed::Dense(x)) => {
                    l.backward(x.view(), part);
                }
                _ => unreachable!("checked in forward"),
            }
            col += width;
        }
    }

    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut out: Vec<&mut Param> = Vec::new();
        for b in &mut self.blocks {
            match b {
                Block::Embedding(e) | Block::Bag(e) => out.push(&mut e.table),
                Block::Dense(l) => {
                    out.push(&mut l.w);
                    out.push(&mut l.b);
                }
            }
        }
        for l in &mut self.layers {
            match l {
                Layer::Linear(l) => {
                    out.push(&mut l.w);
                    out.push(&mut l.b);
                }
                Layer::BatchNorm(b) => {
                    out.push(&mut b.gamma);
                    out.push(&mut b.beta);
                }
                Layer::Relu | Layer::Dropout(_) => {}
            }
        }
        out
    }

    /// (tensor name, shape, values) in the inference side's naming.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut out = Vec::new();
        let linear = |out: &mut Vec<_>, module: &str, l: &Linear| {
            out.push((format!("{module}.weight"), l.w.shape.clone(), l.w.w.clone()));
            out.push((format!("{module}.bias"), l.b.shape.clone(), l.b.w.clone()));
        };
        for (cfg, b) in self.config.inputs.iter().zip(&self.blocks) {
            match (cfg, b) {
                (InputConfig::Embedding { module, .. }, Block::Embedding(e))
                | (InputConfig::Bag { module, .. }, Block::Bag(e)) => out.push((
                    format!("{module}.weight"),
                    e.table.shape.clone(),
                    e.table.w.clone(),
                )),
                (InputConfig::Dense { module, .. }, Block::Dense(l)) => linear(&mut out, module, l),
                _ => unreachable!("built from this config"),
            }
        }
        for (cfg, l) in self.config.layers.iter().zip(&self.layers) {
            match (cfg, l) {
                (LayerConfig::Linear { module, .. }, Layer::Linear(l)) => {
                    linear(&mut out, module, l)
                }
                (LayerConfig::Batchnorm { module, .. }, Layer::BatchNorm(b)) => {
                    let n = vec![b.gamma.w.len()];
                    out.push((format!("{module}.weight"), n.clone(), b.gamma.w.clone()));
                    out.push((format!("{module}.bias"), n.clone(), b.beta.w.clone()));
                    out.push((
                        format!("{module}.running_mean"),
                        n.clone(),
                        b.running_mean.clone(),
                    ));
                    out.push((format!("{module}.running_var"), n, b.running_var.clone()));
                }
                _ => {}
            }
        }
        out
    }
}
