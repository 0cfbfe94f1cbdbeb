//! The reference user tower's forward pass for one request (the recall stage computes one
//! user vector per query). Compare with `examples/pytorch/two_tower.py --bench`, which times
//! PyTorch eager CPU inference of the same model.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use recall_core::tower::{reference, Model, Side, Value};

fn user_tower(c: &mut Criterion) {
    let sizes = reference::Sizes {
        users: 100_000,
        items: 50_000,
        ..Default::default()
    };
    let config = reference::config(&sizes);
    let model = Model::load(&reference::random_weights(&config, 7), None).expect("model");
    let tower = model.tower(Side::User).expect("user tower");
    let features: Vec<f32> = (0..sizes.user_features).map(|i| i as f32 * 0.1).collect();
    let behavior: Vec<i64> = (0..20).map(|i| i * 997 % 50_000).collect();
    c.bench_function("reference user tower, 1 request, 20 behaviour items", |b| {
        b.iter(|| {
            tower
                .forward(black_box(&[
                    ("user_id", Value::Id(4242)),
                    ("features", Value::Dense(&features)),
                    ("behavior", Value::Ids(&behavior)),
                ]))
                .expect("forward")
        })
    });
}

criterion_group!(benches, user_tower);
criterion_main!(benches);
