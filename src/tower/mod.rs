//! Two-tower inference in SQL: the model catalog (`recall.models`), the per-backend model
//! cache, and `recall.user_tower` / `recall.item_tower`. The forward pass itself is
//! `recall_core::tower`.

pub mod cache;
pub mod catalog;
pub mod infer;
#[cfg(any(test, feature = "pg_test"))]
mod tests;

use pgrx::prelude::*;
use recall_core::tower::TowerError;

/// Raises a core error as an `ERROR` with the SQLSTATE of its kind.
pub fn raise(context: &str, e: &TowerError) -> ! {
    let code = match e {
        TowerError::Corrupt(_) => PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
        TowerError::Invalid(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        TowerError::Input(_) => PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
    };
    let message = if context.is_empty() {
        e.to_string()
    } else {
        format!("{context}: {e}")
    };
    ereport!(ERROR, code, message);
}

/// The model name argument: NULL and empty names are errors.
pub fn model_name(name: Option<&str>) -> &str {
    match name {
        None => {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                "model name must not be NULL"
            );
        }
        Some("") => {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "model name must not be empty"
            );
        }
        Some(n) => n,
    }
}

pub fn init() {
    cache::init();
}
