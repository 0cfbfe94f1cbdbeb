//! Page and item helpers over Postgres' page layout, plus the special-space tag that lets a
//! reader tell our page kinds apart.

use pgrx::pg_sys;

use recall_core::hnsw::tuple::ItemPtr;

/// A Postgres `ItemPointerData` as the core's [`ItemPtr`].
pub fn from_item_pointer(t: &pg_sys::ItemPointerData) -> ItemPtr {
    ItemPtr {
        block: ((t.ip_blkid.bi_hi as u32) << 16) | t.ip_blkid.bi_lo as u32,
        offset: t.ip_posid,
    }
}

/// The core's [`ItemPtr`] as a Postgres `ItemPointerData`.
pub fn to_item_pointer(p: ItemPtr) -> pg_sys::ItemPointerData {
    let mut d = pg_sys::ItemPointerData::default();
    d.ip_blkid.bi_hi = (p.block >> 16) as u16;
    d.ip_blkid.bi_lo = p.block as u16;
    d.ip_posid = p.offset;
    d
}

/// Special space of every index page we write: what kind of page it is.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PageTag {
    pub kind: u16,
    /// Identifies pg_recall pages (as pgvector's page ids do), for debugging tools.
    pub page_id: u16,
    /// A block this page links to, by kind (ivfflat list pages: the list's previous page).
    pub link: u32,
}

pub const PAGE_ID: u16 = 0xFE52;
pub const BLCKSZ: usize = pg_sys::BLCKSZ as usize;
const LINE_POINTER: usize = std::mem::size_of::<pg_sys::ItemIdData>();
pub const PAGE_HEADER: usize = std::mem::offset_of!(pg_sys::PageHeaderData, pd_linp);

#[inline]
pub fn maxalign(n: usize) -> usize {
    let a = pg_sys::MAXIMUM_ALIGNOF as usize;
    (n + a - 1) & !(a - 1)
}

/// The largest item a fresh page of ours can hold.
pub fn max_item_size() -> usize {
    BLCKSZ - PAGE_HEADER - maxalign(std::mem::size_of::<PageTag>()) - LINE_POINTER
}

/// Bytes an item of `len` consumes on a page, line pointer included.
pub fn item_footprint(len: usize) -> usize {
    maxalign(len) + LINE_POINTER
}

/// Initialises `page` as one of ours.
pub unsafe fn init(page: pg_sys::Page, kind: u16) {
    pg_sys::PageInit(page, BLCKSZ, std::mem::size_of::<PageTag>());
    let tag = pg_sys::PageGetSpecialPointer(page) as *mut PageTag;
    *tag = PageTag {
        kind,
        page_id: PAGE_ID,
        link: pg_sys::InvalidBlockNumber,
    };
}

pub unsafe fn kind(page: pg_sys::Page) -> Option<u16> {
    if pg_sys::PageIsNew(page) {
        return None;
    }
    let tag = &*(pg_sys::PageGetSpecialPointer(page) as *const PageTag);
    (tag.page_id == PAGE_ID).then_some(tag.kind)
}

pub unsafe fn link(page: pg_sys::Page) -> u32 {
    (*(pg_sys::PageGetSpecialPointer(page) as *const PageTag)).link
}

pub unsafe fn set_link(page: pg_sys::Page, block: u32) {
    (*(pg_sys::PageGetSpecialPointer(page) as *mut PageTag)).link = block;
}

/// A page assembled in backend memory during a build, copied into a buffer once complete.
pub struct PageImage(Box<[u64; BLCKSZ / 8]>);

impl PageImage {
    pub fn new(kind: u16) -> Self {
        let mut img = PageImage(Box::new([0u64; BLCKSZ / 8]));
        unsafe { init(img.page(), kind) };
        img
    }

    pub fn page(&mut self) -> pg_sys::Page {
        self.0.as_mut_ptr() as pg_sys::Page
    }

    /// Copies the image into `dst` (a locked buffer's page).
    pub unsafe fn copy_to(&self, dst: pg_sys::Page) {
        std::ptr::copy_nonoverlapping(self.0.as_ptr() as *const u8, dst as *mut u8, BLCKSZ);
    }
}

/// Free bytes for one more item (line pointer already subtracted), as `PageGetFreeSpace`.
pub unsafe fn free_space(page: pg_sys::Page) -> usize {
    pg_sys::PageGetFreeSpace(page)
}

/// Adds `data` as a new item; `None` if it does not fit.
pub unsafe fn add_item(page: pg_sys::Page, data: &[u8]) -> Option<u16> {
    let off = pg_sys::PageAddItemExtended(
        page,
        data.as_ptr() as pg_sys::Item,
        data.len(),
        pg_sys::InvalidOffsetNumber,
        0,
    );
    (off != pg_sys::InvalidOffsetNumber).then_some(off)
}

pub unsafe fn max_offset(page: pg_sys::Page) -> u16 {
    pg_sys::PageGetMaxOffsetNumber(page)
}

/// The bytes of item `off`, or `None` if the slot is unused or out of range.
pub unsafe fn item<'a>(page: pg_sys::Page, off: u16) -> Option<&'a [u8]> {
    if off == 0 || off > max_offset(page) {
        return None;
    }
    let id = pg_sys::PageGetItemId(page, off);
    if (*id).lp_flags() != pg_sys::LP_NORMAL {
        return None;
    }
    let p = pg_sys::PageGetItem(page, id) as *const u8;
    Some(std::slice::from_raw_parts(p, (*id).lp_len() as usize))
}

/// Mutable bytes of item `off` on a page image being written.
pub unsafe fn item_mut<'a>(page: pg_sys::Page, off: u16) -> Option<&'a mut [u8]> {
    item(page, off).map(|s| std::slice::from_raw_parts_mut(s.as_ptr() as *mut u8, s.len()))
}

/// Frees item `off`'s space but keeps its line pointer (marked unused), so the offsets of
/// other items — which other tuples point at — never change.
pub unsafe fn delete_item(page: pg_sys::Page, off: u16) {
    pg_sys::PageIndexTupleDeleteNoCompact(page, off);
}

/// A struct stored at the start of the page contents (metapages). `pd_lower` is moved past
/// it so full-page images and GenericXLog deltas include it.
pub unsafe fn write_contents<T: Copy>(page: pg_sys::Page, value: &T) {
    let dst = pg_sys::PageGetContents(page) as *mut T;
    std::ptr::write_unaligned(dst, *value);
    let header = page as *mut pg_sys::PageHeaderData;
    (*header).pd_lower = ((dst as usize - page as usize) + std::mem::size_of::<T>()) as u16;
}

pub unsafe fn read_contents<T: Copy>(page: pg_sys::Page) -> T {
    std::ptr::read_unaligned(pg_sys::PageGetContents(page) as *const T)
}
