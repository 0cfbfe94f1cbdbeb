//! What both access methods read from an index's definition: the metric of its operator
//! class, the dimensions of its column, and how a vector is prepared for that metric.

use pgrx::pg_sys;
use pgrx::prelude::*;
use recall_core::distance::Metric;

/// The metric an index was built for, read from its operator class: support function 1 is
/// the distance (pgvector's choice of functions), and a support function 2 (`vector_norm`)
/// means the opclass normalises, i.e. cosine.
pub unsafe fn opclass_metric(index: pg_sys::Relation) -> Metric {
    let proc1 = pg_sys::index_getprocid(index, 1, 1);
    let has_norm = pg_sys::index_getprocid(index, 1, 2) != pg_sys::InvalidOid;
    let name = pg_sys::get_func_name(proc1);
    let name = if name.is_null() {
        String::new()
    } else {
        std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned()
    };
    match name.as_str() {
        "vector_l2_squared_distance" => Metric::L2,
        "vector_negative_inner_product" if has_norm => Metric::Cosine,
        "vector_negative_inner_product" => Metric::InnerProduct,
        "l1_distance" => Metric::L1,
        other => error!("unsupported distance function \"{other}\" in operator class"),
    }
}

/// Prepares a vector for the index: cosine indexes store and search unit vectors. Returns
/// `None` for a vector the index skips (a zero vector under cosine has no direction).
pub fn prepare(metric: Metric, v: &[f32]) -> Option<Vec<f32>> {
    if metric != Metric::Cosine {
        return Some(v.to_vec());
    }
    let norm = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return None;
    }
    Some(v.iter().map(|&x| (x as f64 / norm) as f32).collect())
}

/// Dimensions of the indexed column, from its typmod, with pgvector's errors.
pub unsafe fn index_dims(index: pg_sys::Relation, am: &str, max: usize) -> usize {
    let att = (*(*index).rd_att).attrs.as_slice(1)[0];
    let typmod = att.atttypmod;
    if typmod < 1 {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "column does not have dimensions"
        );
    }
    let dims = typmod as usize;
    if dims > max {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("column cannot have more than {max} dimensions for {am} index")
        );
    }
    dims
}

pub fn metric_code(m: Metric) -> u8 {
    match m {
        Metric::L2 => 1,
        Metric::InnerProduct => 2,
        Metric::Cosine => 3,
        Metric::L1 => 4,
    }
}

pub fn metric_from_code(c: u8) -> Option<Metric> {
    Some(match c {
        1 => Metric::L2,
        2 => Metric::InnerProduct,
        3 => Metric::Cosine,
        4 => Metric::L1,
        _ => return None,
    })
}

pub fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::L2 => "l2",
        Metric::InnerProduct => "inner_product",
        Metric::Cosine => "cosine",
        Metric::L1 => "l1",
    }
}

pub unsafe fn relname(rel: pg_sys::Relation) -> String {
    std::ffi::CStr::from_ptr((*(*rel).rd_rel).relname.data.as_ptr())
        .to_string_lossy()
        .into_owned()
}
