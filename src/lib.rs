//! pg_recall: the recall (candidate generation) stage of recommendation and search, inside
//! PostgreSQL. This crate is the pgrx glue; algorithms live in `recall-core`.

pub mod am;
pub mod eval;
pub mod hnsw;
pub mod index_info;
pub mod intent;
pub mod ivf;
pub mod opclass;
pub mod parallel;
pub mod rerank;
pub mod storage;
pub mod tower;
pub mod tune;
pub mod vector;

::pgrx::pg_module_magic!(name, version);

pgrx::extension_sql_file!("../sql/vector.sql", name = "vector_type", bootstrap);
pgrx::extension_sql_file!(
    "../sql/hnsw.sql",
    name = "hnsw_am",
    requires = ["vector_type"]
);
pgrx::extension_sql_file!(
    "../sql/ivfflat.sql",
    name = "ivfflat_am",
    requires = ["vector_type"]
);
pgrx::extension_sql_file!(
    "../sql/eval.sql",
    name = "eval",
    requires = ["vector_type", "ivfflat_am"]
);
pgrx::extension_sql_file!(
    "../sql/tower.sql",
    name = "tower",
    requires = ["vector_type", "ivfflat_am"]
);

/// Registers the GUCs and index options; runs when a backend first loads the library.
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    hnsw::options::init();
    ivf::options::init();
    tower::init();
}

#[cfg(any(test, feature = "pg_test"))]
pub mod test_support;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
