//! Text and binary I/O and the typmod input function of `vector`.

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::{CStr, CString};

use super::datum::{Vector, VectorBuf};
use super::errors;
use recall_core::vector_text::{self, VECTOR_MAX_DIM};

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_in(input: &CStr, _typioparam: pg_sys::Oid, typmod: i32) -> VectorBuf {
    let lit = input.to_string_lossy();
    let values = match vector_text::parse(&lit, VECTOR_MAX_DIM) {
        Ok(v) => v,
        Err(e) => errors::report_parse_error(e, &lit),
    };
    errors::check_dim(values.len());
    errors::check_expected_dim(typmod, values.len());
    VectorBuf::from_slice(&values)
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_out(v: Vector<'_>) -> CString {
    // The text never contains a NUL byte: it is digits, signs, '.', 'e', '[', ']' and ','.
    CString::new(vector_text::format(v.as_slice())).unwrap()
}

/// `vector(n)`: exactly one modifier, 1..=16000.
#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_typmod_in(fcinfo: pg_sys::FunctionCallInfo) -> i32 {
    unsafe {
        let arr = pg_sys::pg_detoast_datum((*fcinfo).args.as_slice(1)[0].value.cast_mut_ptr())
            as *mut pg_sys::ArrayType;
        let mut n: i32 = 0;
        let tl = pg_sys::ArrayGetIntegerTypmods(arr, &mut n);
        if n != 1 {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "invalid type modifier"
            );
        }
        let t = *tl;
        if t < 1 {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "dimensions for type vector must be at least 1"
            );
        }
        if t as usize > VECTOR_MAX_DIM {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("dimensions for type vector cannot exceed {VECTOR_MAX_DIM}")
            );
        }
        t
    }
}

/// Binary input: int16 dim, int16 unused (must be 0), dim × float4, big-endian.
#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_recv(buf: pgrx::Internal, _typioparam: pg_sys::Oid, typmod: i32) -> VectorBuf {
    unsafe {
        let buf = buf
            .unwrap()
            .unwrap()
            .cast_mut_ptr::<pg_sys::StringInfoData>();
        let dim = pg_sys::pq_getmsgint(buf, 2) as u16 as i16;
        let unused = pg_sys::pq_getmsgint(buf, 2) as u16 as i16;
        let dim = if dim < 0 { 0 } else { dim as usize };
        errors::check_dim(dim);
        errors::check_expected_dim(typmod, dim);
        if unused != 0 {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("expected unused to be 0, not {unused}")
            );
        }
        // One copy for all elements (it raises "insufficient data left in message" as
        // pq_getmsgfloat4 would): a call per element crosses pgrx's FFI guard each time,
        // which cost ~60 µs per 784-dimension query parameter.
        let mut v = VectorBuf::zeroed(dim);
        let out = v.as_mut_slice();
        pg_sys::pq_copymsgbytes(buf, out.as_mut_ptr().cast(), (dim * 4) as i32);
        for x in out {
            *x = f32::from_bits(u32::from_be(x.to_bits()));
            errors::check_element(*x);
        }
        v
    }
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn vector_send(v: Vector<'_>) -> Vec<u8> {
    let x = v.as_slice();
    let mut out = Vec::with_capacity(4 + 4 * x.len());
    out.extend_from_slice(&(x.len() as i16).to_be_bytes());
    out.extend_from_slice(&0i16.to_be_bytes());
    for f in x {
        out.extend_from_slice(&f.to_bits().to_be_bytes());
    }
    out
}
