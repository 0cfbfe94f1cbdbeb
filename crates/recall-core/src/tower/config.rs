//! The model config: which inputs each tower has, the layer list, and where each weight lives
//! in the safetensors file.
//!
//! Tensor names are PyTorch module paths: a block with `"module": "user_tower.mlp.0"` reads
//! `user_tower.mlp.0.weight` (and `.bias`, `.running_mean`, `.running_var` where the layer has
//! them), so a `state_dict()` saved as-is loads without renaming. Unknown fields are errors:
//! a misspelt key must not silently change the model.

use serde::{Deserialize, Serialize};

use super::TowerError;

pub const FORMAT: &str = "pg_recall.two_tower";
pub const FORMAT_VERSION: u32 = 1;
/// The `vector` type's limit; a tower's output becomes a `vector`.
pub const MAX_OUTPUT_DIM: usize = 16000;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub format: String,
    pub format_version: u32,
    pub towers: Towers,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Towers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<TowerConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<TowerConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TowerConfig {
    /// Concatenated in this order, as the PyTorch model's `torch.cat` does.
    pub inputs: Vec<InputConfig>,
    pub layers: Vec<LayerConfig>,
    #[serde(default)]
    pub normalize: bool,
}

/// One input block. `input` names the SQL argument it reads: `user_id`, `features`,
/// `behavior` (user tower); `item_id`, `category`, `tags`, `features` (item tower).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum InputConfig {
    /// One id → one row of `{module}.weight` [vocab, dim].
    Embedding {
        input: String,
        module: String,
        vocab: usize,
        dim: usize,
        /// Row used for ids outside 0..vocab; without it such ids are an error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        oov_row: Option<usize>,
    },
    /// A list of ids → the mean of their rows (`nn.EmbeddingBag(mode="mean")`); an empty or
    /// NULL list gives zeros, as PyTorch does for an empty bag.
    Bag {
        input: String,
        module: String,
        vocab: usize,
        dim: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        oov_row: Option<usize>,
    },
    /// A real[] of length `in` → `nn.Linear(in, out)`.
    Dense {
        input: String,
        module: String,
        #[serde(rename = "in")]
        in_dim: usize,
        #[serde(rename = "out")]
        out_dim: usize,
        #[serde(default = "yes")]
        bias: bool,
    },
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerConfig {
    Linear {
        module: String,
        #[serde(rename = "in")]
        in_dim: usize,
        #[serde(rename = "out")]
        out_dim: usize,
        #[serde(default = "yes")]
        bias: bool,
    },
    /// `nn.BatchNorm1d` in eval mode: running statistics, affine weight and bias.
    Batchnorm {
        module: String,
        dim: usize,
        #[serde(default = "default_eps")]
        eps: f64,
    },
    Relu,
    /// A no-op at inference; accepted so a config can mirror the PyTorch module list.
    Dropout {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        p: Option<f64>,
    },
}

fn default_eps() -> f64 {
    1e-5
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    User,
    Item,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::User => "user",
            Side::Item => "item",
        }
    }

    /// The inputs a tower may have and the block kind each one takes.
    fn allowed(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Side::User => &[
                ("user_id", "embedding"),
                ("features", "dense"),
                ("behavior", "bag"),
            ],
            Side::Item => &[
                ("item_id", "embedding"),
                ("category", "embedding"),
                ("tags", "bag"),
                ("features", "dense"),
            ],
        }
    }
}

impl InputConfig {
    pub fn input(&self) -> &str {
        match self {
            InputConfig::Embedding { input, .. }
            | InputConfig::Bag { input, .. }
            | InputConfig::Dense { input, .. } => input,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            InputConfig::Embedding { .. } => "embedding",
            InputConfig::Bag { .. } => "bag",
            InputConfig::Dense { .. } => "dense",
        }
    }

    pub fn out_dim(&self) -> usize {
        match self {
            InputConfig::Embedding { dim, .. } | InputConfig::Bag { dim, .. } => *dim,
            InputConfig::Dense { out_dim, .. } => *out_dim,
        }
    }
}

fn invalid(msg: String) -> TowerError {
    TowerError::Invalid(msg)
}

