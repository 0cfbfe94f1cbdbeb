//! Interaction data: reading the trainer's TSV files, the leave-last-out split, behaviour
//! histories and item popularity.
//!
//! Files (tab-separated, no header; ids are non-negative integers, row 0 of the user table is
//! reserved for unknown users):
//! - `interactions.tsv`: user, item, timestamp
//! - `users.tsv`: user, comma-separated dense features
//! - `items.tsv`: item, category, comma-separated tag ids (may be empty), comma-separated features

use std::collections::HashSet;
use std::path::Path;

#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pub users: usize,
    pub items: usize,
    pub categories: usize,
    pub tags: usize,
    pub user_features: Vec<Vec<f32>>,
    pub item_category: Vec<usize>,
    pub item_tags: Vec<Vec<usize>>,
    pub item_features: Vec<Vec<f32>>,
    /// Ids listed in items.tsv (the catalogue rankings run over).
    pub item_exists: Vec<bool>,
    /// Per user, items in time order.
    pub histories: Vec<Vec<usize>>,
}

/// A training example: the user, the items before this interaction, the positive item.
#[derive(Clone, Debug)]
pub struct Example {
    pub user: usize,
    pub history: Vec<usize>,
    pub item: usize,
}

/// Each user's last interaction is held out (the test item); the earlier ones train.
pub struct Split {
    pub train: Vec<Example>,
    /// (user, history = the user's training items, held-out item)
    pub test: Vec<Example>,
    /// Training interactions per item, for popularity and the logQ correction.
    pub item_counts: Vec<u64>,
}

fn parse_list<T: std::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<T>()
                .map_err(|_| format!("bad {what} value {x:?}"))
        })
        .collect()
}

fn read_rows(path: &Path, min_fields: usize) -> Result<Vec<Vec<String>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<String> = line.split('\t').map(str::to_owned).collect();
        if f.len() < min_fields {
            return Err(format!(
                "{}:{}: expected {min_fields} tab-separated fields",
                path.display(),
                n + 1
            ));
        }
        rows.push(f);
    }
    Ok(rows)
}

fn id(s: &str, path: &Path) -> Result<usize, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{}: bad id {s:?}", path.display()))
}

impl Dataset {
    pub fn read(dir: &Path) -> Result<Dataset, String> {
        let (ip, up, tp) = (
            dir.join("interactions.tsv"),
            dir.join("users.tsv"),
            dir.join("items.tsv"),
        );
        let inter = read_rows(&ip, 3)?;
        let users = read_rows(&up, 2)?;
        let items = read_rows(&tp, 4)?;
        let mut d = Dataset::default();
        let mut events: Vec<(usize, usize, f64, usize)> = Vec::with_capacity(inter.len());
        for (n, r) in inter.iter().enumerate() {
            let t: f64 = r[2]
                .trim()
                .parse()
                .map_err(|_| format!("{}: bad timestamp {:?}", ip.display(), r[2]))?;
            events.push((id(&r[0], &ip)?, id(&r[1], &ip)?, t, n));
        }
        d.users = 1 + users
            .iter()
            .map(|r| id(&r[0], &up))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .max()
            .unwrap_or(0);
        d.users = d
            .users
            .max(1 + events.iter().map(|e| e.0).max().unwrap_or(0));
        d.items = 1 + items
            .iter()
            .map(|r| id(&r[0], &tp))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .max()
            .unwrap_or(0);
        if let Some(e) = events.iter().find(|e| e.1 >= d.items) {
            return Err(format!("interaction item {} is not in items.tsv", e.1));
        }
        let uf = users
            .first()
            .map(|r| parse_list::<f32>(&r[1], "feature"))
            .transpose()?
            .map_or(0, |v| v.len());
        d.user_features = vec![vec![0.0; uf]; d.users];
        for r in &users {
            let f = parse_list::<f32>(&r[1], "feature")?;
            if f.len() != uf {
                return Err(format!("{}: every user needs {uf} features", up.display()));
            }
            d.user_features[id(&r[0], &up)?] = f;
        }
        let itf = parse_list::<f32>(&items[0][3], "feature")?.len();
        d.item_category = vec![0; d.items];
        d.item_tags = vec![Vec::new(); d.items];
        d.item_features = vec![vec![0.0; itf]; d.items];
        d.item_exists = vec![false; d.items];
        for r in &items {
            let i = id(&r[0], &tp)?;
            d.item_exists[i] = true;
            d.item_category[i] = id(&r[1], &tp)?;
            d.item_tags[i] = parse_list(&r[2], "tag")?;
            let f = parse_list::<f32>(&r[3], "feature")?;
            if f.len() != itf {
                return Err(format!("{}: every item needs {itf} features", tp.display()));
            }
            d.item_features[i] = f;
        }
        d.categories = 1 + d.item_category.iter().copied().max().unwrap_or(0);
        d.tags = 1 + d.item_tags.iter().flatten().copied().max().unwrap_or(0);
        events.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.3.cmp(&b.3)));
        d.histories = vec![Vec::new(); d.users];
        for (u, i, _, _) in events {
            d.histories[u].push(i);
        }
        Ok(d)
    }

    /// Leave-last-out; `history` caps how many previous items describe the user.
    pub fn split(&self, history: usize) -> Split {
        let mut train = Vec::new();
        let mut test = Vec::new();
        let mut item_counts = vec![0u64; self.items];
        for (u, h) in self.histories.iter().enumerate() {
            if h.len() < 2 {
                continue;
            }
            let last = h.len() - 1;
            for k in 0..last {
                train.push(Example {
                    user: u,
                    history: h[k.saturating_sub(history)..k].to_vec(),
                    item: h[k],
                });
                item_counts[h[k]] += 1;
            }
            test.push(Example {
                user: u,
                history: h[last.saturating_sub(history)..last].to_vec(),
                item: h[last],
            });
        }
        Split {
            train,
            test,
            item_counts,
        }
    }

    /// Items each user interacted with before the held-out one (excluded from rankings).
    pub fn seen(&self) -> Vec<HashSet<usize>> {
        self.histories
            .iter()
            .map(|h| h[..h.len().saturating_sub(1)].iter().copied().collect())
            .collect()
    }
}
