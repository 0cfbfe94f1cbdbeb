//! pg_recall: the recall (candidate generation) stage of recommendation and search, inside
//! PostgreSQL. This crate is the pgrx glue; algorithms live in `recall-core`.

pub mod vector;

::pgrx::pg_module_magic!(name, version);

pgrx::extension_sql_file!("../sql/vector.sql", name = "vector_type", bootstrap);

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
