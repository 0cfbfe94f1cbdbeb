use recall_core::distance::{order_distance, Metric};
use recall_core::hnsw::build::{search, MemGraph};
use recall_core::hnsw::HnswParams;
use recall_core::rng::SplitMix64;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize};

fn mixture(n: usize, dims: usize, centres: usize, seed: u64, noise: f32, normalize: bool) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let mut gauss = || {
        let (u, v) = (rng.next_f64_open0(), rng.next_f64_open0());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    };
    let c: Vec<f32> = (0..centres * dims).map(|_| gauss()).collect();
    let mut out = Vec::with_capacity(n * dims);
    let mut pick = SplitMix64::new(seed ^ 99);
    for _ in 0..n {
        let k = pick.below(centres as u64) as usize;
        let mut x: Vec<f32> = (0..dims).map(|d| c[k * dims + d] + noise * gauss()).collect();
        if normalize {
            let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
            x.iter_mut().for_each(|v| *v /= norm);
        }
        out.extend(x);
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(3000);
    let dims: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(24);
    let noise: f32 = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(0.5);
    let metric = Metric::L2;
    let data = mixture(n, dims, 30, 1, noise, false);
    let queries = mixture(200, dims, 30, 1, noise, false); // same seed → same centres
    let queries = &mixture(n + 200, dims, 30, 1, noise, false)[n * dims..];
    let _ = queries;
    let all = mixture(n + 200, dims, 30, 1, noise, false);
    let (data, queries) = all.split_at(n * dims);
    let p = HnswParams { m: 16, ef_construction: 64, metric, seed: 42 };
    let t = std::time::Instant::now();
    let g = MemGraph::build(data.to_vec(), dims, &p, &AtomicBool::new(false), &AtomicUsize::new(0)).unwrap();
    eprintln!("build {:?}", t.elapsed());
    for ef in [10, 20, 40, 64, 128, 256] {
        let mut hits = 0;
        for q in queries.chunks(dims) {
            let mut d: Vec<(f32, u32)> = data.chunks(dims).enumerate().map(|(i, x)| (order_distance(metric, q, x), i as u32)).collect();
            d.sort_by(|a, b| a.0.total_cmp(&b.0));
            let truth: HashSet<u32> = d.iter().take(10).map(|x| x.1).collect();
            hits += search(&g, q, 10, ef).iter().filter(|s| truth.contains(&s.id)).count();
        }
        println!("ef={ef} recall@10={:.4}", hits as f64 / (queries.len() / dims * 10) as f64);
    }
}
