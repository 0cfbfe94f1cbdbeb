//! The model catalog: `recall.load_model`, `recall.load_model_file`, `recall.drop_model` and
//! `recall.model_info` over the table `recall.models` (see `sql/tower.sql`).
//!
//! A model is checked completely (container, config, every tensor's dtype and shape) before
//! it is stored, so a stored version always loads. Loading a name again adds a version; old
//! versions stay until dropped, which is what blue/green re-embedding needs.

use pgrx::prelude::*;
use pgrx::JsonB;
use recall_core::tower::{Model, Side};
use serde_json::json;

use super::{cache, model_name, raise};

/// One value from a statement that changes `recall.models`. Run without a row limit: with
/// one, the executor stops the INSERT ... RETURNING at its first row and the catalog's
/// statement trigger (the cache invalidation) never fires.
fn change<T: pgrx::FromDatum + pgrx::IntoDatum>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Result<Option<T>, pgrx::spi::SpiError> {
    Spi::connect_mut(|client| client.update(sql, None, args)?.first().get_one())
}

fn store(name: &str, weights: &[u8], config: Option<JsonB>) -> i32 {
    let config = config.map(|c| c.0.to_string());
    let model = Model::load(weights, config.as_deref())
        .unwrap_or_else(|e| raise(&format!("cannot load model \"{name}\""), &e));
    let config = serde_json::to_value(&model.config).expect("config serialises");
    // Concurrent loads of one name would otherwise pick the same next version.
    Spi::run_with_args(
        "SELECT pg_advisory_xact_lock(hashtext('recall.models'), hashtext($1))",
        &[name.into()],
    )
    .unwrap_or_else(|e| error!("{e}"));
    let version = change::<i32>(
        "INSERT INTO recall.models (name, version, config, weights)
         SELECT $1, coalesce(max(version), 0) + 1, $2, $3 FROM recall.models WHERE name = $1
         RETURNING version",
        &[name.into(), JsonB(config).into(), weights.into()],
    )
    .unwrap_or_else(|e| error!("could not store model \"{name}\": {e}"))
    .expect("RETURNING gives the version");
    version
}

#[pg_extern(sql = false)]
fn load_model(name: Option<&str>, weights: Option<&[u8]>, config: Option<JsonB>) -> i32 {
    let name = model_name(name);
    let Some(weights) = weights else {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "model weights must not be NULL"
        );
    };
    store(name, weights, config)
}

#[pg_extern(sql = false)]
fn load_model_file(name: Option<&str>, path: Option<&str>, config: Option<JsonB>) -> i32 {
    let name = model_name(name);
    if !unsafe { pgrx::pg_sys::superuser() } {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "must be superuser to load a model from a server file",
            "Other roles can pass the file's bytes to recall.load_model(name, weights)."
        );
    }
    let Some(path) = path else {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "model file path must not be NULL"
        );
    };
    let weights = std::fs::read(path).unwrap_or_else(|e| {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_UNDEFINED_FILE,
            format!("could not read model file \"{path}\": {e}")
        );
    });
    store(name, &weights, config)
}

#[pg_extern(sql = false)]
fn drop_model(name: Option<&str>, version: Option<i32>) -> i64 {
    let name = model_name(name);
    let dropped = change::<i64>(
        "WITH d AS (DELETE FROM recall.models WHERE name = $1 AND ($2::int IS NULL OR version = $2) RETURNING 1)
         SELECT count(*) FROM d",
        &[name.into(), version.into()],
    )
    .unwrap_or_else(|e| error!("could not drop model \"{name}\": {e}"))
    .unwrap_or(0);
    if dropped == 0 {
        let what = match version {
            Some(v) => format!("model \"{name}\" version {v} does not exist"),
            None => format!("model \"{name}\" does not exist"),
        };
        ereport!(ERROR, PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, what);
    }
    dropped
}

fn tower_info(model: &Model, side: Side) -> serde_json::Value {
    match model.tower(side) {
        None => serde_json::Value::Null,
        Some(t) => json!({
            "inputs": t.input_names().collect::<Vec<_>>(),
            "features": t.features_len(),
            "output_dim": t.output_dim(),
            "parameters": t.parameters(),
        }),
    }
}

#[pg_extern(sql = false)]
fn model_info(name: Option<&str>) -> JsonB {
    let name = model_name(name);
    let (version, model) = cache::get(name);
    let (versions, created, bytes) = Spi::connect(|client| {
        let versions: Vec<i32> = client
            .select(
                "SELECT version FROM recall.models WHERE name = $1 ORDER BY version",
                None,
                &[name.into()],
            )?
            .map(|r| r.get::<i32>(1).map(|v| v.unwrap_or_default()))
            .collect::<Result<_, _>>()?;
        let row = client
            .select(
                "SELECT created_at::text, octet_length(weights)::bigint FROM recall.models
                 WHERE name = $1 AND version = $2",
                Some(1),
                &[name.into(), version.into()],
            )?
            .first();
        Ok::<_, pgrx::spi::SpiError>((versions, row.get::<String>(1)?, row.get::<i64>(2)?))
    })
    .unwrap_or_else(|e| error!("could not read recall.models: {e}"));
    JsonB(json!({
        "name": name,
        "version": version,
        "versions": versions,
        "created_at": created,
        "weights_bytes": bytes,
        "user_tower": tower_info(&model, Side::User),
        "item_tower": tower_info(&model, Side::Item),
        "config": model.config,
    }))
}
