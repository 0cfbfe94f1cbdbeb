//! A fast hasher for integer keys (node ids) in search-time sets and maps. SipHash's DoS
//! resistance buys nothing for ids the index itself produces and costs more than a distance
//! computation on short vectors.

use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(0x51_7cc1_b727_220a_95);
        }
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        // Fibonacci hashing; the high bits (which hashbrown uses) mix well.
        self.0 = (self.0 ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64)
    }
}

pub type IdBuildHasher = BuildHasherDefault<IdHasher>;
pub type IdSet<K> = std::collections::HashSet<K, IdBuildHasher>;
pub type IdMap<K, V> = std::collections::HashMap<K, V, IdBuildHasher>;
