//! IVF partition probe on fashion-mnist (from the Debian package): k-means and assignment
//! time with the self-sized list count, then recall@10 and rows scanned over a probe sweep.
//! `cargo run --release --example ivf_fashion [lists] [threads]`
use recall_core::distance::l2_squared;
use recall_core::ivf::kmeans::{kmeans, KMeansParams};
use recall_core::ivf::{default_probes, sample_rows, self_sized_lists};
use recall_core::nearest::{nearest_two, squared_norms};
use recall_core::rng::SplitMix64;
use std::collections::HashSet;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize};

fn idx(path: &str) -> Vec<f32> {
    let mut d = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut d)
        .unwrap();
    d[16..].iter().map(|&b| b as f32).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dims = 784;
    let base = idx("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
    let qs = idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
    let n = base.len() / dims;
    let lists: usize = args
        .get(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(self_sized_lists(n));
    let threads: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(2);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let mut idxs: Vec<usize> = (0..n).collect();
    SplitMix64::new(9).shuffle(&mut idxs);
    let sample: Vec<f32> = idxs[..sample_rows(lists).min(n)]
        .iter()
        .flat_map(|&i| base[i * dims..(i + 1) * dims].to_vec())
        .collect();
    let t = std::time::Instant::now();
    let p = KMeansParams {
        k: lists,
        max_iterations: std::env::var("ITERS")
            .map(|s| s.parse().unwrap())
            .unwrap_or(20),
        spherical: false,
        seed: 1,
    };
    let c = kmeans(
        &sample,
        dims,
        &p,
        &AtomicBool::new(false),
        &AtomicUsize::new(0),
    )
    .unwrap();
    let t_km = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let cn = squared_norms(&c.data, dims);
    let assign = nearest_two(&base, &c.data, &cn, dims);
    let t_as = t.elapsed().as_secs_f64();
    println!(
        "n={n} lists={lists} sample={} kmeans {t_km:.2} s ({} iterations), assign {t_as:.2} s",
        sample.len() / dims,
        c.iterations
    );
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); c.count()];
    for (i, a) in assign.iter().enumerate() {
        members[a.first as usize].push(i as u32);
    }
    let nq = 200;
    let probes0 = default_probes(lists);
    for probes in [1, 2, 4, 8, probes0 / 2, probes0, 2 * probes0] {
        let (mut hits, mut scanned) = (0, 0);
        for q in qs.chunks(dims).take(nq) {
            let mut truth: Vec<(f32, u32)> = base
                .chunks(dims)
                .enumerate()
                .map(|(i, x)| (l2_squared(q, x), i as u32))
                .collect();
            truth.select_nth_unstable_by(10, |a, b| a.0.total_cmp(&b.0));
            let truth: HashSet<u32> = truth[..10].iter().map(|x| x.1).collect();
            let mut order: Vec<(f32, usize)> = (0..c.count())
                .map(|j| (l2_squared(q, c.get(j)), j))
                .collect();
            order.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut cand: Vec<(f32, u32)> = Vec::new();
            for &(_, j) in order.iter().take(probes) {
                for &i in &members[j] {
                    cand.push((
                        l2_squared(q, &base[i as usize * dims..(i as usize + 1) * dims]),
                        i,
                    ));
                }
            }
            scanned += cand.len();
            cand.sort_by(|a, b| a.0.total_cmp(&b.0));
            hits += cand
                .iter()
                .take(10)
                .filter(|x| truth.contains(&x.1))
                .count();
        }
        println!(
            "probes={probes:<4} recall@10={:.4} rows scanned/query={}",
            hits as f64 / (nq * 10) as f64,
            scanned / nq
        );
    }
}
