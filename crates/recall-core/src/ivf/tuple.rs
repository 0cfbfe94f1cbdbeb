//! Byte layout of the IVF index's tuples, independent of Postgres so it can be unit-tested.
//!
//! List entry (one per indexed row, on the pages of its list):
//! ```text
//!  0  [u16; 3] heap TID (Postgres ItemPointerData layout)
//!  6  u16  extra_len: bytes of tagged sections after the codes (room for filter attributes
//!          without a new page format)
//!  8  f32  the row's quantisation error ‖x − x̂‖ (see `sq8::Sq8::encode_row`)
//! 12  dims × i8 codes (the index's `Sq8` quantiser, kept in its metapage)
//! ```
//! A row costs a quarter of its `f32` vector: scans read four times fewer bytes, rank rows by
//! a lower bound of their distance (see `bound`) and take exact distances from the heap rows.
//!
//! Centroid entry (one per list, on the centroid pages, in list order):
//! ```text
//!  0  u32  newest page of the list (InvalidBlockNumber = empty list); pages chain backwards
//!  4  u32  rows added to the list (build + inserts; vacuum does not decrement)
//!  8  dims × f32 centroid
//! ```

use crate::item::{f32_slice, i8_slice, i8_slice_mut, ItemPtr};
use crate::sq8::Sq8;

pub const ENTRY_HEADER: usize = 12;
pub const CENTROID_HEADER: usize = 8;
pub const NO_PAGE: u32 = u32::MAX;

pub fn entry_size(dims: usize) -> usize {
    ENTRY_HEADER + dims
}

pub fn encode_entry(tid: ItemPtr, sq: &Sq8, v: &[f32]) -> Vec<u8> {
    let mut b = vec![0u8; entry_size(v.len())];
    tid.write(&mut b);
    let err = sq.encode_row(v, i8_slice_mut(&mut b[ENTRY_HEADER..]));
    b[8..12].copy_from_slice(&err.to_ne_bytes());
    b
}

/// A list entry on a page.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    bytes: &'a [u8],
    dims: usize,
}

impl<'a> Entry<'a> {
    pub fn parse(bytes: &'a [u8], dims: usize) -> Option<Self> {
        (bytes.len() >= entry_size(dims)).then_some(Entry { bytes, dims })
    }

    pub fn tid(&self) -> ItemPtr {
        ItemPtr::read(self.bytes)
    }

    /// Upper bound of the distance between the row and its decoded codes.
    pub fn error(&self) -> f32 {
        f32::from_ne_bytes(self.bytes[8..12].try_into().unwrap())
    }

    pub fn codes(&self) -> &'a [i8] {
        i8_slice(&self.bytes[ENTRY_HEADER..ENTRY_HEADER + self.dims])
    }

    /// The decoded vector, into `out` (`dims` values).
    pub fn decode_into(&self, sq: &Sq8, out: &mut [f32]) {
        sq.decode_into(self.codes(), out);
    }
}

pub fn centroid_size(dims: usize) -> usize {
    CENTROID_HEADER + 4 * dims
}

pub fn encode_centroid(head: u32, rows: u32, c: &[f32]) -> Vec<u8> {
    let mut b = Vec::with_capacity(centroid_size(c.len()));
    b.extend_from_slice(&head.to_ne_bytes());
    b.extend_from_slice(&rows.to_ne_bytes());
    for x in c {
        b.extend_from_slice(&x.to_ne_bytes());
    }
    b
}

/// (newest page, rows) of a centroid entry.
pub fn centroid_header(b: &[u8]) -> (u32, u32) {
    (
        u32::from_ne_bytes(b[0..4].try_into().unwrap()),
        u32::from_ne_bytes(b[4..8].try_into().unwrap()),
    )
}

pub fn set_centroid_header(b: &mut [u8], head: u32, rows: u32) {
    b[0..4].copy_from_slice(&head.to_ne_bytes());
    b[4..8].copy_from_slice(&rows.to_ne_bytes());
}

pub fn centroid_vector(b: &[u8], dims: usize) -> std::borrow::Cow<'_, [f32]> {
    f32_slice(&b[CENTROID_HEADER..CENTROID_HEADER + 4 * dims])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trip() {
        let tid = ItemPtr {
            block: 0x0102_0304,
            offset: 77,
        };
        let sq = Sq8::new(0.0, 0.25);
        let b = encode_entry(tid, &sq, &[1.5, -2.0, 3.3]);
        assert_eq!(b.len(), entry_size(3));
        let e = Entry::parse(&b, 3).unwrap();
        assert_eq!(e.tid(), tid);
        assert_eq!(e.codes(), &[6, -8, 13]);
        let mut d = [0f32; 3];
        e.decode_into(&sq, &mut d);
        assert_eq!(d, [1.5, -2.0, 3.25]);
        assert!(e.error() >= 0.05 && e.error() < 0.0501);
        assert!(Entry::parse(&b[..10], 3).is_none());
    }

    #[test]
    fn centroid_round_trip() {
        let mut b = encode_centroid(NO_PAGE, 0, &[0.5, 0.25]);
        assert_eq!(centroid_header(&b), (NO_PAGE, 0));
        set_centroid_header(&mut b, 42, 7);
        assert_eq!(centroid_header(&b), (42, 7));
        assert_eq!(&*centroid_vector(&b, 2), &[0.5, 0.25]);
    }
}
