//! `pg_recall-train`: trains the reference two-tower model on interaction files and writes
//! `model.safetensors` + `config.json` for `recall.load_model`.

use std::path::PathBuf;
use std::time::Instant;

use recall_train::data::Dataset;
use recall_train::train::{evaluate, export, train, Options};

const USAGE: &str = "usage: pg_recall-train --data DIR --out DIR [--epochs N] [--batch N] [--lr X]
       [--temperature X] [--seed N] [--no-logq] [--hidden 256,128] [--output N] [--history N]

DIR holds interactions.tsv (user, item, timestamp), users.tsv (user, features) and
items.tsv (item, category, tags, features); see crates/recall-train/src/data.rs.";

fn main() {
    if let Err(e) = run() {
        eprintln!("pg_recall-train: {e}\n\n{USAGE}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let mut o = Options::default();
    let (mut data, mut out) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        let num = |v: String| {
            v.parse::<f64>()
                .map_err(|_| format!("{a}: not a number: {v}"))
        };
        match a.as_str() {
            "--data" => data = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--epochs" => o.epochs = num(value()?)? as usize,
            "--batch" => o.batch = num(value()?)? as usize,
            "--lr" => o.lr = num(value()?)? as f32,
            "--temperature" => o.temperature = num(value()?)? as f32,
            "--seed" => o.seed = num(value()?)? as u64,
            "--output" => o.output = num(value()?)? as usize,
            "--history" => o.history = num(value()?)? as usize,
            "--hidden" => {
                o.hidden = value()?
                    .split(',')
                    .map(|h| h.parse().map_err(|_| format!("--hidden: bad width {h}")))
                    .collect::<Result<_, _>>()?
            }
            "--no-logq" => o.log_q = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let (data, out) = (
        data.ok_or("--data is required")?,
        out.ok_or("--out is required")?,
    );
    if o.batch < 2 || o.temperature <= 0.0 || o.lr <= 0.0 || o.output == 0 {
        return Err(
            "--batch must be ≥ 2; --temperature, --lr and --output must be positive".into(),
        );
    }
    let d = Dataset::read(&data)?;
    let split = d.split(o.history);
    println!(
        "data: {} users, {} items, {} training interactions, {} held-out; logQ correction {}",
        d.users - 1,
        d.item_exists.iter().filter(|&&e| e).count(),
        split.train.len(),
        split.test.len(),
        if o.log_q { "on" } else { "off" }
    );
    let t0 = Instant::now();
    let trained = train(&d, &split, &o, |epoch, loss| {
        println!(
            "epoch {epoch:>3}/{}  loss {loss:.4}  {:.1}s",
            o.epochs,
            t0.elapsed().as_secs_f64()
        )
    });
    let ev = evaluate(&d, &split, &trained, &[10, 50, 100]);
    for (n, k) in ev.ks.iter().enumerate() {
        println!(
            "exact Recall@{k:<3} model {:.4}  most-popular {:.4}",
            ev.model[n], ev.popular[n]
        );
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    std::fs::write(out.join("model.safetensors"), export(&trained)).map_err(|e| e.to_string())?;
    let config = serde_json::to_string_pretty(&trained.config).expect("config");
    std::fs::write(out.join("config.json"), config).map_err(|e| e.to_string())?;
    println!("wrote {}/model.safetensors and config.json", out.display());
    Ok(())
}
