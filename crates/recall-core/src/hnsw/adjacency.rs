//! Neighbour lists of the in-memory build graph.
//!
//! Every search step of every insert reads a neighbour list, and with a lock per list the
//! build threads spent about an eighth of their time taking read locks (the lock word of a
//! well-connected node bounces between cores) and copying lists out. Here a list is a
//! fixed-capacity run of atomic slots behind a length word: readers take no lock, writers
//! serialise on a per-node mutex. A reader racing a rewrite can see a mix of the old and the
//! new list; every slot always holds some valid node id, and a search that sees a slightly
//! different neighbour list once is still a correct search.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::max_neighbours;

pub struct Adjacency {
    m: usize,
    /// First slot of each node's lists (level 0 first); one extra entry at the end.
    start: Vec<usize>,
    /// Per list: a length word, then its capacity in ids.
    slots: Vec<AtomicU32>,
    locks: Vec<Mutex<()>>,
}

impl Adjacency {
    /// Empty lists for nodes with the given top levels.
    pub fn new(levels: &[u8], m: usize) -> Self {
        let mut start = Vec::with_capacity(levels.len() + 1);
        let mut at = 0usize;
        for &l in levels {
            start.push(at);
            at += (0..=l as usize)
                .map(|k| 1 + max_neighbours(m, k))
                .sum::<usize>();
        }
        start.push(at);
        Adjacency {
            m,
            start,
            slots: (0..at).map(|_| AtomicU32::new(0)).collect(),
            locks: (0..levels.len()).map(|_| Mutex::new(())).collect(),
        }
    }

    /// (slot of the length word, capacity) of `node`'s list at `level`, if it has one.
    #[inline]
    fn region(&self, node: u32, level: usize) -> Option<(usize, usize)> {
        let base = self.start[node as usize];
        let off = if level == 0 {
            base
        } else {
            base + 1 + max_neighbours(self.m, 0) + (level - 1) * (1 + self.m)
        };
        (off < self.start[node as usize + 1]).then(|| (off, max_neighbours(self.m, level)))
    }

    /// Appends `node`'s neighbours at `level` to `out` (nothing above its top level).
    #[inline]
    pub fn read(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        if let Some((off, cap)) = self.region(node, level) {
            let len = (self.slots[off].load(Ordering::Acquire) as usize).min(cap);
            out.extend(
                self.slots[off + 1..off + 1 + len]
                    .iter()
                    .map(|s| s.load(Ordering::Relaxed)),
            );
        }
    }

    /// Starts loading `node`'s list at `level` (see [`GraphView::prefetch_neighbours`]).
    ///
    /// [`GraphView::prefetch_neighbours`]: super::search::GraphView::prefetch_neighbours
    #[inline]
    pub fn prefetch(&self, node: u32, level: usize) {
        if let Some((off, cap)) = self.region(node, level) {
            crate::distance::prefetch_bytes(self.slots[off..].as_ptr() as *const u8, (1 + cap) * 4);
        }
    }

    pub fn get(&self, node: u32, level: usize) -> Vec<u32> {
        let mut v = Vec::new();
        self.read(node, level, &mut v);
        v
    }

    /// Exclusive right to change `node`'s lists.
    pub fn lock(&self, node: u32) -> Writer<'_> {
        Writer {
            adj: self,
            node,
            _guard: self.locks[node as usize]
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        }
    }
}

pub struct Writer<'a> {
    adj: &'a Adjacency,
    node: u32,
    _guard: MutexGuard<'a, ()>,
}

impl Writer<'_> {
    pub fn list(&self, level: usize) -> Vec<u32> {
        self.adj.get(self.node, level)
    }

    pub fn contains(&self, level: usize, id: u32) -> bool {
        self.adj.region(self.node, level).is_some_and(|(off, cap)| {
            let len = (self.adj.slots[off].load(Ordering::Relaxed) as usize).min(cap);
            self.adj.slots[off + 1..off + 1 + len]
                .iter()
                .any(|s| s.load(Ordering::Relaxed) == id)
        })
    }

    /// Replaces the list at `level` (truncated to its capacity).
    pub fn set(&self, level: usize, ids: &[u32]) {
        let Some((off, cap)) = self.adj.region(self.node, level) else {
            return;
        };
        let n = ids.len().min(cap);
        for (slot, &id) in self.adj.slots[off + 1..off + 1 + n].iter().zip(ids) {
            slot.store(id, Ordering::Relaxed);
        }
        self.adj.slots[off].store(n as u32, Ordering::Release);
    }

    /// Appends `id` if the list has room; false when it is full.
    pub fn push(&self, level: usize, id: u32) -> bool {
        let Some((off, cap)) = self.adj.region(self.node, level) else {
            return false;
        };
        let len = self.adj.slots[off].load(Ordering::Relaxed) as usize;
        if len >= cap {
            return false;
        }
        self.adj.slots[off + 1 + len].store(id, Ordering::Relaxed);
        self.adj.slots[off].store(len as u32 + 1, Ordering::Release);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_keep_their_levels_and_capacities_apart() {
        let adj = Adjacency::new(&[0, 2, 1], 4);
        {
            let w = adj.lock(1);
            w.set(0, &(100..120).collect::<Vec<_>>());
            w.set(1, &[7, 8]);
            assert!(w.push(2, 9));
            w.set(3, &[1]); // above its top level: ignored
        }
        assert_eq!(
            adj.get(1, 0),
            (100..108).collect::<Vec<_>>(),
            "capped at 2m"
        );
        assert_eq!(adj.get(1, 1), vec![7, 8]);
        assert_eq!(adj.get(1, 2), vec![9]);
        assert_eq!(adj.get(1, 3), Vec::<u32>::new());
        assert_eq!(adj.get(0, 0), Vec::<u32>::new());
        assert_eq!(adj.get(2, 1), Vec::<u32>::new());
        let w = adj.lock(0);
        for i in 0..8 {
            assert!(w.push(0, i));
        }
        assert!(!w.push(0, 99), "full");
        assert!(!w.push(1, 5), "no level 1");
        assert_eq!(w.list(0), (0..8).collect::<Vec<_>>());
        assert!(w.contains(0, 7) && !w.contains(0, 99) && !w.contains(1, 0));
    }
}
