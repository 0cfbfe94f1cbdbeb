//! Building towers from a config and a safetensors file: every tensor the config names is
//! checked for presence, float dtype, shape and finiteness, and errors name the tensor.

use ndarray::{Array1, Array2};

use super::config::{Config, InputConfig, LayerConfig, Side, TowerConfig};
use super::forward::{Input, InputKind, Layer, Tower};
use super::safetensors::SafeTensors;
use super::TowerError;

/// The metadata key under which the exporters store the config.
pub const CONFIG_METADATA_KEY: &str = "pg_recall.config";

/// A loaded two-tower model: either tower may be absent.
#[derive(Debug)]
pub struct Model {
    pub config: Config,
    pub user: Option<Tower>,
    pub item: Option<Tower>,
}

impl Model {
    /// Parses the weights and the config (the given one, else the file's metadata).
    pub fn load(weights: &[u8], config: Option<&str>) -> Result<Model, TowerError> {
        let st = SafeTensors::parse(weights)?;
        let config = match config {
            Some(c) => Config::parse(c)?,
            None => match st.metadata.get(CONFIG_METADATA_KEY) {
                Some(c) => Config::parse(c)?,
                None => {
                    return Err(TowerError::Invalid(format!(
                        "no model config given and the safetensors metadata has no \"{CONFIG_METADATA_KEY}\" entry"
                    )))
                }
            },
        };
        let tensors = Tensors { st: &st };
        let user = config
            .tower(Side::User)
            .map(|t| tensors.tower(Side::User, t))
            .transpose()?;
        let item = config
            .tower(Side::Item)
            .map(|t| tensors.tower(Side::Item, t))
            .transpose()?;
        Ok(Model { config, user, item })
    }

    pub fn tower(&self, side: Side) -> Option<&Tower> {
        match side {
            Side::User => self.user.as_ref(),
            Side::Item => self.item.as_ref(),
        }
    }
}

struct Tensors<'s, 'a> {
    st: &'s SafeTensors<'a>,
}

impl Tensors<'_, '_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, TowerError> {
        let t = self.st.tensors.get(name).ok_or_else(|| {
            TowerError::Invalid(format!("tensor \"{name}\" is missing from the weights"))
        })?;
        if t.shape != shape {
            return Err(TowerError::Invalid(format!(
                "tensor \"{name}\" has shape {:?}, the config expects {shape:?}",
                t.shape
            )));
        }
        let v = t.to_f32().ok_or_else(|| {
            TowerError::Invalid(format!(
                "tensor \"{name}\" has dtype {}; weights must be F32, F16 or BF16",
                t.dtype.name()
            ))
        })?;
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(TowerError::Invalid(format!(
                "tensor \"{name}\" holds a non-finite value at flat index {i}"
            )));
        }
        Ok(v)
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Array2<f32>, TowerError> {
        let v = self.get(name, &[rows, cols])?;
        Ok(Array2::from_shape_vec((rows, cols), v).expect("shape checked"))
    }

    fn vector(&self, name: &str, len: usize) -> Result<Array1<f32>, TowerError> {
        Ok(Array1::from(self.get(name, &[len])?))
    }

    fn linear(
        &self,
        module: &str,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> Result<(Array2<f32>, Option<Array1<f32>>), TowerError> {
        let w = self.matrix(&format!("{module}.weight"), out_dim, in_dim)?;
        let b = bias
            .then(|| self.vector(&format!("{module}.bias"), out_dim))
            .transpose()?;
        Ok((w, b))
    }

    fn tower(&self, side: Side, t: &TowerConfig) -> Result<Tower, TowerError> {
        let mut inputs = Vec::with_capacity(t.inputs.len());
        for i in &t.inputs {
            let kind = match i {
                InputConfig::Embedding {
                    module,
                    vocab,
                    dim,
                    oov_row,
                    ..
                } => InputKind::Embedding {
                    table: self.matrix(&format!("{module}.weight"), *vocab, *dim)?,
                    oov_row: *oov_row,
                },
                InputConfig::Bag {
                    module,
                    vocab,
                    dim,
                    oov_row,
                    ..
                } => InputKind::Bag {
                    table: self.matrix(&format!("{module}.weight"), *vocab, *dim)?,
                    oov_row: *oov_row,
                },
                InputConfig::Dense {
                    module,
                    in_dim,
                    out_dim,
                    bias,
                    ..
                } => {
                    let (w, b) = self.linear(module, *in_dim, *out_dim, *bias)?;
                    InputKind::Dense { w, b }
                }
            };
            inputs.push(Input {
                name: i.input().to_owned(),
                kind,
            });
        }
        let mut layers = Vec::with_capacity(t.layers.len());
        for l in &t.layers {
            match l {
                LayerConfig::Linear {
                    module,
                    in_dim,
                    out_dim,
                    bias,
                } => {
                    let (w, b) = self.linear(module, *in_dim, *out_dim, *bias)?;
                    layers.push(Layer::Linear { w, b });
                }
                LayerConfig::Batchnorm { module, dim, eps } => {
                    let gamma = self.vector(&format!("{module}.weight"), *dim)?;
                    let beta = self.vector(&format!("{module}.bias"), *dim)?;
                    let mean = self.vector(&format!("{module}.running_mean"), *dim)?;
                    let var = self.vector(&format!("{module}.running_var"), *dim)?;
                    if let Some(j) = var.iter().position(|&v| (v as f64) + eps <= 0.0) {
                        return Err(TowerError::Invalid(format!(
                            "tensor \"{module}.running_var\" is not positive at index {j}"
                        )));
                    }
                    layers.push(Layer::batchnorm(&gamma, &beta, &mean, &var, *eps));
                }
                LayerConfig::Relu => layers.push(Layer::Relu),
                LayerConfig::Dropout { .. } => {}
            }
        }
        Ok(Tower::new(
            side,
            inputs,
            layers,
            t.normalize,
            t.output_dim(),
        ))
    }
}
