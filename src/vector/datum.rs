//! The `vector` datum: pgvector's on-disk layout and its Rust handles.
//!
//! Layout (identical to pgvector's `Vector`): 4-byte varlena header, `int16 dim`,
//! `int16 unused` (always 0), then `dim` × `float4`. Keeping the layout means a pgvector
//! table's heap bytes are readable as-is and the 8-byte header keeps the floats aligned.

use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{FromDatum, IntoDatum};
use std::marker::PhantomData;
use std::ptr::NonNull;

use super::errors;

#[repr(C)]
struct Header {
    vl_len_: i32,
    dim: i16,
    unused: i16,
}

const HEADER_SIZE: usize = std::mem::size_of::<Header>();

/// `VARATT_IS_4B_U` on a varlena's first byte: a 4-byte header, not compressed, not external.
#[inline]
fn is_plain_4b(first: u8) -> bool {
    if cfg!(target_endian = "little") {
        first & 0x03 == 0x00
    } else {
        first & 0xC0 == 0x00
    }
}

/// Declares a Rust handle as SQL type `vector` for pgrx's schema generator.
macro_rules! vector_sql_type {
    ($ty:ty, $ident:ty) => {
        unsafe impl pgrx::pgrx_sql_entity_graph::metadata::SqlTranslatable for $ty {
            const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!($ident);
            const TYPE_ORIGIN: pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin =
                pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin::External;
            const ARGUMENT_SQL: Result<
                pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef,
                pgrx::pgrx_sql_entity_graph::metadata::ArgumentError,
            > = Ok(pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef::literal("vector"));
            const RETURN_SQL: Result<
                pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef,
                pgrx::pgrx_sql_entity_graph::metadata::ReturnsError,
            > = Ok(pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef::One(
                pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef::literal("vector"),
            ));
        }
    };
}

/// A detoasted `vector` argument, valid for the function call it was passed to.
pub struct Vector<'a> {
    header: NonNull<Header>,
    _lifetime: PhantomData<&'a [f32]>,
}

impl<'a> Vector<'a> {
    /// # Safety
    /// `datum` must be a non-null `vector` datum.
    pub unsafe fn from_datum_unchecked(datum: pg_sys::Datum) -> Self {
        // `pg_detoast_datum`'s own test, made here: a value with a plain 4-byte header is used
        // in place, and only a short-header, compressed or out-of-line one costs a call into
        // Postgres (an FFI guard each; the operator an index scan projects for every row it
        // returns takes two such arguments).
        let raw: *mut u8 = datum.cast_mut_ptr();
        let p = if is_plain_4b(*raw) {
            raw as *mut Header
        } else {
            pg_sys::pg_detoast_datum(raw as *mut pg_sys::varlena) as *mut Header
        };
        Vector {
            header: NonNull::new_unchecked(p),
            _lifetime: PhantomData,
        }
    }

    /// The floats of a `vector` stored at `raw` with a plain 4-byte header whose size is
    /// consistent with its `dim` and fits in `room` bytes; `None` for any other form (short
    /// header, compressed, out of line) or an inconsistent one. Reads only the bytes it
    /// checks; never calls into Postgres, so it may run inside [`crate::storage::unguarded`]
    /// sequences.
    ///
    /// # Safety
    /// `raw` must be readable for `room` bytes for the lifetime `'a`.
    #[inline]
    pub unsafe fn plain_in_place(raw: *const u8, room: usize) -> Option<&'a [f32]> {
        if room < HEADER_SIZE || !is_plain_4b(*raw) {
            return None;
        }
        let h = std::ptr::read_unaligned(raw as *const Header);
        let size = if cfg!(target_endian = "little") {
            (h.vl_len_ as u32 >> 2) as usize
        } else {
            (h.vl_len_ as u32 & 0x3FFF_FFFF) as usize
        };
        let dim = usize::try_from(h.dim).ok()?;
        if size > room || size != HEADER_SIZE + 4 * dim || (raw as usize) % 4 != 0 {
            return None;
        }
        Some(std::slice::from_raw_parts(
            raw.add(HEADER_SIZE) as *const f32,
            dim,
        ))
    }

    #[inline]
    pub fn dim(&self) -> usize {
        unsafe { self.header.as_ref().dim as usize }
    }

    #[inline]
    pub fn as_slice(&self) -> &'a [f32] {
        unsafe {
            let data = (self.header.as_ptr() as *const u8).add(HEADER_SIZE) as *const f32;
            std::slice::from_raw_parts(data, self.dim())
        }
    }
}

impl FromDatum for Vector<'_> {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null || datum.is_null() {
            None
        } else {
            Some(Self::from_datum_unchecked(datum))
        }
    }
}

unsafe impl<'fcx> ArgAbi<'fcx> for Vector<'fcx> {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        arg.unbox_arg_using_from_datum()
            .unwrap_or_else(|| panic!("argument {index} must not be null"))
    }
}

vector_sql_type!(Vector<'_>, Vector<'static>);

/// A freshly palloc'd `vector` in the current memory context, returned to Postgres.
pub struct VectorBuf {
    header: NonNull<Header>,
}

impl VectorBuf {
    /// A zero vector of `dim` dimensions; `dim` must already be checked.
    pub fn zeroed(dim: usize) -> Self {
        debug_assert!(dim >= 1 && dim <= recall_core::vector_text::VECTOR_MAX_DIM);
        let size = HEADER_SIZE + dim * std::mem::size_of::<f32>();
        unsafe {
            let p = pg_sys::palloc0(size) as *mut Header;
            pgrx::set_varsize_4b(p as *mut pg_sys::varlena, size as i32);
            (*p).dim = dim as i16;
            VectorBuf {
                header: NonNull::new_unchecked(p),
            }
        }
    }

    /// Copies `values` into a new vector after checking the dimension count.
    pub fn from_slice(values: &[f32]) -> Self {
        errors::check_dim(values.len());
        let mut v = Self::zeroed(values.len());
        v.as_mut_slice().copy_from_slice(values);
        v
    }

    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        unsafe {
            let dim = self.header.as_ref().dim as usize;
            let data = (self.header.as_ptr() as *mut u8).add(HEADER_SIZE) as *mut f32;
            std::slice::from_raw_parts_mut(data, dim)
        }
    }

    pub fn into_datum_raw(self) -> pg_sys::Datum {
        pg_sys::Datum::from(self.header.as_ptr())
    }
}

impl IntoDatum for VectorBuf {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(self.into_datum_raw())
    }

    fn type_oid() -> pg_sys::Oid {
        vector_type_oid()
    }
}

unsafe impl BoxRet for VectorBuf {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
        fcinfo.return_raw_datum(self.into_datum_raw())
    }
}

vector_sql_type!(VectorBuf, VectorBuf);

/// The OID of type `vector` in the extension's schema, looked up through the extension so a
/// same-named type elsewhere on the search path is never picked. Not cached: the extension can
/// be dropped and re-created within one backend's life.
pub fn vector_type_oid() -> pg_sys::Oid {
    Spi::get_one::<pg_sys::Oid>(
        "SELECT t.oid FROM pg_type t JOIN pg_depend d ON d.objid = t.oid AND d.classid = 'pg_type'::regclass \
         JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_recall' WHERE t.typname = 'vector'",
    )
    .ok()
    .flatten()
    .unwrap_or(pg_sys::InvalidOid)
}
