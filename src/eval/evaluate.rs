//! `recall.evaluate(index, queries, k, filter)` and `recall.evaluate_curve(index, queries, k,
//! params, filter)`: the recall an index really delivers, measured by running each query
//! through the index and as an exact scan, so silent failures (too few probes, a broken
//! build, a filter that starves the scan) show up as numbers.
//!
//! Settings are changed inside a GUC nest level, the way a function's `SET` clause does it,
//! and restored before returning, so the caller's session is left as it was.

use std::collections::HashMap;
use std::ffi::CString;
use std::time::Instant;

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use recall_core::distance::Metric;
use recall_core::eval::{percentile, score};
use serde_json::json;

use crate::vector::datum::vector_type_oid;
use crate::vector::{Vector, VectorBuf};

/// What the evaluator needs to know about the index.
struct Target {
    oid: pg_sys::Oid,
    am: String,
    index_name: String,
    table: String,
    column: String,
    operator: &'static str,
}

fn operator(m: Metric) -> &'static str {
    match m {
        Metric::L2 => "<->",
        Metric::InnerProduct => "<#>",
        Metric::Cosine => "<=>",
        Metric::L1 => "<+>",
    }
}

fn target(index: pg_sys::Oid) -> Target {
    unsafe {
        let rel = pg_sys::index_open(index, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let am = match crate::am::kind(rel) {
            crate::am::Kind::Hnsw => "hnsw",
            crate::am::Kind::Ivfflat => "ivfflat",
        }
        .to_string();
        let metric = crate::opclass::opclass_metric(rel);
        let heap = (*(*rel).rd_index).indrelid;
        let attnum = *(*(*rel).rd_index).indkey.values.as_ptr();
        let index_name = crate::opclass::relname(rel);
        pg_sys::index_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let (table, column) = Spi::connect(|c| {
            let row = c
                .select(
                    "SELECT $1::regclass::text, quote_ident(attname::text) FROM pg_attribute
                     WHERE attrelid = $1 AND attnum = $2",
                    Some(1),
                    &[heap.into(), attnum.into()],
                )?
                .first();
            Ok::<_, pgrx::spi::SpiError>((row.get::<String>(1)?, row.get::<String>(2)?))
        })
        .unwrap_or_else(|e| error!("{e}"));
        let (Some(table), Some(column)) = (table, column) else {
            error!(
                "index \"{index_name}\" is on an expression; recall.evaluate needs a column index"
            )
        };
        Target {
            oid: index,
            am,
            index_name,
            table,
            column,
            operator: operator(metric),
        }
    }
}

/// Sets a GUC for the current nest level (restored by `AtEOXact_GUC`).
fn set(name: &str, value: &str) {
    let (n, v) = (
        CString::new(name).expect("no NUL"),
        CString::new(value).expect("no NUL"),
    );
    unsafe {
        pg_sys::set_config_option(
            n.as_ptr(),
            v.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            PgLogLevel::ERROR as i32,
            false,
        );
    }
}

/// Runs `f` with `settings` in force and restores the previous values afterwards.
fn with_settings<R>(settings: &[(&str, String)], f: impl FnOnce() -> R) -> R {
    let level = unsafe { pg_sys::NewGUCNestLevel() };
    for (n, v) in settings {
        set(n, v);
    }
    let r = f();
    unsafe { pg_sys::AtEOXact_GUC(true, level) };
    r
}

fn current(name: &str) -> String {
    Spi::get_one_with_args::<String>("SELECT current_setting($1)", &[name.into()])
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn read_queries(sql: &str) -> Vec<Vec<f32>> {
    Spi::connect(|c| {
        let table = c.select(sql, None, &[])?;
        if table.is_empty() {
            return Ok(Vec::new());
        }
        let t = table.column_type_oid(1)?.value();
        if t != vector_type_oid() {
            let name =
                Spi::get_one_with_args::<String>("SELECT format_type($1, NULL)", &[t.into()])
                    .ok()
                    .flatten()
                    .unwrap_or_default();
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                format!("queries must return vectors in their first column, not {name}")
            );
        }
        let mut out = Vec::with_capacity(table.len());
        // Iterating advances the position the raw datum is read from.
        let mut table = table.rewind();
        while table.next().is_some() {
            if let Some(d) = table.get_datum_by_ordinal(1)? {
                out.push(
                    unsafe { Vector::from_datum_unchecked(d) }
                        .as_slice()
                        .to_vec(),
                );
            }
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .unwrap_or_else(|e: pgrx::spi::SpiError| error!("could not run the queries: {e}"))
}

type Rows = Vec<(String, f64)>;

/// Each query's (ctid, distance) rows and its latency in ms.
fn run(client: &SpiClient<'_>, sql: &str, queries: &[Vec<f32>]) -> Vec<(Rows, f64)> {
    let stmt = client
        .prepare(sql, &[pg_sys::PgOid::from(vector_type_oid())])
        .unwrap_or_else(|e| error!("could not prepare the evaluation query: {e}"));
    queries
        .iter()
        .map(|q| {
            pgrx::check_for_interrupts!();
            let arg: DatumWithOid = VectorBuf::from_slice(q).into();
            let t0 = Instant::now();
            let table = client
                .select(&stmt, None, &[arg])
                .unwrap_or_else(|e| error!("{e}"));
            let rows: Rows = table
                .map(|r| {
                    (
                        r.get::<String>(1).ok().flatten().unwrap_or_default(),
                        r.get::<f64>(2).ok().flatten().unwrap_or(f64::INFINITY),
                    )
                })
                .collect();
            (rows, t0.elapsed().as_secs_f64() * 1000.0)
        })
        .collect()
}

/// One result row: recall, recall_p5, ndcg, p50, p95, p99, qps, params, queries.
type Row = (f64, f64, f64, f64, f64, f64, f64, JsonB, i32);

fn summarise(
    indexed: &[(Rows, f64)],
    exact: &[(Rows, f64)],
    k: usize,
    params: serde_json::Value,
) -> Row {
    let scores: Vec<_> = indexed
        .iter()
        .zip(exact)
        .filter_map(|((got, _), (truth, _))| score(got, truth, k))
        .collect();
    let recalls: Vec<f64> = scores.iter().map(|s| s.recall).collect();
    let mean = |v: &[f64]| {
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let lat: Vec<f64> = indexed.iter().map(|(_, ms)| *ms).collect();
    let total_s: f64 = lat.iter().sum::<f64>() / 1000.0;
    (
        mean(&recalls),
        percentile(&recalls, 5.0),
        mean(&scores.iter().map(|s| s.ndcg).collect::<Vec<_>>()),
        percentile(&lat, 50.0),
        percentile(&lat, 95.0),
        percentile(&lat, 99.0),
        if total_s > 0.0 {
            lat.len() as f64 / total_s
        } else {
            f64::NAN
        },
        JsonB(params),
        scores.len() as i32,
    )
}

/// The knob a curve sweeps and the settings that describe a run.
fn knob(am: &str) -> &'static str {
    if am == "hnsw" {
        "hnsw.ef_search"
    } else {
        "ivfflat.probes"
    }
}

/// The settings as the scan sees them: the GUCs, and the value the index will really use
/// (a calibrated ef_search or the index's own probe count where the GUC leaves it open).
fn params_in_force(t: &Target) -> serde_json::Value {
    let mut m = HashMap::new();
    for name in [knob(&t.am), &format!("{}.iterative_scan", t.am)] {
        m.insert(name.to_string(), json!(current(name)));
    }
    let effective = unsafe {
        let rel = pg_sys::index_open(t.oid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let v = if t.am == "hnsw" {
            (
                "effective_ef_search",
                crate::hnsw::options::effective_ef_search(&crate::hnsw::meta::read(rel)),
            )
        } else {
            (
                "effective_probes",
                crate::ivf::options::effective_probes(&crate::ivf::meta::read(rel)),
            )
        };
        pg_sys::index_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        v
    };
    m.insert(effective.0.to_string(), json!(effective.1));
    json!(m)
}

fn evaluate_points(
    index: pg_sys::Oid,
    queries: Option<&str>,
    k: Option<i32>,
    filter: Option<&str>,
    points: &[Option<i32>],
) -> Vec<Row> {
    let Some(queries) = queries else {
        error!("queries must not be NULL")
    };
    let k = match k {
        Some(k) if k >= 1 => k as usize,
        Some(k) => error!("k must be at least 1, not {k}"),
        None => error!("k must not be NULL"),
    };
    let t = target(index);
    let vectors = read_queries(queries);
    if vectors.is_empty() {
        error!("queries returned no vectors");
    }
    let filter = filter.map(|f| format!("WHERE ({f})")).unwrap_or_default();
    let sql = format!(
        "SELECT ctid::text, ({col} {op} $1)::float8 FROM {table} {filter} ORDER BY {col} {op} $1 LIMIT {k}",
        col = t.column,
        op = t.operator,
        table = t.table
    );
    let exact = with_settings(
        &[
            ("enable_indexscan", "off".into()),
            ("enable_bitmapscan", "off".into()),
        ],
        || Spi::connect(|c| run(c, &sql, &vectors)),
    );
    points
        .iter()
        .map(|point| {
            let mut settings = vec![
                ("enable_seqscan", "off".to_string()),
                ("enable_bitmapscan", "off".into()),
            ];
            if let Some(p) = point {
                settings.push((knob(&t.am), p.to_string()));
            }
            with_settings(&settings, || {
                Spi::connect(|c| {
                    let plan: Vec<String> = c
                        .select(
                            &format!("EXPLAIN (COSTS OFF) {sql}"),
                            None,
                            &[VectorBuf::from_slice(&vectors[0]).into()],
                        )
                        .unwrap_or_else(|e| error!("{e}"))
                        .map(|r| r.get::<String>(1).ok().flatten().unwrap_or_default())
                        .collect();
                    let uses = format!("using {} on", t.index_name);
                    if !plan.iter().any(|l| l.contains(&uses)) {
                        error!(
                            "the planner does not use index \"{}\" for this query; plan:\n{}",
                            t.index_name,
                            plan.join("\n")
                        );
                    }
                    let indexed = run(c, &sql, &vectors);
                    summarise(&indexed, &exact, k, params_in_force(&t))
                })
            })
        })
        .collect()
}

#[allow(clippy::type_complexity)]
#[pg_extern(sql = false)]
fn evaluate(
    index: pg_sys::Oid,
    queries: Option<&str>,
    k: Option<i32>,
    filter: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(recall, f64),
        name!(recall_p5, f64),
        name!(ndcg, f64),
        name!(p50_ms, f64),
        name!(p95_ms, f64),
        name!(p99_ms, f64),
        name!(qps, f64),
        name!(params, JsonB),
        name!(queries, i32),
    ),
> {
    TableIterator::new(evaluate_points(index, queries, k, filter, &[None]))
}

#[allow(clippy::type_complexity)]
#[pg_extern(sql = false)]
fn evaluate_curve(
    index: pg_sys::Oid,
    queries: Option<&str>,
    k: Option<i32>,
    params: Option<Vec<Option<i32>>>,
    filter: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(recall, f64),
        name!(recall_p5, f64),
        name!(ndcg, f64),
        name!(p50_ms, f64),
        name!(p95_ms, f64),
        name!(p99_ms, f64),
        name!(qps, f64),
        name!(params, JsonB),
        name!(queries, i32),
    ),
> {
    let points = match params {
        Some(p) if !p.is_empty() && p.iter().all(|v| v.is_some()) => p,
        _ => error!("params must be a non-empty array of ef_search or probes values without NULLs"),
    };
    TableIterator::new(evaluate_points(index, queries, k, filter, &points))
}
