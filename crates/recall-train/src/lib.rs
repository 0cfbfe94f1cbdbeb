//! pg_recall's two-tower trainer: the reference architecture (the same config the extension
//! loads), trained with InfoNCE over in-batch negatives, a temperature, and the logQ
//! sampling-bias correction. Gradients are written by hand on ndarray: the model is small,
//! the math is explicit and checked against finite differences, training is deterministic
//! for a seed, and the forward pass mirrors `recall_core::tower` exactly.

pub mod adam;
pub mod data;
pub mod layers;
pub mod loss;
pub mod tower;
pub mod train;
