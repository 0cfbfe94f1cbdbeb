//! Inverted-file (IVF) indexing: rows are partitioned into lists by their nearest k-means
//! centroid, and a query scans the lists whose centroids are nearest to it. This module holds
//! the sizing rules; clustering is in [`kmeans`], the on-page byte layout in [`tuple`].

pub mod kmeans;
pub mod tuple;

/// The largest `lists` the index accepts (pgvector's bound).
pub const MAX_LISTS: usize = 32768;

/// Lists for `rows` rows when the user does not choose: rows/100 below 200,000 rows and
/// 4·√rows above (the rule Milvus and Faiss document from measurements on SIFT1M), at least 1.
pub fn self_sized_lists(rows: usize) -> usize {
    let lists = if rows < 200_000 {
        rows / 100
    } else {
        (4.0 * (rows as f64).sqrt()).round() as usize
    };
    lists.clamp(1, MAX_LISTS)
}

/// Probes when the user does not choose: about √lists, which on the self-sized list counts
/// scans 1-2% of the rows.
pub fn default_probes(lists: usize) -> usize {
    ((lists as f64).sqrt().round() as usize).clamp(1, lists.max(1))
}

/// Rows sampled for k-means: max(10,000, 50·lists).
pub fn sample_rows(lists: usize) -> usize {
    (50 * lists).max(10_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizing_rules() {
        assert_eq!(self_sized_lists(0), 1);
        assert_eq!(self_sized_lists(50), 1);
        assert_eq!(self_sized_lists(60_000), 600);
        assert_eq!(self_sized_lists(199_999), 1999);
        assert_eq!(self_sized_lists(1_000_000), 4000);
        assert_eq!(self_sized_lists(1_000_000_000_000), MAX_LISTS);
        assert_eq!(default_probes(1), 1);
        assert_eq!(default_probes(600), 24);
        assert_eq!(default_probes(4000), 63);
        assert_eq!(sample_rows(600), 30_000);
        assert_eq!(sample_rows(10), 10_000);
    }
}
