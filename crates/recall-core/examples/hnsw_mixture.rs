//! Graph-quality probe on the baselines' synthetic inner-product set (unit-norm Gaussian
//! mixture, 128 dims): recall@10 and distance evaluations per query over an ef sweep, for
//! plain and keep-pruned neighbour selection.
//! `cargo run --release --example hnsw_mixture [n] [keep_pruned 0/1] [m] [ef_construction] [k]`
use recall_core::distance::{order_distance, Metric};
use recall_core::hnsw::build::{search_counted_with, MemGraph};
use recall_core::hnsw::HnswParams;
use recall_core::rng::SplitMix64;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let n: usize = a.get(1).map(|s| s.parse().unwrap()).unwrap_or(200_000);
    let keep = a.get(2).is_some_and(|s| s == "1");
    let m: usize = a.get(3).map(|s| s.parse().unwrap()).unwrap_or(16);
    let efc: usize = a.get(4).map(|s| s.parse().unwrap()).unwrap_or(64);
    let k: usize = a.get(5).map(|s| s.parse().unwrap()).unwrap_or(10);
    let (dims, centres, nq) = (128usize, 1000usize, 200usize);
    let mut rng = SplitMix64::new(7);
    let mut gauss = move || {
        let (u, v) = (rng.next_f64_open0(), rng.next_f64_open0());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    };
    let c: Vec<f32> = (0..centres * dims).map(|_| gauss()).collect();
    let mut pick = SplitMix64::new(8);
    let mut all = Vec::with_capacity((n + nq) * dims);
    for _ in 0..n + nq {
        let k = pick.below(centres as u64) as usize;
        let mut x: Vec<f32> = (0..dims).map(|d| c[k * dims + d] + gauss()).collect();
        let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
        x.iter_mut().for_each(|v| *v /= norm);
        all.extend(x);
    }
    let (base, qs) = all.split_at(n * dims);
    let p = HnswParams {
        m,
        ef_construction: efc,
        metric: Metric::InnerProduct,
        seed: 1,
        quantized: std::env::var("EXACT_BUILD").is_err(),
    };
    let t = std::time::Instant::now();
    let g = MemGraph::build_with(
        base.to_vec(),
        dims,
        &p,
        &AtomicBool::new(false),
        &AtomicUsize::new(0),
        keep,
    )
    .unwrap();
    let deg: f64 = (0..g.len() as u32)
        .map(|i| g.links(i)[0].len() as f64)
        .sum::<f64>()
        / g.len() as f64;
    println!(
        "n={n} keep_pruned={keep} m={m} efc={efc}: build {:.1} s, mean degree {deg:.1}",
        t.elapsed().as_secs_f64()
    );
    let truth: Vec<HashSet<u32>> = qs
        .chunks(dims)
        .map(|q| {
            let mut d: Vec<(f32, u32)> = base
                .chunks(dims)
                .enumerate()
                .map(|(i, x)| (order_distance(Metric::InnerProduct, q, x), i as u32))
                .collect();
            d.select_nth_unstable_by(k, |a, b| a.0.total_cmp(&b.0));
            d[..k].iter().map(|x| x.1).collect()
        })
        .collect();
    let uppers: Vec<usize> = std::env::var("UPPER")
        .unwrap_or("1".into())
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    for &upper in &uppers {
        for ef in [40, 160, 320, 1000].into_iter().filter(|&ef| ef >= k) {
            let (mut hits, mut evals) = (0, 0);
            for (qi, q) in qs.chunks(dims).enumerate() {
                let (r, n) = search_counted_with(&g, q, k, ef, upper);
                let h = r.iter().filter(|s| truth[qi].contains(&s.id)).count();
                hits += h;
                evals += n;
            }
            println!(
                "upper={upper:<3} ef={ef:<5} recall@{k}={:.4} evals/query={:.0}",
                hits as f64 / (nq * k) as f64,
                evals as f64 / nq as f64
            );
        }
    }
}
