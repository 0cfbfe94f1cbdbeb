//! Pinned and locked buffers that release themselves, also when an `ERROR` unwinds.

use pgrx::pg_sys;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    Share,
    Exclusive,
}

impl Lock {
    fn mode(self) -> i32 {
        match self {
            Lock::Share => pg_sys::BUFFER_LOCK_SHARE as i32,
            Lock::Exclusive => pg_sys::BUFFER_LOCK_EXCLUSIVE as i32,
        }
    }
}

pub struct LockedBuffer {
    buf: pg_sys::Buffer,
}

/// Pins block `blk` of `fork` (`InvalidBlockNumber` extends the fork by one block).
pub fn pin(rel: pg_sys::Relation, fork: pg_sys::ForkNumber::Type, blk: u32) -> pg_sys::Buffer {
    unsafe {
        pg_sys::ReadBufferExtended(
            rel,
            fork,
            blk,
            pg_sys::ReadBufferMode::RBM_NORMAL,
            std::ptr::null_mut(),
        )
    }
}

impl LockedBuffer {
    /// Reads block `blk` of the main fork and locks it.
    pub fn read(rel: pg_sys::Relation, blk: u32, lock: Lock) -> Self {
        let buf = pin(rel, pg_sys::ForkNumber::MAIN_FORKNUM, blk);
        unsafe { pg_sys::LockBuffer(buf, lock.mode()) };
        LockedBuffer { buf }
    }

    /// [`LockedBuffer::read`] for scans that jump between pages: pins through this
    /// backend's memory of where the block was (see [`super::recent`]).
    pub fn read_remembered(rel: pg_sys::Relation, blk: u32, lock: Lock) -> Self {
        let buf = super::recent::read(rel, blk);
        unsafe { pg_sys::LockBuffer(buf, lock.mode()) };
        LockedBuffer { buf }
    }

    /// Block `blk` locked exclusively if that is possible without waiting. For a second page
    /// while one is already locked: waiting there could deadlock against a backend that
    /// holds the two pages in the other order.
    pub fn try_exclusive(rel: pg_sys::Relation, blk: u32) -> Option<Self> {
        let buf = pin(rel, pg_sys::ForkNumber::MAIN_FORKNUM, blk);
        unsafe {
            if pg_sys::ConditionalLockBuffer(buf) {
                Some(LockedBuffer { buf })
            } else {
                pg_sys::ReleaseBuffer(buf);
                None
            }
        }
    }

    /// Adds a block at the end of the relation, exclusively locked. Takes the relation
    /// extension lock so concurrent inserters never get the same new block.
    pub fn extend(rel: pg_sys::Relation, concurrent: bool) -> Self {
        unsafe {
            if concurrent {
                pg_sys::LockRelationForExtension(rel, pg_sys::ExclusiveLock as i32);
            }
            let buf = pin(
                rel,
                pg_sys::ForkNumber::MAIN_FORKNUM,
                pg_sys::InvalidBlockNumber,
            );
            pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
            if concurrent {
                pg_sys::UnlockRelationForExtension(rel, pg_sys::ExclusiveLock as i32);
            }
            LockedBuffer { buf }
        }
    }

    pub fn raw(&self) -> pg_sys::Buffer {
        self.buf
    }

    pub fn block(&self) -> u32 {
        unsafe { pg_sys::BufferGetBlockNumber(self.buf) }
    }

    /// The page, for reading (or writing during a build, before WAL-logging the range).
    pub fn page(&self) -> pg_sys::Page {
        unsafe { pg_sys::BufferGetPage(self.buf) }
    }

    pub fn mark_dirty(&self) {
        unsafe { pg_sys::MarkBufferDirty(self.buf) }
    }
}

impl Drop for LockedBuffer {
    fn drop(&mut self) {
        unsafe { pg_sys::UnlockReleaseBuffer(self.buf) }
    }
}
