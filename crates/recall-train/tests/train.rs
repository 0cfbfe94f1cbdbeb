//! Training on a small synthetic interaction set: the loss falls, a seed reproduces the run
//! bit for bit, the model beats popularity, and the exported file runs in the inference core
//! with the trainer's own outputs.

use std::io::Write;
use std::path::PathBuf;

use recall_core::rng::SplitMix64;
use recall_core::tower::{Model, Side, Value};
use recall_train::data::Dataset;
use recall_train::train::{evaluate, export, train, user_feeds, Options};

/// 60 users in 4 taste groups; each group mostly consumes its own 20 of 80 items.
fn synthetic(dir: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("recall-train-{dir}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = SplitMix64::new(5);
    let mut f = std::fs::File::create(dir.join("interactions.tsv")).unwrap();
    for u in 1..=60u64 {
        let group = u % 4;
        for t in 0..25u64 {
            let item = if rng.below(10) < 8 {
                1 + group * 20 + rng.below(20)
            } else {
                1 + rng.below(80)
            };
            writeln!(f, "{u}\t{item}\t{}", t * 100 + u).unwrap();
        }
    }
    let mut f = std::fs::File::create(dir.join("users.tsv")).unwrap();
    for u in 1..=60u64 {
        writeln!(f, "{u}\t{},{}", (u % 4) as f32 / 4.0, (u % 7) as f32 / 7.0).unwrap();
    }
    let mut f = std::fs::File::create(dir.join("items.tsv")).unwrap();
    for i in 1..=80u64 {
        let cat = 1 + (i - 1) / 20;
        writeln!(
            f,
            "{i}\t{cat}\t{},{}\t{}",
            cat,
            5 + i % 3,
            (i % 10) as f32 / 10.0
        )
        .unwrap();
    }
    dir
}

fn options() -> Options {
    Options {
        epochs: 8,
        batch: 32,
        lr: 3e-3,
        hidden: vec![32, 16],
        output: 16,
        ..Options::default()
    }
}

#[test]
fn loss_falls_and_the_model_beats_popularity() {
    let d = Dataset::read(&synthetic("falls")).unwrap();
    let split = d.split(10);
    assert_eq!(split.test.len(), 60);
    let t = train(&d, &split, &options(), |_, _| {});
    let (first, last) = (t.losses[0], *t.losses.last().unwrap());
    assert!(last < first * 0.9, "loss {first} → {last}");
    let ev = evaluate(&d, &split, &t, &[10]);
    assert!(
        ev.model[0] > ev.popular[0],
        "model {} vs most-popular {}",
        ev.model[0],
        ev.popular[0]
    );
}

#[test]
fn a_seed_reproduces_the_run() {
    let d = Dataset::read(&synthetic("seed")).unwrap();
    let split = d.split(10);
    let a = train(&d, &split, &options(), |_, _| {});
    let b = train(&d, &split, &options(), |_, _| {});
    assert_eq!(a.losses, b.losses);
    assert_eq!(export(&a), export(&b));
    let c = train(
        &d,
        &split,
        &Options {
            seed: 7,
            ..options()
        },
        |_, _| {},
    );
    assert_ne!(a.losses, c.losses);
}

#[test]
fn log_q_correction_changes_training() {
    let d = Dataset::read(&synthetic("logq")).unwrap();
    let split = d.split(10);
    let with = train(&d, &split, &options(), |_, _| {});
    let without = train(
        &d,
        &split,
        &Options {
            log_q: false,
            ..options()
        },
        |_, _| {},
    );
    assert_ne!(with.losses, without.losses);
}

#[test]
fn exported_model_matches_the_trainer_in_the_inference_core() {
    let d = Dataset::read(&synthetic("export")).unwrap();
    let split = d.split(10);
    let t = train(&d, &split, &options(), |_, _| {});
    let model = Model::load(&export(&t), None).unwrap();
    let tower = model.tower(Side::User).unwrap();
    let batch: Vec<_> = split.test.iter().take(5).collect();
    let expected = t.user.forward_eval(&user_feeds(&d, &batch, None));
    for (e, want) in batch.iter().zip(expected.rows()) {
        let history: Vec<i64> = e.history.iter().map(|&i| i as i64).collect();
        let got = tower
            .forward(&[
                ("user_id", Value::Id(e.user as i64)),
                ("features", Value::Dense(&d.user_features[e.user])),
                ("behavior", Value::Ids(&history)),
            ])
            .unwrap();
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "core {g} vs trainer {w}");
        }
    }
    // Unknown users use row 0, which training taught.
    let unknown = tower
        .forward(&[
            ("user_id", Value::Id(10_000)),
            ("features", Value::Dense(&[0.5, 0.5])),
        ])
        .unwrap();
    assert_eq!(unknown.len(), 16);
}
