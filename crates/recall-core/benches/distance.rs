//! Dispatched kernels vs the sequential reference loop at the dimensions embeddings come in.
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use recall_core::distance::{self, reference, Metric};
use recall_core::sq8::Sq8;

fn vectors(n: usize) -> (Vec<f32>, Vec<f32>) {
    let a = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let b = (0..n)
        .map(|i| ((i * 104729) % 997) as f32 / 997.0 - 0.5)
        .collect();
    (a, b)
}

fn bench(c: &mut Criterion) {
    let k = distance::kernels();
    eprintln!("dispatched kernels: {}", k.isa);
    for (name, dispatched, scalar) in [
        ("dot", k.dot, reference::dot as fn(&[f32], &[f32]) -> f32),
        ("l2_squared", k.l2_squared, reference::l2_squared),
        ("l1", k.l1, reference::l1),
    ] {
        let mut g = c.benchmark_group(name);
        for dim in [128usize, 768, 1536] {
            let (a, b) = vectors(dim);
            g.throughput(Throughput::Elements(dim as u64));
            g.bench_with_input(BenchmarkId::new("dispatched", dim), &dim, |bn, _| {
                bn.iter(|| dispatched(black_box(&a), black_box(&b)))
            });
            g.bench_with_input(BenchmarkId::new("scalar_loop", dim), &dim, |bn, _| {
                bn.iter(|| scalar(black_box(&a), black_box(&b)))
            });
        }
        g.finish();
    }
    let mut g = c.benchmark_group("cosine");
    for dim in [128usize, 768, 1536] {
        let (a, b) = vectors(dim);
        g.bench_with_input(BenchmarkId::new("dispatched", dim), &dim, |bn, _| {
            bn.iter(|| distance::cosine(black_box(&a), black_box(&b)))
        });
    }
    g.finish();
    // Distances between 8-bit codes: the hnsw build's inner loop and the ivfflat list scan.
    let mut g = c.benchmark_group("sq8_codes");
    for dim in [128usize, 784, 1536] {
        let (a, b) = vectors(dim);
        let rows: Vec<f32> = a.iter().chain(&b).copied().collect();
        let sq = Sq8::fit(&rows);
        for metric in [Metric::L2, Metric::InnerProduct] {
            let codes = sq.encode(&rows, dim, metric);
            g.throughput(Throughput::Elements(dim as u64));
            g.bench_with_input(
                BenchmarkId::new(format!("{metric:?}"), dim),
                &dim,
                |bn, _| bn.iter(|| codes.distance(black_box(0), black_box(1))),
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
