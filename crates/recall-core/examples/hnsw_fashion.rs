//! Graph-quality probe on fashion-mnist (from the Debian package): build time, and for a
//! sweep of ef the recall@10 and the distance evaluations per query (the cost a scan pays
//! in page reads). `cargo run --release --example hnsw_fashion [n] [keep_pruned 0/1]`;
//! `UPPER=1,4,16` sweeps the beam width of the upper-layer descent too.
use recall_core::distance::{order_distance, Metric};
use recall_core::hnsw::build::{search_counted_with, MemGraph};
use recall_core::hnsw::HnswParams;
use std::collections::HashSet;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize};

fn idx(path: &str) -> (Vec<f32>, usize) {
    let mut d = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut d)
        .unwrap();
    let n = u32::from_be_bytes(d[4..8].try_into().unwrap()) as usize;
    (d[16..].iter().map(|&b| b as f32).collect(), n)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(60000);
    let keep = args.get(2).map(|s| s == "1").unwrap_or(false);
    let m: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(16);
    let (base, _) = idx("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
    let (qs, _) = idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
    let dims = 784;
    let base = base[..n * dims].to_vec();
    let p = HnswParams {
        m,
        ef_construction: 64,
        metric: Metric::L2,
        seed: 1,
        quantized: std::env::var("EXACT_BUILD").is_err(),
    };
    let t = std::time::Instant::now();
    let g = MemGraph::build_with(
        base.clone(),
        dims,
        &p,
        &AtomicBool::new(false),
        &AtomicUsize::new(0),
        keep,
    )
    .unwrap();
    println!(
        "n={n} keep_pruned={keep} m={m}: build {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let deg: f64 = (0..g.len() as u32)
        .map(|i| g.links(i)[0].len() as f64)
        .sum::<f64>()
        / g.len() as f64;
    println!("mean layer-0 degree {deg:.1}");
    let nq = 300;
    let truth: Vec<HashSet<u32>> = qs[..nq * dims]
        .chunks(dims)
        .map(|q| {
            let mut d: Vec<(f32, u32)> = base
                .chunks(dims)
                .enumerate()
                .map(|(i, x)| (order_distance(Metric::L2, q, x), i as u32))
                .collect();
            d.select_nth_unstable_by(10, |a, b| a.0.total_cmp(&b.0));
            d[..10].iter().map(|x| x.1).collect()
        })
        .collect();
    let uppers: Vec<usize> = std::env::var("UPPER")
        .unwrap_or("1".into())
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    for (upper, ef) in uppers
        .iter()
        .flat_map(|&u| [10, 15, 20, 40, 80].map(|ef| (u, ef)))
    {
        let (mut hits, mut evals) = (0, 0);
        let t = std::time::Instant::now();
        for (qi, q) in qs[..nq * dims].chunks(dims).enumerate() {
            let (r, n) = search_counted_with(&g, q, 10, ef, upper);
            hits += r.iter().filter(|s| truth[qi].contains(&s.id)).count();
            evals += n;
        }
        println!(
            "upper={upper:<3} ef={ef:<4} recall@10={:.4} evals/query={:.0} us/query={:.1}",
            hits as f64 / (nq * 10) as f64,
            evals as f64 / nq as f64,
            t.elapsed().as_secs_f64() * 1e6 / nq as f64
        );
    }
}
