pub mod distance;
pub mod fasthash;
pub mod hnsw;
pub mod rng;
pub mod vector_text;
