//! Walking the lists: every page of each list, newest first, each locked while the caller
//! holds it. Vacuum and `recall.tune` walk all lists this way.

use pgrx::pg_sys;
use recall_core::ivf::tuple::{self, Entry};

use super::PAGE_LIST;
use crate::storage::buffer::Lock;
use crate::storage::{page, LockedBuffer};

/// An iterator over `(list, locked page)`. A page that is not a list page ends its list
/// (scans report such damage; maintenance moves on to the next list). Checks for interrupts
/// and takes vacuum's cost delay at every page.
pub struct ListPages {
    index: pg_sys::Relation,
    heads: Vec<u32>,
    lock: Lock,
    list: usize,
    next: u32,
}

impl ListPages {
    pub fn new(index: pg_sys::Relation, heads: Vec<u32>, lock: Lock) -> Self {
        let next = heads.first().copied().unwrap_or(tuple::NO_PAGE);
        ListPages {
            index,
            heads,
            lock,
            list: 0,
            next,
        }
    }
}

impl Iterator for ListPages {
    type Item = (usize, LockedBuffer);

    fn next(&mut self) -> Option<(usize, LockedBuffer)> {
        loop {
            if self.next == tuple::NO_PAGE {
                self.list += 1;
                self.next = *self.heads.get(self.list)?;
                continue;
            }
            unsafe {
                pg_sys::vacuum_delay_point();
            }
            pgrx::check_for_interrupts!();
            let buf = LockedBuffer::read(self.index, self.next, self.lock);
            let p = buf.page();
            if unsafe { page::kind(p) } != Some(PAGE_LIST) {
                self.next = tuple::NO_PAGE;
                continue;
            }
            self.next = unsafe { page::link(p) };
            return Some((self.list, buf));
        }
    }
}

/// Calls `f(offset, entry)` for every entry on a list page.
pub unsafe fn entries(p: pg_sys::Page, dims: usize, mut f: impl FnMut(u16, Entry<'_>)) {
    for off in 1..=page::max_offset(p) {
        if let Some(e) = page::item(p, off).and_then(|b| Entry::parse(b, dims)) {
            f(off, e);
        }
    }
}
