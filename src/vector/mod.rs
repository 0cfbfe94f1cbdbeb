//! The pgvector-compatible `vector` type. Its SQL objects are declared by hand in
//! `sql/vector.sql` so names, signatures, volatility and cast contexts match pgvector exactly.

pub mod aggregates;
pub mod casts;
pub mod datum;
pub mod errors;
pub mod io;
pub mod ops;

pub use datum::{Vector, VectorBuf};

mod tests;
