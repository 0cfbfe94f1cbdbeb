//! A reusable visited set for dense `u32` ids: one generation stamp per node, so clearing
//! between searches is O(1) instead of O(n).

use super::search::Visited;

pub struct VisitedList {
    marks: Vec<u32>,
    generation: u32,
}

impl VisitedList {
    pub fn new(n: usize) -> Self {
        VisitedList {
            marks: vec![0; n],
            generation: 1,
        }
    }

    pub fn reset(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.generation = 1;
        }
    }
}

impl Visited<u32> for VisitedList {
    #[inline]
    fn insert(&mut self, id: u32) -> bool {
        let m = &mut self.marks[id as usize];
        if *m == self.generation {
            false
        } else {
            *m = self.generation;
            true
        }
    }

    fn clear(&mut self) {
        self.reset();
    }
}
