//! Byte layout of the HNSW index's tuples, independent of Postgres so it can be unit-tested.
//! The extension places these bytes in index pages as ordinary items.
//!
//! Element tuple (one per distinct vector):
//! ```text
//!  0  u8   kind = ELEMENT
//!  1  u8   level
//!  2  u8   flags (DELETED: no live heap row; kept for traversal until vacuum repairs it;
//!            CODES: the vector is stored as 8-bit codes, see below)
//!  3  u8   version (bumped when a slot is reused)
//!  4  u16  tid_count
//!  6  u16  tid_cap
//!  8  [u16; 3] neighbour tuple's item pointer
//! 14  u16  extra_len: bytes of tagged sections after the vector
//! 16  tid_cap × [u16; 3] heap TIDs
//!     pad to 4
//!     dims × f32 vector, or (CODES) f32 ‖x − x̂‖ then dims × i8 codes of the index's
//!     quantiser (`crate::sq8`, kept in the metapage)
//!     extra sections: u16 tag, u16 len, payload — room for filter attributes without a new
//!     page format
//! ```
//! Neighbour tuple (one per element; separate so a 2,000-dimension vector still fits a page):
//! ```text
//!  0  u8   kind = NEIGHBOURS
//!  1  u8   level
//!  2  u16  reserved
//!  4  for each level 0..=level: u16 count, cap × [u16; 3] item pointers
//! ```
//! Item pointers use Postgres' `ItemPointerData` layout (block hi, block lo, offset), so heap
//! TIDs are copied to and from the executor byte for byte.

use super::max_neighbours;
use crate::sq8::Sq8;
use std::borrow::Cow;

pub const KIND_ELEMENT: u8 = 1;
pub const KIND_NEIGHBOURS: u8 = 2;
pub const FLAG_DELETED: u8 = 1;
pub const FLAG_CODES: u8 = 2;
pub const ELEMENT_HEADER: usize = 16;
pub const NEIGHBOUR_HEADER: usize = 4;
const PTR: usize = 6;

pub use crate::item::{f32_slice, ItemPtr};
use crate::item::{i8_slice, i8_slice_mut};

#[inline]
fn align4(n: usize) -> usize {
    (n + 3) & !3
}

#[inline]
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

#[inline]
fn set_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_ne_bytes());
}

/// How an index stores its vectors: exact `f32`, or 8-bit codes of one quantiser with each
/// row's quantisation error (scans then rank by bounds and read exact values from the heap).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Layout {
    pub dims: usize,
    pub sq: Option<Sq8>,
}

impl Layout {
    pub fn exact(dims: usize) -> Layout {
        Layout { dims, sq: None }
    }

    pub fn codes(dims: usize, sq: Sq8) -> Layout {
        Layout { dims, sq: Some(sq) }
    }

    fn payload(&self) -> usize {
        match self.sq {
            None => 4 * self.dims,
            Some(_) => 4 + self.dims,
        }
    }

    /// `v` as the index sees it: itself, or its decoded codes.
    pub fn stored(&self, v: &[f32]) -> Vec<f32> {
        match self.sq {
            None => v.to_vec(),
            Some(sq) => {
                let mut codes = vec![0i8; v.len()];
                sq.encode_row(v, &mut codes);
                let mut out = vec![0.0; v.len()];
                sq.decode_into(&codes, &mut out);
                out
            }
        }
    }
}

/// Size of an element tuple.
pub fn element_size(layout: Layout, tid_cap: usize) -> usize {
    align4(ELEMENT_HEADER + PTR * tid_cap) + layout.payload()
}

/// Size of a neighbour tuple for a node at `level`.
pub fn neighbours_size(m: usize, level: usize) -> usize {
    NEIGHBOUR_HEADER
        + (0..=level)
            .map(|l| 2 + PTR * max_neighbours(m, l))
            .sum::<usize>()
}

