//! Measuring indexes: `recall.evaluate` and `recall.evaluate_curve`.

pub mod evaluate;
#[cfg(any(test, feature = "pg_test"))]
mod tests;
