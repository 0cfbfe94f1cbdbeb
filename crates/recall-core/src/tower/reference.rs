//! The design's reference two-tower, as a config: the same module names and layer order as
//! `examples/pytorch/two_tower.py`, so a model trained by either trainer loads the same way.
//!
//! User tower: user_id embedding (64) ‖ Linear(features → 64) ‖ mean of behaviour item-id
//! embeddings (64) → [Linear 256, BatchNorm, ReLU, Dropout] → [Linear 128, BatchNorm, ReLU,
//! Dropout] → Linear 128 → L2 normalise. Item tower: item_id (64) ‖ category (32) ‖ mean of
//! tag embeddings (32) ‖ Linear(features → 64) → the same MLP shape.

use std::collections::BTreeMap;

use super::config::{
    Config, InputConfig, LayerConfig, TowerConfig, Towers, FORMAT, FORMAT_VERSION,
};
use super::safetensors;
use super::CONFIG_METADATA_KEY;
use crate::rng::SplitMix64;

#[derive(Clone, Debug)]
pub struct Sizes {
    pub users: usize,
    pub items: usize,
    pub categories: usize,
    pub tags: usize,
    pub user_features: usize,
    pub item_features: usize,
    /// Hidden widths of the MLP, then the output width.
    pub hidden: Vec<usize>,
    pub output: usize,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            users: 1000,
            items: 2000,
            categories: 20,
            tags: 100,
            user_features: 8,
            item_features: 8,
            hidden: vec![256, 128],
            output: 128,
        }
    }
}

fn embedding(input: &str, module: String, vocab: usize, dim: usize) -> InputConfig {
    InputConfig::Embedding {
        input: input.into(),
        module,
        vocab,
        dim,
        oov_row: None,
    }
}

fn bag(input: &str, module: String, vocab: usize, dim: usize) -> InputConfig {
    InputConfig::Bag {
        input: input.into(),
        module,
        vocab,
        dim,
        oov_row: None,
    }
}

fn dense(module: String, in_dim: usize, out_dim: usize) -> InputConfig {
    InputConfig::Dense {
        input: "features".into(),
        module,
        in_dim,
        out_dim,
        bias: true,
    }
}

/// `nn.Sequential` numbering: each hidden block is Linear, BatchNorm1d, ReLU, Dropout.
fn mlp(prefix: &str, mut width: usize, hidden: &[usize], output: usize) -> Vec<LayerConfig> {
    let mut layers = Vec::new();
    let mut index = 0;
    let module = |index: &mut usize| {
        let m = format!("{prefix}.mlp.{index}");
        *index += 1;
        m
    };
    for &h in hidden {
        layers.push(LayerConfig::Linear {
            module: module(&mut index),
            in_dim: width,
            out_dim: h,
            bias: true,
        });
        layers.push(LayerConfig::Batchnorm {
            module: module(&mut index),
            dim: h,
            eps: 1e-5,
        });
        module(&mut index);
        layers.push(LayerConfig::Relu);
        module(&mut index);
        layers.push(LayerConfig::Dropout { p: Some(0.1) });
        width = h;
    }
    layers.push(LayerConfig::Linear {
        module: module(&mut index),
        in_dim: width,
        out_dim: output,
        bias: true,
    });
    layers
}

pub fn config(s: &Sizes) -> Config {
    let user_inputs = vec![
        embedding("user_id", "user_tower.user_id".into(), s.users, 64),
        dense("user_tower.features".into(), s.user_features, 64),
        bag("behavior", "user_tower.behavior".into(), s.items, 64),
    ];
    let item_inputs = vec![
        embedding("item_id", "item_tower.item_id".into(), s.items, 64),
        embedding("category", "item_tower.category".into(), s.categories, 32),
        bag("tags", "item_tower.tags".into(), s.tags, 32),
        dense("item_tower.features".into(), s.item_features, 64),
    ];
    Config {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        towers: Towers {
            user: Some(TowerConfig {
                inputs: user_inputs,
                layers: mlp("user_tower", 192, &s.hidden, s.output),
                normalize: true,
            }),
            item: Some(TowerConfig {
                inputs: item_inputs,
                layers: mlp("item_tower", 192, &s.hidden, s.output),
                normalize: true,
            }),
        },
    }
}

/// Every tensor a config reads, with its shape, in a stable order.
pub fn tensor_shapes(c: &Config) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    let linear = |out: &mut Vec<_>, module: &str, i: usize, o: usize, bias: bool| {
        out.push((format!("{module}.weight"), vec![o, i]));
        if bias {
            out.push((format!("{module}.bias"), vec![o]));
        }
    };
    for t in [&c.towers.user, &c.towers.item].into_iter().flatten() {
        for i in &t.inputs {
            match i {
                InputConfig::Embedding {
                    module, vocab, dim, ..
                }
                | InputConfig::Bag {
                    module, vocab, dim, ..
                } => out.push((format!("{module}.weight"), vec![*vocab, *dim])),
                InputConfig::Dense {
                    module,
                    in_dim,
                    out_dim,
                    bias,
                    ..
                } => linear(&mut out, module, *in_dim, *out_dim, *bias),
            }
        }
        for l in &t.layers {
            match l {
                LayerConfig::Linear {
                    module,
                    in_dim,
                    out_dim,
                    bias,
                } => linear(&mut out, module, *in_dim, *out_dim, *bias),
                LayerConfig::Batchnorm { module, dim, .. } => {
                    for p in ["weight", "bias", "running_mean", "running_var"] {
                        out.push((format!("{module}.{p}"), vec![*dim]));
                    }
                }
                LayerConfig::Relu | LayerConfig::Dropout { .. } => {}
            }
        }
    }
    out
}

/// A safetensors file of random weights for `c` with the config in its metadata: for tests
/// and benchmarks. Running variances are kept positive.
pub fn random_weights(c: &Config, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed);
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = tensor_shapes(c)
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let scale = 1.0 / (*shape.last().unwrap_or(&1) as f64).sqrt();
            let values = (0..n)
                .map(|_| {
                    let u = rng.next_f64_open0();
                    if name.ends_with("running_var") {
                        (0.5 + u) as f32
                    } else {
                        ((2.0 * u - 1.0) * scale) as f32
                    }
                })
                .collect();
            (name, shape, values)
        })
        .collect();
    let views: Vec<(&str, &[usize], &[f32])> = tensors
        .iter()
        .map(|(n, s, v)| (n.as_str(), s.as_slice(), v.as_slice()))
        .collect();
    let mut meta = BTreeMap::new();
    meta.insert(
        CONFIG_METADATA_KEY.to_string(),
        serde_json::to_string(c).expect("config"),
    );
    safetensors::write_f32(&views, &meta)
}
