use recall_core::distance::Metric;
use recall_core::hnsw::build::MemGraph;
use recall_core::hnsw::search::{
    descend_for_scan, Continuation, GraphView, ResumableSearch, Scored,
};
use recall_core::hnsw::HnswParams;
use recall_core::rng::SplitMix64;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let n: usize = a.get(1).map(|s| s.parse().unwrap()).unwrap_or(3000);
    let dims: usize = a.get(2).map(|s| s.parse().unwrap()).unwrap_or(64);
    let quant = a.get(3).map(|s| s == "1").unwrap_or(true);
    let (centres, nq, k, ef) = (20usize, 50usize, 200usize, 1000usize);
    let mut rng = SplitMix64::new(7);
    let mut gauss = move || {
        let (u, v) = (rng.next_f64_open0(), rng.next_f64_open0());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    };
    let c: Vec<f32> = (0..centres * dims).map(|_| gauss()).collect();
    let mut pick = SplitMix64::new(8);
    let mut all = Vec::new();
    for _ in 0..n + nq {
        let k = pick.below(centres as u64) as usize;
        let mut x: Vec<f32> = (0..dims).map(|d| c[k * dims + d] + gauss()).collect();
        let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
        x.iter_mut().for_each(|v| *v /= norm);
        all.extend(x);
    }
    let (base, qs) = all.split_at(n * dims);
    let p = HnswParams {
        m: 16,
        ef_construction: 64,
        metric: Metric::L2,
        seed: 1,
        quantized: quant,
    };
    let g = MemGraph::build(
        base.to_vec(),
        dims,
        &p,
        &AtomicBool::new(false),
        &AtomicUsize::new(0),
    )
    .unwrap();
    let mut indeg = vec![0u32; n];
    for i in 0..n as u32 {
        for &t in &g.links(i)[0] {
            indeg[t as usize] += 1;
        }
    }
    println!(
        "zero in-degree on layer 0: {}",
        indeg.iter().filter(|&&d| d == 0).count()
    );
    let (mut missed, mut late) = (0, 0);
    for q in qs.chunks(dims) {
        let mut d: Vec<(f32, u32)> = base
            .chunks(dims)
            .enumerate()
            .map(|(i, x)| {
                (
                    x.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(),
                    i as u32,
                )
            })
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0));
        let truth: HashSet<u32> = d[..k].iter().map(|x| x.1).collect();
        let mut view = g.estimate_view(q).unwrap();
        let entry = g.entry().unwrap();
        let start = Scored {
            dist: view.distance(entry).unwrap(),
            id: entry,
        };
        let mut visited = HashSet::new();
        let eps = descend_for_scan(
            &mut view,
            start,
            g.level(entry) as usize,
            &mut visited,
            &mut Vec::new(),
        );
        visited.clear();
        let mut s = ResumableSearch::new(&eps, ef, Continuation::Relaxed, &mut visited);
        let mut first = HashSet::new();
        for _ in 0..ef {
            match s.next(&mut view, &mut visited, u64::MAX) {
                Some(x) => {
                    first.insert(x.id);
                }
                None => break,
            }
        }
        let m = truth.iter().filter(|i| !first.contains(i)).count();
        missed += m;
        for &i in truth.iter().filter(|i| !first.contains(i)) {
            let rank = d.iter().position(|x| x.1 == i).unwrap();
            let est = view.distance(i).unwrap();
            let est_rank = d
                .iter()
                .filter(|x| view.distance(x.1).unwrap() < est)
                .count();
            println!("  missing id {i} exact rank {rank} visited {} indeg {} estimate rank {est_rank} exact {:.4} est {:.4}", visited.contains(&i), indeg[i as usize], d[rank].0, est);
            if indeg[i as usize] <= 2 {
                late += 1;
            }
        }
    }
    println!("n {n} dims {dims} quantized {quant}: true top-{k} rows missing from the first batch of {ef}: {:.2} per query ({} of them with in-degree <= 2)", missed as f64 / nq as f64, late);
}
