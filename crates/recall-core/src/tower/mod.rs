//! Two-tower inference: the safetensors container, the model config, and the forward pass
//! of the user and item towers (embeddings, dense features, mean-pooled bags, an MLP with
//! eval-mode BatchNorm, L2 normalisation).

pub mod config;
pub mod forward;
pub mod model;
pub mod reference;
pub mod safetensors;

pub use config::{Config, Side};
pub use forward::{Tower, Value};
pub use model::{Model, CONFIG_METADATA_KEY};

/// Why a model could not be loaded or run. The glue maps each kind to an SQLSTATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TowerError {
    /// The weights file is not a readable safetensors container.
    Corrupt(String),
    /// The config, or the weights measured against it, are wrong.
    Invalid(String),
    /// A request's arguments do not fit the model.
    Input(String),
}

impl std::fmt::Display for TowerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TowerError::Corrupt(m) | TowerError::Invalid(m) | TowerError::Input(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for TowerError {}
