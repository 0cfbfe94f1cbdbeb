//! Neighbour selection (HNSW paper, Algorithm 4).

use super::search::Scored;

/// Picks up to `m` neighbours for a base node from `candidates` (sorted by distance to the
/// base, closest first). A candidate is kept when it is closer to the base than to every
/// neighbour already kept, which spreads edges across directions instead of spending them
/// all inside one dense cluster — that is what keeps clustered data connected. With
/// `keep_pruned`, the remaining slots are filled with the closest rejected candidates, so
/// nodes in dense regions still get a full neighbour list.
pub fn select_neighbours<Id: Copy>(
    candidates: &[Scored<Id>],
    m: usize,
    keep_pruned: bool,
    mut pair_distance: impl FnMut(Id, Id) -> f32,
) -> Vec<Scored<Id>> {
    let mut selected: Vec<Scored<Id>> = Vec::with_capacity(m);
    let mut pruned: Vec<Scored<Id>> = Vec::new();
    for &c in candidates {
        if selected.len() >= m {
            break;
        }
        let diverse = selected.iter().all(|s| pair_distance(c.id, s.id) > c.dist);
        if diverse {
            selected.push(c);
        } else if keep_pruned {
            pruned.push(c);
        }
    }
    if keep_pruned {
        for c in pruned {
            if selected.len() >= m {
                break;
            }
            selected.push(c);
        }
    }
    selected
}
