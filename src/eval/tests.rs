#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::test_support::{assert_sql_error, float8, make_table, text};

    fn row(sql: &str) -> (f64, f64, i32) {
        Spi::connect(|c| {
            let r = c.select(sql, Some(1), &[])?.first();
            Ok::<_, pgrx::spi::SpiError>((
                r.get_by_name::<f64, _>("recall")?.unwrap(),
                r.get_by_name::<f64, _>("ndcg")?.unwrap(),
                r.get_by_name::<i32, _>("queries")?.unwrap(),
            ))
        })
        .unwrap()
    }

    const QUERIES: &str = "'SELECT v FROM ev WHERE id % 50 = 0'";

    #[pg_test]
    fn exact_settings_score_one_and_crippled_ones_less() {
        make_table("ev", 2000, 8);
        Spi::run("CREATE INDEX ev_hnsw ON ev USING hnsw (v vector_l2_ops)").unwrap();
        let (recall, ndcg, n) = row(&format!(
            "SELECT * FROM recall.evaluate_curve('ev_hnsw', {QUERIES}, 10, '{{400}}')"
        ));
        assert!(
            recall == 1.0 && (ndcg - 1.0).abs() < 1e-12 && n == 40,
            "{recall} {ndcg} {n}"
        );
        Spi::run("SET LOCAL hnsw.iterative_scan = off").unwrap();
        let (crippled, _, _) = row(&format!(
            "SELECT * FROM recall.evaluate_curve('ev_hnsw', {QUERIES}, 10, '{{1}}')"
        ));
        assert!(
            crippled < 0.5,
            "ef_search 1 without iterative scan: recall {crippled}"
        );
        // The filter applies to both sides: exact answers are among the matching rows. A
        // bounded scan starves on a 1% filter, and evaluate shows it.
        let (starved, _, _) = row(&format!(
            "SELECT * FROM recall.evaluate_curve('ev_hnsw', {QUERIES}, 10, '{{400}}', 'category = 3')"
        ));
        assert!(starved < 0.5, "bounded scan with a 1% filter: {starved}");
        Spi::run("RESET hnsw.iterative_scan").unwrap();
        let (filtered, _, n) = row(&format!(
            "SELECT * FROM recall.evaluate_curve('ev_hnsw', {QUERIES}, 10, '{{400}}', 'category = 3')"
        ));
        assert!(
            filtered == 1.0 && n == 40,
            "filtered: {filtered} over {n} queries"
        );

        Spi::run("DROP INDEX ev_hnsw; CREATE INDEX ev_ivf ON ev USING ivfflat (v vector_l2_ops) WITH (lists = 40)").unwrap();
        Spi::run("SET LOCAL ivfflat.iterative_scan = off").unwrap();
        let curve: Vec<(i32, f64)> = Spi::connect(|c| {
            c.select(
                &format!("SELECT (params->>'ivfflat.probes')::int, recall FROM recall.evaluate_curve('ev_ivf', {QUERIES}, 10, '{{1, 40}}')"),
                None,
                &[],
            )?
            .map(|r| Ok((r.get::<i32>(1)?.unwrap(), r.get::<f64>(2)?.unwrap())))
            .collect::<Result<_, pgrx::spi::SpiError>>()
        })
        .unwrap();
        assert!(
            curve[0].0 == 1 && curve[0].1 < 1.0,
            "one probe of 40 lists: {curve:?}"
        );
        assert!(curve[1] == (40, 1.0), "{curve:?}");
    }

    #[pg_test]
    fn the_callers_settings_survive() {
        make_table("ev", 500, 4);
        Spi::run("CREATE INDEX ev_hnsw ON ev USING hnsw (v vector_l2_ops); SET LOCAL hnsw.ef_search = 33").unwrap();
        let p = text(&format!(
            "SELECT params::text FROM recall.evaluate_curve('ev_hnsw', {QUERIES}, 5, '{{7}}')"
        ));
        assert!(p.contains("\"hnsw.ef_search\": \"7\""), "{p}");
        assert_eq!(text("SELECT current_setting('hnsw.ef_search')"), "33");
        assert_eq!(text("SELECT current_setting('enable_seqscan')"), "on");
        assert_eq!(text("SELECT current_setting('enable_indexscan')"), "on");
        let p = text(&format!(
            "SELECT params::text FROM recall.evaluate('ev_hnsw', {QUERIES}, 5)"
        ));
        assert!(p.contains("\"hnsw.ef_search\": \"33\""), "{p}");
        assert!(
            float8(&format!(
                "SELECT qps FROM recall.evaluate('ev_hnsw', {QUERIES})"
            )) > 0.0
        );
    }

    #[pg_test]
    fn bad_arguments_are_errors() {
        make_table("ev", 100, 4);
        Spi::run("CREATE INDEX ev_hnsw ON ev USING hnsw (v vector_l2_ops)").unwrap();
        assert_sql_error(
            &format!("SELECT * FROM recall.evaluate('ev_hnsw', {QUERIES}, 0)"),
            "k must be at least 1, not 0",
        );
        assert_sql_error(
            "SELECT * FROM recall.evaluate('ev_hnsw', 'SELECT id FROM ev', 10)",
            "queries must return vectors in their first column, not integer",
        );
        assert_sql_error(
            "SELECT * FROM recall.evaluate('ev_hnsw', 'SELECT v FROM ev WHERE false', 10)",
            "queries returned no vectors",
        );
        assert_sql_error(
            "SELECT * FROM recall.evaluate('nope', 'SELECT v FROM ev')",
            "relation \"nope\" does not exist",
        );
        assert_sql_error(
            "SELECT * FROM recall.evaluate('ev_pkey', 'SELECT v FROM ev')",
            "\"ev_pkey\" is not an hnsw or ivfflat index (access method \"btree\")",
        );
        assert_sql_error(
            &format!("SELECT * FROM recall.evaluate_curve('ev_hnsw', {QUERIES}, 10, '{{}}')"),
            "params must be a non-empty array of ef_search or probes values without NULLs",
        );
        assert_sql_error(
            &format!("SELECT * FROM recall.evaluate_curve('ev_hnsw', {QUERIES}, 10, '{{0}}')"),
            "0 is outside the valid range for parameter \"hnsw.ef_search\" (1 .. 1000)",
        );
    }
}
