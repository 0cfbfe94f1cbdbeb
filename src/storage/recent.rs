//! Which shared buffer last held each index block, remembered by this backend across scans.
//!
//! A graph search pins a different page for nearly every distance it computes, and a plain
//! `ReadBuffer` finds the page through the shared buffer mapping table: a partition lock and
//! a hash probe whose cache and TLB misses cost more than the distance itself on large
//! `shared_buffers`. `ReadRecentBuffer` pins a remembered buffer directly and verifies its
//! tag under the buffer header lock, so a stale entry (page evicted, relation rewritten)
//! costs one failed check and a normal read, never a wrong page.

use std::cell::RefCell;
use std::rc::Rc;

use pgrx::pg_sys;

use super::unguarded::{self, ffi};

/// Blocks past this one (16 GB into a relation) are read the plain way (4 bytes per block).
const MAX_BLOCKS: u32 = 1 << 21;
/// How many relations are remembered; the least recently used one is forgotten first.
const MAX_RELATIONS: usize = 64;
/// Remembered blocks over all relations (16 MB per backend); least recently used relations
/// are forgotten past it.
const MAX_TOTAL_BLOCKS: usize = 1 << 22;

type RelKey = (u32, u32, u32);
/// The buffer each block was last read into (0: not known).
type Blocks = Rc<RefCell<Vec<pg_sys::Buffer>>>;

thread_local! {
    // Backends are single-threaded; thread_local is simply a per-backend global. A short
    // list searched front to back (the relation in use moves to the front) beats hashing the
    // key on every lookup, and scans hold a [`Remembered`] so they look it up only once.
    static RECENT: RefCell<Vec<(RelKey, Blocks)>> = const { RefCell::new(Vec::new()) };
}

#[cfg(feature = "pg15")]
pub type Locator = pg_sys::RelFileNode;
#[cfg(not(feature = "pg15"))]
pub type Locator = pg_sys::RelFileLocator;

#[cfg(feature = "pg15")]
unsafe fn locator(rel: pg_sys::Relation) -> (RelKey, Locator) {
    let n = (*rel).rd_node;
    (
        (n.spcNode.to_u32(), n.dbNode.to_u32(), n.relNode.to_u32()),
        n,
    )
}

#[cfg(not(feature = "pg15"))]
unsafe fn locator(rel: pg_sys::Relation) -> (RelKey, Locator) {
    let n = (*rel).rd_locator;
    ((n.spcOid.to_u32(), n.dbOid.to_u32(), n.relNumber), n)
}

/// Temporary relations live in local buffers, whose tags do not name the backend: they are
/// read the plain way.
fn is_temp(rel: pg_sys::Relation) -> bool {
    unsafe { (*(*rel).rd_rel).relpersistence as u8 == pg_sys::RELPERSISTENCE_TEMP }
}

/// The remembered buffers of relation `key`, created empty if need be.
fn blocks_of(key: RelKey) -> Blocks {
    RECENT.with(|r| {
        let mut r = r.borrow_mut();
        match r.iter().position(|(k, _)| *k == key) {
            Some(0) => {}
            Some(i) => r[..=i].rotate_right(1),
            None => {
                if r.len() >= MAX_RELATIONS {
                    r.pop();
                }
                r.insert(0, (key, Rc::default()));
            }
        }
        r[0].1.clone()
    })
}

/// Forgets least recently used relations while the backend remembers too many blocks (the
/// relation in use, first in the list, is kept).
fn trim() {
    RECENT.with(|r| {
        let mut r = r.borrow_mut();
        while r.len() > 1
            && r.iter().map(|(_, v)| v.borrow().len()).sum::<usize>() > MAX_TOTAL_BLOCKS
        {
            r.pop();
        }
    })
}

/// One relation's remembered buffers, held for the length of a scan. A relation forgotten
/// meanwhile (see [`trim`]) stays usable through the handle: entries are only ever hints.
pub struct Remembered {
    rel: pg_sys::Relation,
    loc: Locator,
    /// `None` for a temporary relation.
    blocks: Option<Blocks>,
}

impl Remembered {
    pub fn new(rel: pg_sys::Relation) -> Self {
        let (key, loc) = unsafe { locator(rel) };
        Remembered {
            rel,
            loc,
            blocks: (!is_temp(rel)).then(|| blocks_of(key)),
        }
    }

    /// The buffer that last held block `blk`, unverified (it may hold another page by now):
    /// good for prefetch hints, never for reading.
    pub fn buffer(&self, blk: u32) -> Option<pg_sys::Buffer> {
        let b = self.blocks.as_ref()?.borrow().get(blk as usize).copied();
        b.filter(|&b| b != 0)
    }

