//! The forward pass of one tower for one request: input blocks → concat → MLP → optional L2
//! normalisation, in f32 as PyTorch computes it in eval mode.
//!
//! A request is one row, so every layer is a matrix-vector product; each output is a dot
//! product of a contiguous weight row (`nn.Linear` stores [out, in]) with the activations,
//! done by the runtime-dispatched SIMD kernel the distance functions use.

use ndarray::{Array1, Array2};

use super::config::Side;
use super::TowerError;
use crate::distance;

/// One SQL argument's value.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    Null,
    Id(i64),
    Ids(&'a [i64]),
    Dense(&'a [f32]),
}

#[derive(Debug)]
pub(super) enum InputKind {
    Embedding {
        table: Array2<f32>,
        oov_row: Option<usize>,
    },
    Bag {
        table: Array2<f32>,
        oov_row: Option<usize>,
    },
    Dense {
        w: Array2<f32>,
        b: Option<Array1<f32>>,
    },
}

#[derive(Debug)]
pub(super) struct Input {
    pub name: String,
    pub kind: InputKind,
}

#[derive(Debug)]
pub(super) enum Layer {
    Linear {
        w: Array2<f32>,
        b: Option<Array1<f32>>,
    },
    /// Eval-mode BatchNorm folded to `x · scale + shift`.
    Affine {
        scale: Array1<f32>,
        shift: Array1<f32>,
    },
    Relu,
}

impl Layer {
    pub(super) fn batchnorm(
        gamma: &Array1<f32>,
        beta: &Array1<f32>,
        mean: &Array1<f32>,
        var: &Array1<f32>,
        eps: f64,
    ) -> Layer {
        let scale: Array1<f32> = gamma
            .iter()
            .zip(var)
            .map(|(&g, &v)| (g as f64 / (v as f64 + eps).sqrt()) as f32)
            .collect();
        let shift = beta
            .iter()
            .zip(mean)
            .zip(&scale)
            .map(|((&b, &m), &s)| (b as f64 - m as f64 * s as f64) as f32)
            .collect();
        Layer::Affine { scale, shift }
    }
}

#[derive(Debug)]
pub struct Tower {
    side: Side,
    inputs: Vec<Input>,
    layers: Vec<Layer>,
    normalize: bool,
    output_dim: usize,
    concat_dim: usize,
}

fn bad_input(msg: String) -> TowerError {
    TowerError::Input(msg)
}

fn row<'t>(
    table: &'t Array2<f32>,
    oov_row: Option<usize>,
    id: i64,
    what: &str,
) -> Result<&'t [f32], TowerError> {
    let vocab = table.nrows();
    let r = match usize::try_from(id) {
        Ok(r) if r < vocab => r,
        _ => oov_row.ok_or_else(|| {
            bad_input(format!(
                "{what} {id} is outside the model's vocabulary (0..{}) and the config sets no oov_row",
                vocab - 1
            ))
        })?,
    };
    Ok(table.row(r).to_slice().expect("standard layout"))
}

fn matvec(w: &Array2<f32>, b: Option<&Array1<f32>>, x: &[f32], out: &mut Vec<f32>) {
    let rows = w
        .as_slice()
        .expect("standard layout")
        .chunks_exact(w.ncols());
    match b {
        Some(b) => out.extend(rows.zip(b).map(|(r, &b)| distance::dot(r, x) + b)),
        None => out.extend(rows.map(|r| distance::dot(r, x))),
    }
}

impl Tower {
    pub(super) fn new(
        side: Side,
        inputs: Vec<Input>,
        layers: Vec<Layer>,
        normalize: bool,
        output_dim: usize,
    ) -> Tower {
        let concat_dim = inputs
            .iter()
            .map(|i| match &i.kind {
                InputKind::Embedding { table, .. } | InputKind::Bag { table, .. } => table.ncols(),
                InputKind::Dense { w, .. } => w.nrows(),
            })
            .sum();
        Tower {
            side,
            inputs,
            layers,
            normalize,
            output_dim,
            concat_dim,
        }
    }

    pub fn output_dim(&self) -> usize {
        self.output_dim
    }

    pub fn input_names(&self) -> impl Iterator<Item = &str> {
        self.inputs.iter().map(|i| i.name.as_str())
    }

