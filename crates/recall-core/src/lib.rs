pub mod distance;
pub mod vector_text;
