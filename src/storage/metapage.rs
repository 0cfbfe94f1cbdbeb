//! Block 0 of every index: a `#[repr(C)]` struct after the page header, with a magic number
//! and a format version checked on every read, so an index written by another format is an
//! error that says `REINDEX` instead of garbage.

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::buffer::Lock;
use super::{page, LockedBuffer, WalGuard};
use crate::opclass::relname;

pub const META_BLOCK: u32 = 0;
/// Page kind of a metapage (see [`page::PageTag`]).
pub const PAGE_META: u16 = 1;

/// A metapage layout.
pub trait Metapage: Copy {
    const MAGIC: u32;
    const VERSION: u32;
    /// The access method's name, for messages.
    const AM: &'static str;
    fn magic(&self) -> u32;
    fn version(&self) -> u32;
}

/// Reads and validates the metapage.
pub unsafe fn read<T: Metapage>(index: pg_sys::Relation) -> T {
    let buf = LockedBuffer::read(index, META_BLOCK, Lock::Share);
    let p = buf.page();
    let meta: T = page::read_contents(p);
    if page::kind(p) != Some(PAGE_META) || meta.magic() != T::MAGIC {
        error!(
            "index \"{}\" is not an {} index of pg_recall",
            relname(index),
            T::AM
        );
    }
    if meta.version() != T::VERSION {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "{} index \"{}\" has format version {}, this pg_recall reads version {}",
                T::AM,
                relname(index),
                meta.version(),
                T::VERSION
            ),
            format!("Run REINDEX INDEX {} to rebuild it.", relname(index))
        );
    }
    meta
}

/// Rewrites the metapage through WAL with `f` applied.
pub unsafe fn update<T: Metapage>(index: pg_sys::Relation, f: impl FnOnce(&mut T)) {
    let buf = LockedBuffer::read(index, META_BLOCK, Lock::Exclusive);
    let mut wal = WalGuard::start(index);
    let p = wal.register(&buf, false);
    let mut meta: T = page::read_contents(p);
    f(&mut meta);
    page::write_contents(p, &meta);
    wal.finish();
}

/// Writes a fresh metapage into `p` (build and empty-index paths).
pub unsafe fn init_page<T: Metapage>(p: pg_sys::Page, meta: &T) {
    page::init(p, PAGE_META);
    page::write_contents(p, meta);
}
