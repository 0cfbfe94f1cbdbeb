//! The training loop, evaluation and export.

use std::collections::BTreeMap;

use ndarray::Array2;
use recall_core::rng::SplitMix64;
use recall_core::tower::config::{Config, InputConfig};
use recall_core::tower::{reference, safetensors, CONFIG_METADATA_KEY};

use crate::adam::Adam;
use crate::data::{Dataset, Example, Split};
use crate::loss::in_batch_softmax;
use crate::tower::{Feed, Tower};

#[derive(Clone, Debug)]
pub struct Options {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    pub temperature: f32,
    pub seed: u64,
    /// Subtract log p(item) from the logits (sampling-bias correction).
    pub log_q: bool,
    pub hidden: Vec<usize>,
    pub output: usize,
    /// Previous items that describe a user.
    pub history: usize,
    /// Share of training rows whose user id is replaced by row 0, so row 0 learns the
    /// "unknown user" the config maps out-of-vocabulary ids to.
    pub unknown_user_rate: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            epochs: 10,
            batch: 256,
            lr: 1e-3,
            temperature: 0.1,
            seed: 42,
            log_q: true,
            hidden: vec![256, 128],
            output: 128,
            history: 20,
            unknown_user_rate: 0.05,
        }
    }
}

pub struct Trained {
    pub config: Config,
    pub user: Tower,
    pub item: Tower,
    /// Mean training loss per epoch.
    pub losses: Vec<f64>,
}

/// The reference architecture sized for `d`; unknown users, categories and tags map to row 0.
pub fn model_config(d: &Dataset, o: &Options) -> Config {
    let sizes = reference::Sizes {
        users: d.users,
        items: d.items,
        categories: d.categories,
        tags: d.tags,
        user_features: d.user_features.first().map_or(0, |f| f.len()),
        item_features: d.item_features.first().map_or(0, |f| f.len()),
        hidden: o.hidden.clone(),
        output: o.output,
    };
    let mut c = reference::config(&sizes);
    for t in [&mut c.towers.user, &mut c.towers.item]
        .into_iter()
        .flatten()
    {
        for i in &mut t.inputs {
            if let InputConfig::Embedding { input, oov_row, .. }
            | InputConfig::Bag { input, oov_row, .. } = i
            {
                if input != "item_id" {
                    *oov_row = Some(0);
                }
            }
        }
    }
    c
}

fn rows(v: impl Iterator<Item = Vec<f32>>, width: usize) -> Array2<f32> {
    let flat: Vec<f32> = v.flatten().collect();
    let n = flat.len() / width.max(1);
    Array2::from_shape_vec((n, width), flat).expect("equal widths")
}

pub fn user_feeds(
    d: &Dataset,
    batch: &[&Example],
    unknown: Option<(&mut SplitMix64, f64)>,
) -> Vec<Feed> {
    let mut ids: Vec<usize> = batch.iter().map(|e| e.user).collect();
    if let Some((rng, rate)) = unknown {
        ids.iter_mut().for_each(|u| {
            if rng.next_f64_open0() < rate {
                *u = 0
            }
        });
    }
    let width = d.user_features.first().map_or(0, |f| f.len());
    vec![
        Feed::Ids(ids),
        Feed::Dense(rows(
            batch.iter().map(|e| d.user_features[e.user].clone()),
            width,
        )),
        Feed::Bags(batch.iter().map(|e| e.history.clone()).collect()),
    ]
}

pub fn item_feeds(d: &Dataset, items: &[usize]) -> Vec<Feed> {
    let width = d.item_features.first().map_or(0, |f| f.len());
    vec![
        Feed::Ids(items.to_vec()),
        Feed::Ids(items.iter().map(|&i| d.item_category[i]).collect()),
        Feed::Bags(items.iter().map(|&i| d.item_tags[i].clone()).collect()),
        Feed::Dense(rows(
            items.iter().map(|&i| d.item_features[i].clone()),
            width,
        )),
    ]
}

/// log p(item) from training counts (unseen items count once, so the log is finite).
pub fn log_popularity(split: &Split) -> Vec<f32> {
    let total: u64 = split.item_counts.iter().map(|&c| c.max(1)).sum();
    split
        .item_counts
        .iter()
        .map(|&c| ((c.max(1) as f64) / total as f64).ln() as f32)
        .collect()
}