/// Encodes an element tuple for `vector` (`layout.dims` values).
pub fn encode_element(
    level: u8,
    tids: &[ItemPtr],
    tid_cap: usize,
    neighbours: ItemPtr,
    vector: &[f32],
    layout: Layout,
) -> Vec<u8> {
    debug_assert!(tids.len() <= tid_cap && vector.len() == layout.dims);
    let mut b = vec![0u8; element_size(layout, tid_cap)];
    b[0] = KIND_ELEMENT;
    b[1] = level;
    set_u16(&mut b, 4, tids.len() as u16);
    set_u16(&mut b, 6, tid_cap as u16);
    neighbours.write(&mut b[8..14]);
    for (i, t) in tids.iter().enumerate() {
        t.write(&mut b[ELEMENT_HEADER + PTR * i..]);
    }
    let voff = align4(ELEMENT_HEADER + PTR * tid_cap);
    match layout.sq {
        None => {
            for (i, x) in vector.iter().enumerate() {
                b[voff + 4 * i..voff + 4 * i + 4].copy_from_slice(&x.to_ne_bytes());
            }
        }
        Some(sq) => {
            b[2] |= FLAG_CODES;
            let err = sq.encode_row(
                vector,
                i8_slice_mut(&mut b[voff + 4..voff + 4 + layout.dims]),
            );
            b[voff..voff + 4].copy_from_slice(&err.to_ne_bytes());
        }
    }
    b
}

/// Encodes a neighbour tuple; `lists[l]` are the neighbours at level l.
pub fn encode_neighbours(m: usize, lists: &[Vec<ItemPtr>]) -> Vec<u8> {
    let level = lists.len() - 1;
    let mut b = vec![0u8; neighbours_size(m, level)];
    b[0] = KIND_NEIGHBOURS;
    b[1] = level as u8;
    let mut at = NEIGHBOUR_HEADER;
    for (l, list) in lists.iter().enumerate() {
        let cap = max_neighbours(m, l);
        debug_assert!(list.len() <= cap);
        set_u16(&mut b, at, list.len() as u16);
        for (i, p) in list.iter().enumerate() {
            p.write(&mut b[at + 2 + PTR * i..]);
        }
        at += 2 + PTR * cap;
    }
    b
}

/// A read view of an element tuple's bytes. The vector is decoded on demand; in a page the
/// floats are 4-byte aligned (items are MAXALIGNed and the vector offset is a multiple of 4),
/// so [`Element::vector`] can borrow them.
#[derive(Clone, Copy)]
pub struct Element<'a> {
    b: &'a [u8],
    layout: Layout,
}

impl<'a> Element<'a> {
    /// `None` unless `b` is a well-formed element tuple of `layout`.
    pub fn parse(b: &'a [u8], layout: Layout) -> Option<Self> {
        if b.len() < ELEMENT_HEADER || b[0] != KIND_ELEMENT {
            return None;
        }
        let cap = u16_at(b, 6) as usize;
        let count = u16_at(b, 4) as usize;
        if count > cap
            || b.len() < element_size(layout, cap)
            || (b[2] & FLAG_CODES != 0) != layout.sq.is_some()
        {
            return None;
        }
        Some(Element { b, layout })
    }

    pub fn level(&self) -> u8 {
        self.b[1]
    }
    pub fn flags(&self) -> u8 {
        self.b[2]
    }
    pub fn is_deleted(&self) -> bool {
        self.b[2] & FLAG_DELETED != 0
    }
    pub fn version(&self) -> u8 {
        self.b[3]
    }
    pub fn tid_count(&self) -> usize {
        u16_at(self.b, 4) as usize
    }
    pub fn tid_cap(&self) -> usize {
        u16_at(self.b, 6) as usize
    }
    pub fn neighbours_ptr(&self) -> ItemPtr {
        ItemPtr::read(&self.b[8..14])
    }
    pub fn tid(&self, i: usize) -> ItemPtr {
        ItemPtr::read(&self.b[ELEMENT_HEADER + PTR * i..])
    }
    pub fn tids(&self) -> impl Iterator<Item = ItemPtr> + '_ {
        (0..self.tid_count()).map(|i| self.tid(i))
    }
    fn vector_offset(&self) -> usize {
        align4(ELEMENT_HEADER + PTR * self.tid_cap())
    }

    /// The vector (decoded from its codes in a quantised layout); borrowed when exact and
    /// 4-byte aligned (always, inside a page).
    pub fn vector(&self) -> Cow<'a, [f32]> {
        let (off, dims) = (self.vector_offset(), self.layout.dims);
        match (self.layout.sq, self.codes()) {
            (Some(sq), Some((codes, _))) => {
                let mut v = vec![0.0; dims];
                sq.decode_into(codes, &mut v);
                Cow::Owned(v)
            }
            _ => f32_slice(&self.b[off..off + 4 * dims]),
        }
    }

    /// The codes and the quantisation error ‖x − x̂‖, in a quantised layout.
    pub fn codes(&self) -> Option<(&'a [i8], f32)> {
        self.layout.sq?;
        let off = self.vector_offset();
        let b = self.b;
        let err = f32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]]);
        Some((i8_slice(&b[off + 4..off + 4 + self.layout.dims]), err))
    }

    /// Whether this element stores exactly what [`encode_element`] would store for `v`, so
    /// a row with vector `v` may share it (in a quantised layout: the same codes and error,
    /// which keeps every bound computed from them valid for both rows).
    pub fn stores(&self, v: &[f32]) -> bool {
        match (self.layout.sq, self.codes()) {
            (Some(sq), Some((codes, err))) => {
                let mut mine = vec![0i8; v.len()];
                sq.encode_row(v, &mut mine).to_bits() == err.to_bits() && mine == codes
            }
            _ => self
                .vector()
                .iter()
                .zip(v)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
        }
    }
}

