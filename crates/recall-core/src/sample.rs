//! Uniform samples of a stream of rows whose length is not known in advance (Algorithm R):
//! k-means samples and calibration queries drawn in one pass over a table or an index.

use crate::rng::SplitMix64;

pub struct Reservoir {
    dims: usize,
    capacity: usize,
    seen: usize,
    rows: Vec<f32>,
    ids: Vec<u64>,
    rng: SplitMix64,
}

impl Reservoir {
    pub fn new(dims: usize, capacity: usize, seed: u64) -> Reservoir {
        Reservoir {
            dims,
            capacity,
            seen: 0,
            rows: Vec::new(),
            ids: Vec::new(),
            rng: SplitMix64::new(seed),
        }
    }

    /// Offers one row; after n offers every row is kept with probability capacity / n.
    pub fn offer(&mut self, v: &[f32], id: u64) {
        debug_assert_eq!(v.len(), self.dims);
        self.seen += 1;
        if self.ids.len() < self.capacity {
            self.rows.extend_from_slice(v);
            self.ids.push(id);
        } else {
            let r = self.rng.below(self.seen as u64) as usize;
            if r < self.capacity {
                self.rows[r * self.dims..(r + 1) * self.dims].copy_from_slice(v);
                self.ids[r] = id;
            }
        }
    }

    /// Rows offered so far.
    pub fn seen(&self) -> usize {
        self.seen
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The kept rows (`len() × dims`) and their ids, shuffled: any prefix is itself a uniform
    /// sample (Algorithm R keeps the first rows in arrival order until it is full).
    pub fn into_parts(mut self) -> (Vec<f32>, Vec<u64>) {
        let n = self.ids.len();
        for i in (1..n).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            if i != j {
                self.ids.swap(i, j);
                for d in 0..self.dims {
                    self.rows.swap(i * self.dims + d, j * self.dims + d);
                }
            }
        }
        (self.rows, self.ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_row_with_equal_probability() {
        // 1000 rows, keep 100, 2000 trials: each row's inclusion rate is near 0.1, and a
        // prefix of the shuffled sample is not biased toward early rows.
        let mut kept = vec![0u32; 1000];
        let mut first = vec![0u32; 1000];
        for trial in 0..2000 {
            let mut r = Reservoir::new(1, 100, trial);
            for i in 0..1000u64 {
                r.offer(&[i as f32], i);
            }
            assert_eq!(r.seen(), 1000);
            let (rows, ids) = r.into_parts();
            assert_eq!(ids.len(), 100);
            for (v, id) in rows.iter().zip(&ids) {
                assert_eq!(*v as u64, *id);
                kept[*id as usize] += 1;
            }
            for id in &ids[..10] {
                first[*id as usize] += 1;
            }
        }
        let (lo, hi) = (kept.iter().min().unwrap(), kept.iter().max().unwrap());
        assert!(
            *lo > 120 && *hi < 290,
            "inclusion counts {lo}..{hi}, expected about 200"
        );
        let early: u32 = first[..500].iter().sum();
        let late: u32 = first[500..].iter().sum();
        assert!(
            (early as f64 / late as f64 - 1.0).abs() < 0.1,
            "prefix bias {early} vs {late}"
        );
    }

    #[test]
    fn short_streams_are_kept_whole() {
        let mut r = Reservoir::new(2, 10, 1);
        for i in 0..4u64 {
            r.offer(&[i as f32, -(i as f32)], i);
        }
        let (rows, mut ids) = r.into_parts();
        assert_eq!(rows.len(), 8);
        ids.sort();
        assert_eq!(ids, vec![0, 1, 2, 3]);
    }
}
