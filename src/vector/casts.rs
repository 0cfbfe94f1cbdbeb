//! Casts between `vector` and arrays, and the typmod coercion `vector(n)`.

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::datum::{Vector, VectorBuf};
use super::errors;

/// `vector(vector, typmod, explicit)`: applied on every assignment to a `vector(n)` column.
#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector(v: Vector<'_>, typmod: i32, _explicit: bool) -> VectorBuf {
    errors::check_expected_dim(typmod, v.dim());
    VectorBuf::from_slice(v.as_slice())
}

/// One C entry point for the `integer[]`, `real[]`, `double precision[]` and `numeric[]`
/// casts, dispatching on the array's element type as pgvector does.
#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn array_to_vector(fcinfo: pg_sys::FunctionCallInfo) -> VectorBuf {
    unsafe {
        let args = (*fcinfo).args.as_slice(3);
        let arr = pg_sys::pg_detoast_datum(args[0].value.cast_mut_ptr()) as *mut pg_sys::ArrayType;
        let typmod = args[1].value.value() as i32;
        if (*arr).ndim > 1 {
            errors::data_exception("array must be 1-D".into());
        }
        if pg_sys::array_contains_nulls(arr) {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                "array must not contain nulls"
            );
        }
        let elemtype = (*arr).elemtype;
        let (mut typlen, mut typbyval, mut typalign) = (0i16, false, 0 as std::ffi::c_char);
        pg_sys::get_typlenbyvalalign(elemtype, &mut typlen, &mut typbyval, &mut typalign);
        let mut elems: *mut pg_sys::Datum = std::ptr::null_mut();
        let mut n: i32 = 0;
        pg_sys::deconstruct_array(
            arr,
            elemtype,
            typlen.into(),
            typbyval,
            typalign,
            &mut elems,
            std::ptr::null_mut(),
            &mut n,
        );
        let n = n.max(0) as usize;
        errors::check_dim(n);
        errors::check_expected_dim(typmod, n);
        let elems = std::slice::from_raw_parts(elems, n);
        let mut out = VectorBuf::zeroed(n);
        for (o, d) in out.as_mut_slice().iter_mut().zip(elems) {
            *o = match elemtype {
                pg_sys::INT4OID => d.value() as i32 as f32,
                pg_sys::FLOAT4OID => f32::from_bits(d.value() as u32),
                pg_sys::FLOAT8OID => f64::from_bits(d.value() as u64) as f32,
                pg_sys::NUMERICOID => {
                    pgrx::direct_function_call::<f32>(pg_sys::numeric_float4, &[Some(*d)]).unwrap()
                }
                _ => errors::data_exception("unsupported array type".into()),
            };
            errors::check_element(*o);
        }
        out
    }
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_to_float4(v: Vector<'_>, _typmod: i32, _explicit: bool) -> Vec<f32> {
    v.as_slice().to_vec()
}