/// In-place edits of an element tuple (on a page locked for writing).
pub struct ElementMut<'a> {
    b: &'a mut [u8],
    layout: Layout,
}

impl<'a> ElementMut<'a> {
    pub fn new(b: &'a mut [u8], layout: Layout) -> Option<Self> {
        Element::parse(b, layout)?;
        Some(ElementMut { b, layout })
    }

    pub fn view(&self) -> Element<'_> {
        Element {
            b: self.b,
            layout: self.layout,
        }
    }

    pub fn set_neighbours_ptr(&mut self, p: ItemPtr) {
        p.write(&mut self.b[8..14]);
    }

    /// Appends a heap TID; false when the element is full.
    pub fn push_tid(&mut self, t: ItemPtr) -> bool {
        let (count, cap) = (u16_at(self.b, 4) as usize, u16_at(self.b, 6) as usize);
        if count >= cap {
            return false;
        }
        t.write(&mut self.b[ELEMENT_HEADER + PTR * count..]);
        set_u16(self.b, 4, count as u16 + 1);
        self.b[2] &= !FLAG_DELETED;
        true
    }

    /// Keeps the heap TIDs for which `keep` is true; returns how many were removed. An
    /// element left without TIDs is flagged deleted.
    pub fn retain_tids(&mut self, mut keep: impl FnMut(ItemPtr) -> bool) -> usize {
        let count = u16_at(self.b, 4) as usize;
        let mut kept = 0;
        for i in 0..count {
            let t = ItemPtr::read(&self.b[ELEMENT_HEADER + PTR * i..]);
            if keep(t) {
                t.write(&mut self.b[ELEMENT_HEADER + PTR * kept..]);
                kept += 1;
            }
        }
        set_u16(self.b, 4, kept as u16);
        if kept == 0 {
            self.b[2] |= FLAG_DELETED;
        }
        count - kept
    }
}

/// A read view of a neighbour tuple.
#[derive(Clone, Copy)]
pub struct Neighbours<'a> {
    b: &'a [u8],
    m: usize,
}

impl<'a> Neighbours<'a> {
    pub fn parse(b: &'a [u8], m: usize) -> Option<Self> {
        if b.len() < NEIGHBOUR_HEADER
            || b[0] != KIND_NEIGHBOURS
            || b.len() < neighbours_size(m, b[1] as usize)
        {
            return None;
        }
        Some(Neighbours { b, m })
    }

    pub fn level(&self) -> usize {
        self.b[1] as usize
    }

    fn level_offset(&self, level: usize) -> usize {
        NEIGHBOUR_HEADER
            + (0..level)
                .map(|l| 2 + PTR * max_neighbours(self.m, l))
                .sum::<usize>()
    }

    /// Neighbours at `level` (empty above the node's level).
    pub fn at(&self, level: usize) -> impl Iterator<Item = ItemPtr> + 'a {
        let (at, count) = if level <= self.level() {
            let at = self.level_offset(level);
            (
                at,
                (u16_at(self.b, at) as usize).min(max_neighbours(self.m, level)),
            )
        } else {
            (0, 0)
        };
        let b = self.b;
        (0..count).map(move |i| ItemPtr::read(&b[at + 2 + PTR * i..]))
    }
}

