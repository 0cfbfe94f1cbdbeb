//! pgvector's checks and their exact messages and SQLSTATEs, in one place so every entry point
//! reports the same way.

use pgrx::prelude::*;
use recall_core::vector_text::{ParseError, VECTOR_MAX_DIM};

pub fn data_exception(msg: String) -> ! {
    raise(PgSqlErrorCode::ERRCODE_DATA_EXCEPTION, msg, None)
}

/// pgvector's `CheckDim`.
pub fn check_dim(dim: usize) {
    if dim < 1 {
        data_exception("vector must have at least 1 dimension".into());
    }
    if dim > VECTOR_MAX_DIM {
        data_exception(format!(
            "vector cannot have more than {VECTOR_MAX_DIM} dimensions"
        ));
    }
}

/// pgvector's `CheckExpectedDim`: a typmod of -1 means "any".
pub fn check_expected_dim(typmod: i32, dim: usize) {
    if typmod != -1 && typmod as i64 != dim as i64 {
        data_exception(format!("expected {typmod} dimensions, not {dim}"));
    }
}

/// pgvector's `CheckDims` for binary operators.
#[inline]
pub fn check_same_dims(a: usize, b: usize) {
    if a != b {
        data_exception(format!("different vector dimensions {a} and {b}"));
    }
}

/// pgvector's `CheckElement`.
#[inline]
pub fn check_element(v: f32) {
    if let Err(e) = recall_core::vector_text::check_element(v) {
        report_parse_error(e, "");
    }
}

pub fn overflow() -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
        "value out of range: overflow".into(),
        None,
    )
}

pub fn underflow() -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
        "value out of range: underflow".into(),
        None,
    )
}

/// Raises an `ERROR` with `code`, `msg` and an optional detail line.
pub fn raise(code: PgSqlErrorCode, msg: String, detail: Option<&str>) -> ! {
    let mut report = pgrx::pg_sys::panic::ErrorReport::new(code, msg, "pg_recall");
    if let Some(d) = detail {
        report = report.set_detail(d);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!()
}

/// Maps a core parse error to pgvector's report for literal `lit`.
pub fn report_parse_error(e: ParseError, lit: &str) -> ! {
    use PgSqlErrorCode::*;
    match e {
        ParseError::Syntax { detail } => raise(
            ERRCODE_INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type vector: \"{lit}\""),
            detail,
        ),
        ParseError::Empty => data_exception("vector must have at least 1 dimension".into()),
        ParseError::TooManyDimensions => raise(
            ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("vector cannot have more than {VECTOR_MAX_DIM} dimensions"),
            None,
        ),
        ParseError::OutOfRange(tok) => raise(
            ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            format!("\"{tok}\" is out of range for type vector"),
            None,
        ),
        ParseError::NaN => data_exception("NaN not allowed in vector".into()),
        ParseError::Infinite => data_exception("infinite value not allowed in vector".into()),
    }
}
