//! What both index layouts share: item pointers in Postgres' byte layout, and reading the
//! `f32` vectors stored inside items.

/// An item's address: (block, offset), the same as a Postgres `ItemPointer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ItemPtr {
    pub block: u32,
    pub offset: u16,
}

impl ItemPtr {
    pub const INVALID: ItemPtr = ItemPtr {
        block: u32::MAX,
        offset: 0,
    };

    #[inline]
    pub fn to_u64(self) -> u64 {
        ((self.block as u64) << 16) | self.offset as u64
    }

    #[inline]
    pub fn from_u64(v: u64) -> Self {
        ItemPtr {
            block: (v >> 16) as u32,
            offset: v as u16,
        }
    }

    pub fn is_valid(self) -> bool {
        self.block != u32::MAX && self.offset != 0
    }

    #[inline]
    pub fn read(b: &[u8]) -> Self {
        let hi = u16::from_ne_bytes([b[0], b[1]]) as u32;
        let lo = u16::from_ne_bytes([b[2], b[3]]) as u32;
        ItemPtr {
            block: (hi << 16) | lo,
            offset: u16::from_ne_bytes([b[4], b[5]]),
        }
    }

    #[inline]
    pub fn write(self, b: &mut [u8]) {
        b[0..2].copy_from_slice(&((self.block >> 16) as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&(self.block as u16).to_ne_bytes());
        b[4..6].copy_from_slice(&self.offset.to_ne_bytes());
    }
}

/// 8-bit codes stored in `bytes`.
pub fn i8_slice(bytes: &[u8]) -> &[i8] {
    // SAFETY: i8 and u8 have the same size and alignment.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const i8, bytes.len()) }
}

/// [`i8_slice`], for writing codes into a tuple.
pub fn i8_slice_mut(bytes: &mut [u8]) -> &mut [i8] {
    // SAFETY: i8 and u8 have the same size and alignment.
    unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr() as *mut i8, bytes.len()) }
}

/// `f32`s stored in `bytes`, borrowed when the bytes are 4-byte aligned (always, inside a
/// page: Postgres MAXALIGNs items), copied otherwise.
pub fn f32_slice(bytes: &[u8]) -> std::borrow::Cow<'_, [f32]> {
    if (bytes.as_ptr() as usize) % 4 == 0 {
        // SAFETY: aligned, in bounds, and every bit pattern is a valid f32.
        std::borrow::Cow::Borrowed(unsafe {
            std::slice::from_raw_parts(bytes.as_ptr() as *const f32, bytes.len() / 4)
        })
    } else {
        std::borrow::Cow::Owned(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }
}