impl Config {
    pub fn parse(json: &str) -> Result<Config, TowerError> {
        let c: Config = serde_json::from_str(json)
            .map_err(|e| invalid(format!("invalid model config: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    pub fn tower(&self, side: Side) -> Option<&TowerConfig> {
        match side {
            Side::User => self.towers.user.as_ref(),
            Side::Item => self.towers.item.as_ref(),
        }
    }

    fn validate(&self) -> Result<(), TowerError> {
        if self.format != FORMAT {
            return Err(invalid(format!(
                "model config format is \"{}\", expected \"{FORMAT}\"",
                self.format
            )));
        }
        if self.format_version != FORMAT_VERSION {
            return Err(invalid(format!(
                "model config format_version {} is not supported (this pg_recall reads {FORMAT_VERSION})",
                self.format_version
            )));
        }
        if self.towers.user.is_none() && self.towers.item.is_none() {
            return Err(invalid(
                "model config has neither a user nor an item tower".into(),
            ));
        }
        for side in [Side::User, Side::Item] {
            if let Some(t) = self.tower(side) {
                t.validate(side)?;
            }
        }
        Ok(())
    }
}

impl TowerConfig {
    /// The width after each stage; errors name the layer whose sizes do not chain.
    fn validate(&self, side: Side) -> Result<(), TowerError> {
        let s = side.name();
        if self.inputs.is_empty() {
            return Err(invalid(format!("{s} tower has no inputs")));
        }
        let mut width = 0usize;
        for (i, inp) in self.inputs.iter().enumerate() {
            let Some(&(_, kind)) = side.allowed().iter().find(|(n, _)| *n == inp.input()) else {
                let names: Vec<_> = side.allowed().iter().map(|(n, _)| *n).collect();
                return Err(invalid(format!(
                    "{s} tower input \"{}\" is not one of {}",
                    inp.input(),
                    names.join(", ")
                )));
            };
            if self.inputs[..i].iter().any(|o| o.input() == inp.input()) {
                return Err(invalid(format!(
                    "{s} tower input \"{}\" appears twice",
                    inp.input()
                )));
            }
            if inp.kind() != kind {
                return Err(invalid(format!(
                    "{s} tower input \"{}\" must be of kind \"{kind}\", not \"{}\"",
                    inp.input(),
                    inp.kind()
                )));
            }
            match inp {
                InputConfig::Embedding {
                    vocab,
                    dim,
                    oov_row,
                    ..
                }
                | InputConfig::Bag {
                    vocab,
                    dim,
                    oov_row,
                    ..
                } => {
                    if *vocab == 0 || *dim == 0 {
                        return Err(invalid(format!(
                            "{s} tower input \"{}\": vocab and dim must be at least 1",
                            inp.input()
                        )));
                    }
                    if let Some(r) = oov_row {
                        if r >= vocab {
                            return Err(invalid(format!(
                                "{s} tower input \"{}\": oov_row {r} is outside the vocabulary of {vocab}",
                                inp.input()
                            )));
                        }
                    }
                }
                InputConfig::Dense {
                    in_dim, out_dim, ..
                } => {
                    if *in_dim == 0 || *out_dim == 0 {
                        return Err(invalid(format!(
                            "{s} tower input \"{}\": in and out must be at least 1",
                            inp.input()
                        )));
                    }
                }
            }
            width += inp.out_dim();
        }
        for (i, layer) in self.layers.iter().enumerate() {
            match layer {
                LayerConfig::Linear {
                    in_dim,
                    out_dim,
                    module,
                    ..
                } => {
                    if *in_dim != width {
                        return Err(invalid(format!(
                            "{s} tower layer {i} ({module}) takes {in_dim} inputs but receives {width}"
                        )));
                    }
                    if *out_dim == 0 {
                        return Err(invalid(format!(
                            "{s} tower layer {i} ({module}) has 0 outputs"
                        )));
                    }
                    width = *out_dim;
                }
                LayerConfig::Batchnorm { dim, module, eps } => {
                    if *dim != width {
                        return Err(invalid(format!(
                            "{s} tower layer {i} ({module}) normalises {dim} features but receives {width}"
                        )));
                    }
                    if !(eps.is_finite() && *eps >= 0.0) {
                        return Err(invalid(format!(
                            "{s} tower layer {i} ({module}): eps must be ≥ 0"
                        )));
                    }
                }
                LayerConfig::Relu | LayerConfig::Dropout { .. } => {}
            }
        }
        if width > MAX_OUTPUT_DIM {
            return Err(invalid(format!(
                "{s} tower outputs {width} dimensions; a vector holds at most {MAX_OUTPUT_DIM}"
            )));
        }
        Ok(())
    }

    pub fn output_dim(&self) -> usize {
        self.layers
            .iter()
            .rev()
            .find_map(|l| match l {
                LayerConfig::Linear { out_dim, .. } => Some(*out_dim),
                _ => None,
            })
            .unwrap_or_else(|| self.inputs.iter().map(|i| i.out_dim()).sum())
    }
}