/// Trains; `progress(epoch, mean loss)` after every epoch. Deterministic for a seed: one
/// thread, seeded shuffles, dropout masks and initialisation.
pub fn train(
    d: &Dataset,
    split: &Split,
    o: &Options,
    mut progress: impl FnMut(usize, f64),
) -> Trained {
    let config = model_config(d, o);
    let mut rng = SplitMix64::new(o.seed);
    let mut user = Tower::new(config.towers.user.as_ref().expect("user tower"), &mut rng);
    let mut item = Tower::new(config.towers.item.as_ref().expect("item tower"), &mut rng);
    let log_q = log_popularity(split);
    let mut adam = Adam::new(o.lr);
    let mut order: Vec<usize> = (0..split.train.len()).collect();
    let mut losses = Vec::with_capacity(o.epochs);
    for epoch in 0..o.epochs {
        rng.shuffle(&mut order);
        let (mut sum, mut batches) = (0.0, 0usize);
        for chunk in order.chunks(o.batch) {
            if chunk.len() < 2 {
                continue; // batch statistics need two rows
            }
            let batch: Vec<&Example> = chunk.iter().map(|&k| &split.train[k]).collect();
            let items: Vec<usize> = batch.iter().map(|e| e.item).collect();
            let uf = user_feeds(d, &batch, Some((&mut rng, o.unknown_user_rate)));
            let ut = user.forward_train(uf, &mut rng);
            let it = item.forward_train(item_feeds(d, &items), &mut rng);
            let loss = in_batch_softmax(
                ut.output(),
                it.output(),
                &items,
                o.temperature,
                o.log_q.then_some(log_q.as_slice()),
            );
            user.backward(&ut, loss.d_users.view());
            item.backward(&it, loss.d_items.view());
            let mut params = user.params_mut();
            params.extend(item.params_mut());
            adam.step(params);
            sum += loss.value;
            batches += 1;
        }
        let mean = sum / batches.max(1) as f64;
        losses.push(mean);
        progress(epoch + 1, mean);
    }
    Trained {
        config,
        user,
        item,
        losses,
    }
}

/// The safetensors file `recall.load_model` reads, with the config in its metadata.
pub fn export(t: &Trained) -> Vec<u8> {
    let mut tensors = t.user.tensors();
    tensors.extend(t.item.tensors());
    let views: Vec<(&str, &[usize], &[f32])> = tensors
        .iter()
        .map(|(n, s, v)| (n.as_str(), s.as_slice(), v.as_slice()))
        .collect();
    let mut meta = BTreeMap::new();
    meta.insert(
        CONFIG_METADATA_KEY.to_string(),
        serde_json::to_string(&t.config).expect("config"),
    );
    safetensors::write_f32(&views, &meta)
}

/// Recall@k of the held-out item, ranking every item the user has not interacted with.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub ks: Vec<usize>,
    pub model: Vec<f64>,
    pub popular: Vec<f64>,
    pub users: usize,
}

pub fn evaluate(d: &Dataset, split: &Split, t: &Trained, ks: &[usize]) -> Evaluation {
    let all: Vec<usize> = (0..d.items).collect();
    let item_vecs = t.item.forward_eval(&item_feeds(d, &all));
    let seen = d.seen();
    let mut popular_order: Vec<usize> = (0..d.items).collect();
    popular_order.sort_by(|&a, &b| {
        split.item_counts[b]
            .cmp(&split.item_counts[a])
            .then(a.cmp(&b))
    });
    let (mut model, mut popular) = (vec![0.0; ks.len()], vec![0.0; ks.len()]);
    for chunk in split.test.chunks(256) {
        let batch: Vec<&Example> = chunk.iter().collect();
        let u = t.user.forward_eval(&user_feeds(d, &batch, None));
        let scores = u.dot(&item_vecs.t());
        for (e, s) in batch.iter().zip(scores.rows()) {
            let target = s[e.item];
            let unseen = |i: usize| d.item_exists[i] && !seen[e.user].contains(&i);
            // Rank = unseen items scoring above the target (ties broken by id, as SQL would).
            let rank = (0..d.items)
                .filter(|&i| unseen(i) && (s[i] > target || (s[i] == target && i < e.item)))
                .count();
            let prank = popular_order
                .iter()
                .copied()
                .filter(|&i| unseen(i))
                .position(|i| i == e.item);
            for (n, &k) in ks.iter().enumerate() {
                model[n] += (rank < k) as u8 as f64;
                popular[n] += prank.is_some_and(|p| p < k) as u8 as f64;
            }
        }
    }
    let users = split.test.len();
    model
        .iter_mut()
        .chain(popular.iter_mut())
        .for_each(|v| *v /= users.max(1) as f64);
    Evaluation {
        ks: ks.to_vec(),
        model,
        popular,
        users,
    }
}