    /// The number of weights (embedding rows included).
    pub fn parameters(&self) -> usize {
        let inputs: usize = self
            .inputs
            .iter()
            .map(|i| match &i.kind {
                InputKind::Embedding { table, .. } | InputKind::Bag { table, .. } => table.len(),
                InputKind::Dense { w, b } => w.len() + b.as_ref().map_or(0, |b| b.len()),
            })
            .sum();
        let layers: usize = self
            .layers
            .iter()
            .map(|l| match l {
                Layer::Linear { w, b } => w.len() + b.as_ref().map_or(0, |b| b.len()),
                Layer::Affine { scale, shift } => scale.len() + shift.len(),
                Layer::Relu => 0,
            })
            .sum();
        inputs + layers
    }

    /// The expected length of the dense `features` input, if the tower has one.
    pub fn features_len(&self) -> Option<usize> {
        self.inputs.iter().find_map(|i| match &i.kind {
            InputKind::Dense { w, .. } if i.name == "features" => Some(w.ncols()),
            _ => None,
        })
    }

    /// Runs the tower. `args` names each SQL argument; an argument the model has no input for
    /// must be NULL, and an input the model has must be given (except a bag, which may be
    /// NULL or empty: zeros, as an empty `nn.EmbeddingBag` bag gives).
    pub fn forward(&self, args: &[(&str, Value)]) -> Result<Vec<f32>, TowerError> {
        let side = self.side.name();
        for (name, v) in args {
            if !matches!(v, Value::Null) && !self.inputs.iter().any(|i| i.name == *name) {
                return Err(bad_input(format!(
                    "the model's {side} tower has no input \"{name}\"; pass NULL"
                )));
            }
        }
        let mut x = Vec::with_capacity(self.concat_dim);
        for input in &self.inputs {
            let name = input.name.as_str();
            let v = args
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(Value::Null, |(_, v)| *v);
            match (&input.kind, v) {
                (InputKind::Embedding { table, oov_row }, Value::Id(id)) => {
                    x.extend_from_slice(row(table, *oov_row, id, name)?)
                }
                (InputKind::Bag { table, .. }, Value::Null) => {
                    x.resize(x.len() + table.ncols(), 0.0)
                }
                (InputKind::Bag { table, oov_row }, Value::Ids(ids)) => {
                    let start = x.len();
                    x.resize(start + table.ncols(), 0.0);
                    let acc = &mut x[start..];
                    for &id in ids {
                        for (a, &w) in acc.iter_mut().zip(row(table, *oov_row, id, name)?) {
                            *a += w;
                        }
                    }
                    if !ids.is_empty() {
                        let n = ids.len() as f32;
                        acc.iter_mut().for_each(|a| *a /= n);
                    }
                }
                (InputKind::Dense { w, b }, Value::Dense(f)) => {
                    if f.len() != w.ncols() {
                        return Err(bad_input(format!(
                            "expected {} features, not {}",
                            w.ncols(),
                            f.len()
                        )));
                    }
                    if f.iter().any(|v| !v.is_finite()) {
                        return Err(bad_input(
                            "features must not contain NaN or infinity".into(),
                        ));
                    }
                    matvec(w, b.as_ref(), f, &mut x);
                }
                (_, Value::Null) => {
                    return Err(bad_input(format!(
                        "the model's {side} tower needs \"{name}\"; it must not be NULL"
                    )))
                }
                (_, v) => {
                    return Err(bad_input(format!(
                        "\"{name}\" got a value of the wrong kind ({v:?})"
                    )))
                }
            }
        }
        let mut y = Vec::with_capacity(self.concat_dim);
        for layer in &self.layers {
            match layer {
                Layer::Linear { w, b } => {
                    y.clear();
                    matvec(w, b.as_ref(), &x, &mut y);
                    std::mem::swap(&mut x, &mut y);
                }
                Layer::Affine { scale, shift } => {
                    for ((v, &s), &t) in x.iter_mut().zip(scale).zip(shift) {
                        *v = *v * s + t;
                    }
                }
                Layer::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
            }
        }
        if self.normalize {
            // F.normalize: divide by max(‖x‖, 1e-12).
            let norm = distance::dot(&x, &x).sqrt().max(1e-12);
            x.iter_mut().for_each(|v| *v /= norm);
        }
        Ok(x)
    }
}
