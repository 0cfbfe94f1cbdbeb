//! The per-backend model cache.
//!
//! Parsing a model costs milliseconds (it copies and checks every tensor), a forward pass
//! microseconds, so each backend keeps the models it used.
//!
//! Freshness rides on PostgreSQL's own cache invalidation instead of a catalog query per
//! call: every statement that changes `recall.models` (load, drop, or plain DML, through a
//! statement trigger) queues a relcache invalidation for the table. It is delivered at commit
//! to every backend, which processes it when its next transaction starts; our relcache
//! callback then bumps a generation counter, and the first use of a model in a new
//! generation asks the catalog for the latest version. So a committed new version is used by
//! every backend's next transaction, and the catalog is read at most once per model per
//! transaction — usually not at all.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;
use recall_core::tower::Model;

thread_local! {
    static GENERATION: Cell<u64> = const { Cell::new(1) };
    static MODELS_OID: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
    static MODELS: RefCell<HashMap<String, Cached>> = RefCell::new(HashMap::new());
    static STATS: RefCell<Stats> = RefCell::new(Stats::default());
}

struct Cached {
    version: i32,
    model: Rc<Model>,
    checked: u64,
}

/// Counters shown by `recall.tower_stats()`; tests use them to prove how often the catalog
/// is read and the towers run.
#[derive(Clone, Copy, Default, Debug)]
pub struct Stats {
    pub catalog_lookups: u64,
    pub model_parses: u64,
    pub user_tower_calls: u64,
    pub item_tower_calls: u64,
    pub forward_passes: u64,
}

pub fn stats() -> Stats {
    STATS.with(|s| *s.borrow())
}

pub fn count(f: impl FnOnce(&mut Stats)) {
    STATS.with(|s| f(&mut s.borrow_mut()));
}

fn generation() -> u64 {
    GENERATION.with(|g| g.get())
}

fn invalidate_all() {
    GENERATION.with(|g| g.set(g.get() + 1));
}

/// `recall.models`' oid, looked up per generation (the extension can be dropped and made
/// again). Invalid until the first look-up.
fn models_oid() -> pg_sys::Oid {
    MODELS_OID.with(|o| o.get())
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // InvalidOid: the whole relcache was reset (e.g. an invalidation queue overflow).
    if relid == pg_sys::InvalidOid || relid == models_oid() {
        invalidate_all();
    }
}

pub fn init() {
    unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(on_relcache), pg_sys::Datum::from(0)) };
}

/// Called by the statement trigger on `recall.models` with the table's oid: tells every
/// backend (this one at its next command, the others at their next transaction after
/// commit) that the catalog changed.
#[pg_extern(sql = false)]
fn models_changed(table: pg_sys::Oid) {
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(table) };
    invalidate_all();
}

/// Forgets `name`, so this transaction's next use reads the catalog again (after a load or
/// a drop in this backend).
pub fn forget(name: &str) {
    MODELS.with(|m| m.borrow_mut().remove(name));
}

/// Cached (name, version) pairs, for `recall.tower_stats()`.
pub fn cached_versions() -> Vec<(String, i32)> {
    MODELS.with(|m| {
        let mut v: Vec<_> = m
            .borrow()
            .iter()
            .map(|(n, c)| (n.clone(), c.version))
            .collect();
        v.sort();
        v
    })
}

fn latest_version(name: &str) -> Option<i32> {
    count(|s| s.catalog_lookups += 1);
    let (oid, version) = Spi::connect(|client| {
        let row = client
            .select(
                "SELECT 'recall.models'::regclass::oid, max(version) FROM recall.models WHERE name = $1",
                Some(1),
                &[name.into()],
            )?
            .first();
        Ok::<_, pgrx::spi::SpiError>((row.get::<pg_sys::Oid>(1)?, row.get::<i32>(2)?))
    })
    .unwrap_or_else(|e| error!("could not read recall.models: {e}"));
    if let Some(oid) = oid {
        MODELS_OID.with(|o| o.set(oid));
    }
    version
}

fn parse(name: &str, version: i32) -> Model {
    let (config, weights) = Spi::connect(|client| {
        let row = client
            .select(
                "SELECT config::text, weights FROM recall.models WHERE name = $1 AND version = $2",
                Some(1),
                &[name.into(), version.into()],
            )?
            .first();
        Ok::<_, pgrx::spi::SpiError>((row.get::<String>(1)?, row.get::<Vec<u8>>(2)?))
    })
    .unwrap_or_else(|e| error!("could not read recall.models: {e}"));
    let (Some(config), Some(weights)) = (config, weights) else {
        error!("model \"{name}\" version {version} disappeared from recall.models")
    };
    count(|s| s.model_parses += 1);
    Model::load(&weights, Some(&config))
        .unwrap_or_else(|e| super::raise(&format!("model \"{name}\" version {version}"), &e))
}

/// The latest version of `name` this transaction can see.
pub fn get(name: &str) -> (i32, Rc<Model>) {
    let generation = generation();
    let hit = MODELS.with(|m| {
        m.borrow()
            .get(name)
            .filter(|c| c.checked == generation)
            .map(|c| (c.version, c.model.clone()))
    });
    if let Some(hit) = hit {
        return hit;
    }
    let Some(version) = latest_version(name) else {
        forget(name);
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("model \"{name}\" does not exist"),
            "recall.models has no version of it; load one with recall.load_model()."
        );
    };
    let reuse = MODELS.with(|m| {
        m.borrow()
            .get(name)
            .filter(|c| c.version == version)
            .map(|c| c.model.clone())
    });
    let model = reuse.unwrap_or_else(|| Rc::new(parse(name, version)));
    MODELS.with(|m| {
        m.borrow_mut().insert(
            name.to_owned(),
            Cached {
                version,
                model: model.clone(),
                checked: generation,
            },
        )
    });
    (version, model)
}
