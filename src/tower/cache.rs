//! The per-backend model cache.
//!
//! Parsing a model costs milliseconds (it copies and checks every tensor), a forward pass
//! microseconds, so each backend keeps the models it used. Freshness is checked once per
//! model per transaction: a transaction generation counter is bumped by a transaction
//! callback, and the first use of a model in a new generation asks the catalog for its
//! latest version. A version loaded and committed elsewhere is therefore picked up by this
//! backend's next transaction, and a statement calling the tower a million times reads the
//! catalog once.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;
use recall_core::tower::Model;

thread_local! {
    static GENERATION: Cell<u64> = const { Cell::new(1) };
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

/// The generation of the current transaction; changes at every transaction end.
pub fn generation() -> u64 {
    GENERATION.with(|g| g.get())
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact_end(_event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    GENERATION.with(|g| g.set(g.get() + 1));
}

pub fn init() {
    unsafe { pg_sys::RegisterXactCallback(Some(on_xact_end), std::ptr::null_mut()) };
}

/// Forgets `name`, so this transaction's next use reads the catalog again (after a load or
/// a drop in this backend).
pub fn forget(name: &str) {
    MODELS.with(|m| m.borrow_mut().remove(name));
}

/// Cached (name, version) pairs, for `recall.tower_stats()`.
pub fn cached_versions() -> Vec<(String, i32)> {
    MODELS.with(|m| {
        let mut v: Vec<_> = m.borrow().iter().map(|(n, c)| (n.clone(), c.version)).collect();
        v.sort();
        v
    })
}

fn latest_version(name: &str) -> Option<i32> {
    count(|s| s.catalog_lookups += 1);
    Spi::get_one_with_args::<i32>(
        "SELECT max(version) FROM recall.models WHERE name = $1",
        &[name.into()],
    )
    .unwrap_or_else(|e| error!("could not read recall.models: {e}"))
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

/// The latest committed (or this transaction's own) version of `name`.
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
            Cached { version, model: model.clone(), checked: generation },
        )
    });
    (version, model)
}
