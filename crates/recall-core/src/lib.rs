pub mod distance;
pub mod fasthash;
pub mod hnsw;
pub mod item;
pub mod ivf;
pub mod nearest;
pub mod rng;
pub mod vector_text;
