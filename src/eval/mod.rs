//! Measuring indexes: `recall.evaluate` and `recall.evaluate_curve`, and the tests of the
//! build-time calibration (`crate::intent`) they measure.

#[cfg(any(test, feature = "pg_test"))]
mod calibration_tests;
pub mod evaluate;
#[cfg(any(test, feature = "pg_test"))]
mod tests;