/// Overwrites the list at `level` of the neighbour tuple in `b` (on a page locked for writing).
pub fn set_neighbours(b: &mut [u8], m: usize, level: usize, list: &[ItemPtr]) -> bool {
    let Some(n) = Neighbours::parse(b, m) else {
        return false;
    };
    if level > n.level() || list.len() > max_neighbours(m, level) {
        return false;
    }
    let at = n.level_offset(level);
    set_u16(b, at, list.len() as u16);
    for (i, p) in list.iter().enumerate() {
        p.write(&mut b[at + 2 + PTR * i..]);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_round_trip() {
        let tids = [
            ItemPtr {
                block: 70000,
                offset: 3,
            },
            ItemPtr {
                block: 1,
                offset: 9,
            },
        ];
        let nb = ItemPtr {
            block: 5,
            offset: 2,
        };
        let v = [1.5f32, -2.0, 3.25];
        let layout = Layout::exact(3);
        let b = encode_element(2, &tids, 3, nb, &v, layout);
        assert_eq!(b.len(), element_size(layout, 3));
        let e = Element::parse(&b, layout).unwrap();
        assert_eq!((e.level(), e.tid_count(), e.tid_cap()), (2, 2, 3));
        assert_eq!(e.tids().collect::<Vec<_>>(), tids);
        assert_eq!(e.neighbours_ptr(), nb);
        assert_eq!(&*e.vector(), &v);
        assert!(e.codes().is_none() && e.stores(&v) && !e.stores(&[1.5, -2.0, 3.0]));
        assert!(
            Element::parse(&b, Layout::exact(400)).is_none(),
            "wrong dims must not parse"
        );
        assert!(Element::parse(&b[..10], layout).is_none());
        assert!(
            Element::parse(&b, Layout::codes(3, Sq8::new(0.0, 0.1))).is_none(),
            "an exact element does not parse as codes"
        );

        let mut b2 = b.clone();
        let mut em = ElementMut::new(&mut b2, layout).unwrap();
        assert!(em.push_tid(ItemPtr {
            block: 8,
            offset: 8
        }));
        assert!(
            !em.push_tid(ItemPtr {
                block: 9,
                offset: 9
            }),
            "full"
        );
        assert_eq!(em.retain_tids(|t| t.block == 1), 2);
        assert!(!em.view().is_deleted());
        assert_eq!(em.retain_tids(|_| false), 1);
        assert!(em.view().is_deleted());
    }

    #[test]
    fn element_with_codes_round_trip() {
        let sq = Sq8::new(0.0, 0.02);
        let layout = Layout::codes(5, sq);
        let v = [0.5f32, -1.0, 0.013, 2.0, 9.0]; // 9.0 is beyond the range and clamps
        let b = encode_element(0, &[ItemPtr::default()], 2, ItemPtr::INVALID, &v, layout);
        assert_eq!(b.len(), element_size(layout, 2));
        assert!(b.len() < element_size(Layout::exact(5), 2));
        let e = Element::parse(&b, layout).unwrap();
        assert!(Element::parse(&b, Layout::exact(5)).is_none());
        let (codes, err) = e.codes().unwrap();
        assert_eq!(codes.len(), 5);
        let x = e.vector();
        let real: f32 = x
            .iter()
            .zip(&v)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
            .sqrt();
        assert!(err >= real && err < real + 1e-3, "{err} {real}");
        assert_eq!(&*x, &layout.stored(&v)[..]);
        assert!(e.stores(&v));
        assert!(
            !e.stores(&[0.5, -1.0, 0.013, 2.0, 9.5]),
            "same codes, other error"
        );
    }

    #[test]
    fn neighbours_round_trip() {
        let m = 4;
        let lists = vec![
            (1..=8)
                .map(|i| ItemPtr {
                    block: i,
                    offset: 1,
                })
                .collect::<Vec<_>>(),
            vec![ItemPtr {
                block: 99,
                offset: 4,
            }],
        ];
        let mut b = encode_neighbours(m, &lists);
        assert_eq!(b.len(), neighbours_size(m, 1));
        let n = Neighbours::parse(&b, m).unwrap();
        assert_eq!(n.at(0).collect::<Vec<_>>(), lists[0]);
        assert_eq!(n.at(1).collect::<Vec<_>>(), lists[1]);
        assert_eq!(n.at(2).count(), 0);
        assert!(set_neighbours(
            &mut b,
            m,
            1,
            &[
                ItemPtr {
                    block: 1,
                    offset: 2
                },
                ItemPtr {
                    block: 3,
                    offset: 4
                }
            ]
        ));
        assert!(
            !set_neighbours(&mut b, m, 1, &vec![ItemPtr::default(); 5]),
            "over capacity"
        );
        let n = Neighbours::parse(&b, m).unwrap();
        assert_eq!(n.at(1).count(), 2);
        assert_eq!(n.at(0).count(), 8);
    }

    #[test]
    fn item_ptr_packing() {
        let p = ItemPtr {
            block: 0x12345678,
            offset: 0xabcd,
        };
        assert_eq!(ItemPtr::from_u64(p.to_u64()), p);
    }
}
