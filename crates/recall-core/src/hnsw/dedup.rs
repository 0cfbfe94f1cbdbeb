//! Identical vectors become one graph node that carries all their rows.
//!
//! A graph of many identical points is a trap: their mutual distance is zero, so neighbour
//! selection links them only to each other, and a search that enters the group cannot leave
//! it. pgvector solves this the same way, by keeping several heap TIDs per element.

use std::collections::HashMap;

/// Groups rows (indices into `vectors`, `dims` floats each) whose vectors are bit-identical.
/// Groups come in order of first appearance; rows inside a group in table order.
pub fn group_identical(vectors: &[f32], dims: usize) -> Vec<Vec<u32>> {
    let n = if dims == 0 { 0 } else { vectors.len() / dims };
    let row = |i: usize| &vectors[i * dims..(i + 1) * dims];
    let mut by_hash: HashMap<u64, Vec<u32>> = HashMap::with_capacity(n);
    let mut groups: Vec<Vec<u32>> = Vec::with_capacity(n);
    for i in 0..n {
        let h = hash_bits(row(i));
        let slot = by_hash.entry(h).or_default();
        match slot
            .iter()
            .find(|&&g| bits_equal(row(groups[g as usize][0] as usize), row(i)))
        {
            Some(&g) => groups[g as usize].push(i as u32),
            None => {
                slot.push(groups.len() as u32);
                groups.push(vec![i as u32]);
            }
        }
    }
    groups
}

fn bits_equal(a: &[f32], b: &[f32]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn hash_bits(v: &[f32]) -> u64 {
    // FNV-1a over the raw bits: cheap, and collisions only cost a comparison.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in v {
        h ^= x.to_bits() as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_identical_rows() {
        let v = [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 5.0, 6.0, 3.0, 4.0];
        assert_eq!(
            group_identical(&v, 2),
            vec![vec![0, 2], vec![1, 4], vec![3]]
        );
    }
}
