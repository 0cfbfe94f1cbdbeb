//! The buffer-manager and heap calls of the scans' hot paths, declared without pgrx's
//! per-call guard so that a *sequence* of them can share one.
//!
//! Every `pg_sys` function pgrx binds runs inside its own `pg_guard_ffi_boundary`: a
//! `sigsetjmp`, a thread check and the save and restore of the error stacks. A 1M × 128
//! top-500 made about 14,000 such calls (four per element read, about ten per heap row
//! reranked), and the guards were 11 % of its server time. Callers here put several calls
//! in one [`guarded`] closure instead, which is exactly what pgrx does around each call: an
//! `ERROR` raised inside longjmps back to the boundary and continues as a Rust panic.
//!
//! pgrx's rule for such a closure holds for every use: it owns nothing with a destructor
//! and cannot panic — it only calls these functions and moves plain values.

use pgrx::pg_sys;

use super::recent::Locator;

#[allow(non_snake_case)]
pub mod ffi {
    use super::*;

    unsafe extern "C-unwind" {
        pub fn ReadRecentBuffer(
            locator: Locator,
            fork: pg_sys::ForkNumber::Type,
            block: pg_sys::BlockNumber,
            recent: pg_sys::Buffer,
        ) -> bool;
        pub fn ReadBuffer(rel: pg_sys::Relation, block: pg_sys::BlockNumber) -> pg_sys::Buffer;
        pub fn ReleaseBuffer(buffer: pg_sys::Buffer);
        pub fn LockBuffer(buffer: pg_sys::Buffer, mode: std::ffi::c_int);
        pub fn heap_page_prune_opt(rel: pg_sys::Relation, buffer: pg_sys::Buffer);
        pub fn heap_hot_search_buffer(
            tid: pg_sys::ItemPointer,
            rel: pg_sys::Relation,
            buffer: pg_sys::Buffer,
            snapshot: pg_sys::Snapshot,
            tuple: pg_sys::HeapTuple,
            all_dead: *mut bool,
            first_call: bool,
        ) -> bool;
        pub fn ExecStoreBufferHeapTuple(
            tuple: pg_sys::HeapTuple,
            slot: *mut pg_sys::TupleTableSlot,
            buffer: pg_sys::Buffer,
        ) -> *mut pg_sys::TupleTableSlot;
    }
}

/// Runs `f`, a short sequence of [`ffi`] calls, behind one guard (see the module comment).
///
/// # Safety
/// `f` must hold nothing with a destructor and must not panic; backend thread only.
#[inline(always)]
pub unsafe fn guarded<T>(f: impl FnOnce() -> T) -> T {
    pg_sys::ffi::pg_guard_ffi_boundary(f)
}

/// Share-lock mode for [`ffi::LockBuffer`].
pub const SHARE: i32 = pg_sys::BUFFER_LOCK_SHARE as i32;
/// Unlock mode for [`ffi::LockBuffer`].
pub const UNLOCK: i32 = pg_sys::BUFFER_LOCK_UNLOCK as i32;