    /// Pins block `blk` of the main fork, through the remembered buffer when it still holds
    /// the block.
    pub fn read(&self, blk: u32) -> pg_sys::Buffer {
        unsafe { self.pin(blk, None, |_| {}) }
    }

    /// [`Remembered::read`], releasing `release` first and running `then` on the new pin,
    /// all behind one guard: a scan's move from one page to the next.
    ///
    /// # Safety
    /// `then` runs inside [`unguarded::guarded`] and must obey its rule.
    pub unsafe fn pin(
        &self,
        blk: u32,
        release: Option<pg_sys::Buffer>,
        then: impl FnOnce(pg_sys::Buffer),
    ) -> pg_sys::Buffer {
        let tracked = self.blocks.as_ref().filter(|_| blk < MAX_BLOCKS);
        let hint = tracked
            .and_then(|b| b.borrow().get(blk as usize).copied())
            .unwrap_or(0);
        let (rel, loc) = (self.rel, self.loc);
        let (buf, hit) = unsafe {
            unguarded::guarded(|| {
                if let Some(old) = release {
                    ffi::ReleaseBuffer(old);
                }
                let hit = hint != 0
                    && ffi::ReadRecentBuffer(loc, pg_sys::ForkNumber::MAIN_FORKNUM, blk, hint);
                let buf = if hit { hint } else { ffi::ReadBuffer(rel, blk) };
                then(buf);
                (buf, hit)
            })
        };
        if let (Some(blocks), false) = (tracked, hit) {
            let grew = {
                let mut v = blocks.borrow_mut();
                let grew = v.len() <= blk as usize;
                if grew {
                    v.resize(blk as usize + 1, 0);
                }
                v[blk as usize] = buf;
                grew
            };
            if grew {
                trim();
            }
        }
        buf
    }
}

/// The block a buffer this backend has pinned holds (`BufferGetBlockNumber`, read in place:
/// a pinned buffer's tag cannot change).
///
/// # Safety
/// `buf` must be pinned by this backend.
pub unsafe fn pinned_block(buf: pg_sys::Buffer) -> u32 {
    if buf > 0 {
        (*pg_sys::BufferDescriptors.add(buf as usize - 1))
            .bufferdesc
            .tag
            .blockNum
    } else {
        (*pg_sys::LocalBufferDescriptors.add((-buf - 1) as usize))
            .tag
            .blockNum
    }
}

/// [`Remembered::buffer`] for a one-off lookup.
pub fn remembered(rel: pg_sys::Relation, blk: u32) -> Option<pg_sys::Buffer> {
    Remembered::new(rel).buffer(blk)
}

/// [`Remembered::read`] for a one-off read.
pub fn read(rel: pg_sys::Relation, blk: u32) -> pg_sys::Buffer {
    Remembered::new(rel).read(blk)
}

/// Starts loading what reading item `offset` of the page in shared buffer `buf` touches
/// first: the buffer header (pinning and locking it) and the page's first cache line (its
/// header and the line pointers). Local buffers are left alone.
pub fn prefetch_page_header(buf: pg_sys::Buffer, offset: u16) {
    if buf <= 0 {
        return;
    }
    unsafe {
        let desc = pg_sys::BufferDescriptors.add(buf as usize - 1) as *const u8;
        recall_core::distance::prefetch_bytes(desc, 1);
        let page = pg_sys::BufferGetBlock(buf) as *const u8;
        recall_core::distance::prefetch_bytes(page, 1);
        recall_core::distance::prefetch_bytes(page.wrapping_add(line_pointer_at(offset)), 1);
    }
}

/// Starts loading the bytes of item `offset` of the page in shared buffer `buf`, located
/// through its line pointer read without a lock or pin: the page may change or be replaced
/// meanwhile, which at worst makes the hint useless — the value is clamped to the page and
/// only ever used as a prefetch address.
pub fn prefetch_item(buf: pg_sys::Buffer, offset: u16) {
    if buf <= 0 || offset == 0 {
        return;
    }
    unsafe {
        let page = pg_sys::BufferGetBlock(buf) as *const u8;
        let lp = std::ptr::read_volatile(page.add(line_pointer_at(offset)) as *const u32);
        // ItemIdData: lp_off (15 bits), lp_flags (2), lp_len (15), low bits first.
        let (off, len) = ((lp & 0x7fff) as usize, (lp >> 17) as usize);
        let page_size = pg_sys::BLCKSZ as usize;
        if off < page_size {
            recall_core::distance::prefetch_bytes(page.add(off), len.min(page_size - off));
        }
    }
}

/// Both hints for one item wanted next. Locating the item reads its line pointer, which
/// waits for that line to arrive; a caller with several items therefore issues every
/// header first and the items after (`HeapRerank::prefetch_batch`).
pub fn prefetch_tuple(buf: pg_sys::Buffer, offset: u16) {
    prefetch_page_header(buf, offset);
    prefetch_item(buf, offset);
}

/// Starts loading the whole page block `blk` of `rel` was last seen in: for a scan that
/// reads every item of the next page while it works on this one.
pub fn prefetch_page(rel: pg_sys::Relation, blk: u32) {
    if let Some(buf) = remembered(rel, blk).filter(|&b| b > 0) {
        let page = unsafe { pg_sys::BufferGetBlock(buf) } as *const u8;
        recall_core::distance::prefetch_bytes(page, pg_sys::BLCKSZ as usize);
    }
}

/// Byte offset of line pointer `offset` (1-based) in a page, clamped to the page.
fn line_pointer_at(offset: u16) -> usize {
    let header = std::mem::offset_of!(pg_sys::PageHeaderData, pd_linp);
    let at = header + 4 * (offset.max(1) as usize - 1);
    at.min(pg_sys::BLCKSZ as usize - 4)
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::test_support::{exact_copy, force_index, make_table, recall};
    use pgrx::prelude::*;

    /// An ERROR raised inside a sequence of unguarded calls sharing one guard comes out as
    /// an ordinary ERROR (here the sequence's first call, releasing a buffer that is not
    /// pinned); and the same sequence pins and locks a page when given a real one.
    #[pg_test(error = "bad buffer ID: 0")]
    fn an_error_inside_a_shared_guard_is_an_ordinary_error() {
        use crate::storage::unguarded::{ffi, SHARE, UNLOCK};
        Spi::run("CREATE TABLE ug (v int); INSERT INTO ug VALUES (1)").unwrap();
        let oid = Spi::get_one::<pg_sys::Oid>("SELECT 'ug'::regclass::oid")
            .unwrap()
            .unwrap();
        unsafe {
            let rel = pg_sys::relation_open(oid, pg_sys::AccessShareLock as i32);
            let pages = super::Remembered::new(rel);
            let buf = pages.pin(0, None, |b| ffi::LockBuffer(b, SHARE));
            assert_eq!(super::pinned_block(buf), 0);
            assert_eq!(
                pg_sys::PageGetMaxOffsetNumber(pg_sys::BufferGetPage(buf)),
                1
            );
            pg_sys::LockBuffer(buf, UNLOCK);
            pg_sys::ReleaseBuffer(buf);
            pages.pin(0, Some(pg_sys::InvalidBuffer as pg_sys::Buffer), |_| {});
        }
    }

    /// Scans remember buffers across statements; a relation rewritten under them (TRUNCATE,
    /// REINDEX) or living in local buffers (a temp table) must still read its own pages.
    #[pg_test]
    fn scans_after_rewrites_and_on_temp_tables_read_current_pages() {
        for am in ["hnsw", "ivfflat"] {
            let t = format!("rw_{am}");
            make_table(&t, 2000, 8);
            exact_copy(&t);
            Spi::run(&format!(
                "CREATE INDEX {t}_idx ON {t} USING {am} (v vector_l2_ops)"
            ))
            .unwrap();
            force_index();
            let check = |t: &str, when: &str| {
                let r = recall(t, "<->", 10, 20);
                assert!(r >= 0.9, "{am}: recall@10 {r} {when}");
            };
            check(&t, "before any rewrite");
            // New rows under the same relation name and new relfilenodes.
            Spi::run(&format!(
                "CREATE TEMP TABLE {t}_moved AS SELECT id, category,
                   (SELECT array_agg(x * 2 + 50) FROM unnest(v::real[]) x)::vector AS v FROM {t};
                 TRUNCATE {t}, {t}_exact;
                 INSERT INTO {t} SELECT * FROM {t}_moved;
                 INSERT INTO {t}_exact SELECT * FROM {t}_moved;"
            ))
            .unwrap();
            check(&t, "after TRUNCATE");
            Spi::run(&format!("REINDEX INDEX {t}_idx")).unwrap();
            check(&t, "after REINDEX");

            let tt = format!("tmp_{am}");
            Spi::run(&format!(
                "CREATE TEMP TABLE {tt} AS SELECT * FROM {t};
                 CREATE TEMP TABLE {tt}_exact AS SELECT * FROM {t};
                 CREATE INDEX ON {tt} USING {am} (v vector_l2_ops);"
            ))
            .unwrap();
            check(&tt, "on a temp table");
        }
    }
}
