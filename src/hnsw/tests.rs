//! In-database tests of the hnsw access method. Recall is measured against the exact answer
//! of the same query with index scans disabled.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::test_support::{
        add_outliers, answer_with, assert_sql_error, exact_copy, force_index, make_table,
        ranked_rows, recall, scanned_rows, stored_codes,
    };
    use pgrx::prelude::*;

    #[pg_test]
    fn hnsw_recall_all_opclasses() {
        for (opclass, op) in [
            ("vector_l2_ops", "<->"),
            ("vector_ip_ops", "<#>"),
            ("vector_cosine_ops", "<=>"),
            ("vector_l1_ops", "<+>"),
        ] {
            let t = format!("r_{}", &opclass[7..opclass.len() - 4]);
            make_table(&t, 3000, 16);
            exact_copy(&t);
            Spi::run(&format!("CREATE INDEX ON {t} USING hnsw (v {opclass})")).unwrap();
            force_index();
            let r = recall(&t, op, 10, 30);
            assert!(r >= 0.95, "{opclass}: recall@10 {r} at default ef_search");
            Spi::run("SET LOCAL hnsw.ef_search = 200").unwrap();
            let r = recall(&t, op, 10, 30);
            assert!(r >= 0.99, "{opclass}: recall@10 {r} at ef_search 200");
            Spi::run("RESET hnsw.ef_search").unwrap();
        }
    }

    #[pg_test]
    fn hnsw_plan_uses_index_only_with_order_by_limit() {
        make_table("pl", 20000, 8);
        Spi::run("CREATE INDEX pl_idx ON pl USING hnsw (v vector_l2_ops)").unwrap();
        Spi::run("ANALYZE pl").unwrap();
        let plan = |q: &str| -> String {
            Spi::connect(|c| {
                c.select(&format!("EXPLAIN (COSTS OFF) {q}"), None, &[])
                    .unwrap()
                    .map(|r| r.get::<String>(1).unwrap().unwrap())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        };
        assert!(
            plan("SELECT id FROM pl ORDER BY v <-> '[0,0,0,0,0,0,0,0]' LIMIT 10")
                .contains("pl_idx")
        );
        assert!(!plan("SELECT id FROM pl ORDER BY v <-> '[0,0,0,0,0,0,0,0]'").contains("pl_idx"));
        assert!(!plan("SELECT id FROM pl WHERE v IS NOT NULL").contains("pl_idx"));
        // Wrong operator for the opclass: no index.
        assert!(
            !plan("SELECT id FROM pl ORDER BY v <#> '[0,0,0,0,0,0,0,0]' LIMIT 10")
                .contains("pl_idx")
        );
    }

    /// pgvector's most reported problem: a selective WHERE shortening the LIMIT.
    #[pg_test]
    fn hnsw_filtered_query_fills_its_limit() {
        make_table("fl", 5000, 8);
        Spi::run("CREATE INDEX ON fl USING hnsw (v vector_l2_ops)").unwrap();
        force_index();
        // category = 7 matches 1% of the rows (50).
        let n = |limit: usize| {
            Spi::get_one::<i64>(&format!(
                "SELECT count(*) FROM (SELECT id FROM fl WHERE category = 7 ORDER BY v <-> (SELECT v FROM fl WHERE id = 1) LIMIT {limit}) s"
            ))
            .unwrap()
            .unwrap()
        };
        assert_eq!(n(40), 40);
        assert_eq!(n(50), 50);
        assert_eq!(n(500), 50, "every matching row must come back");
        // LIMIT far above ef_search without a filter.
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM (SELECT id FROM fl ORDER BY v <-> (SELECT v FROM fl WHERE id = 1) LIMIT 500) s").unwrap(),
            Some(500)
        );
        // Rows come back in distance order.
        assert!(crate::test_support::boolean(
            "SELECT bool_and(d >= prev) FROM (SELECT d, lag(d, 1, 0::float8) OVER (ORDER BY n) prev FROM (
               SELECT row_number() OVER () n, v <-> (SELECT v FROM fl WHERE id = 1) d
               FROM (SELECT v FROM fl ORDER BY v <-> (SELECT v FROM fl WHERE id = 1) LIMIT 40) s) a) b"
        ));
        // off: pgvector's bounded scan returns at most ef_search rows before the filter.
        Spi::run("SET LOCAL hnsw.iterative_scan = off").unwrap();
        assert!(n(500) < 50);
        Spi::run("SET LOCAL hnsw.iterative_scan = strict_order").unwrap();
        assert!(n(40) == 40);
        Spi::run(
            "SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL hnsw.max_scan_tuples = 100",
        )
        .unwrap();
        assert!(n(500) < 50, "max_scan_tuples caps the work");
    }

    #[pg_test]
    fn hnsw_insert_after_build_and_vacuum() {
        make_table("iv", 4000, 12);
        // Build on the first half, insert the second half through aminsert.
        Spi::run("CREATE TABLE iv2 (LIKE iv INCLUDING ALL)").unwrap();
        Spi::run("INSERT INTO iv2 SELECT * FROM iv WHERE id <= 2000").unwrap();
        Spi::run("CREATE INDEX ON iv2 USING hnsw (v vector_l2_ops)").unwrap();
        Spi::run("INSERT INTO iv2 SELECT * FROM iv WHERE id > 2000").unwrap();
        Spi::run("DROP TABLE iv; ALTER TABLE iv2 RENAME TO iv").unwrap();
        exact_copy("iv");
        force_index();
        let r = recall("iv", "<->", 10, 40);
        assert!(r >= 0.95, "recall after inserts {r}");
        // Every row is reachable by a complete scan.
        assert_eq!(scanned_rows("iv", 3), Some(4000));
        // NULLs are not indexed; duplicates are.
        Spi::run("INSERT INTO iv VALUES (100001, 1, NULL), (100002, 1, (SELECT v FROM iv WHERE id = 7)), (100003, 1, (SELECT v FROM iv WHERE id = 7))").unwrap();
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM (SELECT id FROM iv ORDER BY v <-> (SELECT v FROM iv WHERE id = 7) LIMIT 3) s WHERE id IN (7, 100002, 100003)").unwrap(),
            Some(3)
        );
    }

    /// A graph larger than maintenance_work_mem: the part that fits is built in memory, the
    /// rest inserted on disk; the index must be as complete and as good.
    #[pg_test]
    fn hnsw_build_spills_past_maintenance_work_mem() {
        make_table("sp", 6000, 64);
        exact_copy("sp");
        Spi::run("SET LOCAL maintenance_work_mem = '1MB'").unwrap();
        Spi::run("CREATE INDEX ON sp USING hnsw (v vector_l2_ops)").unwrap();
        force_index();
        let r = recall("sp", "<->", 10, 30);
        assert!(r >= 0.95, "recall after a spilled build {r}");
        assert_eq!(scanned_rows("sp", 3), Some(6000));
    }

    /// An ERROR raised while an index scan is open (here by the query, after some rows) must
    /// abort cleanly and leave the session able to scan again.
    #[pg_test]
    fn hnsw_error_during_scan_is_clean() {
        make_table("es", 3000, 8);
        Spi::run("CREATE INDEX ON es USING hnsw (v vector_l2_ops)").unwrap();
        force_index();
        for _ in 0..3 {
            assert_sql_error(
                "SELECT id, 1 / (row_number() OVER () - 20)::int FROM (SELECT id FROM es ORDER BY v <-> (SELECT v FROM es WHERE id = 1) LIMIT 100) s",
                "division by zero",
            );
            assert_sql_error(
                "SELECT id FROM es WHERE 1 / (id - 1500) > -1 ORDER BY v <-> (SELECT v FROM es WHERE id = 1500) LIMIT 10",
                "division by zero",
            );
        }
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM (SELECT id FROM es ORDER BY v <-> (SELECT v FROM es WHERE id = 1) LIMIT 10) s").unwrap(),
            Some(10)
        );
    }

    #[pg_test]
    fn hnsw_options_and_errors() {
        Spi::run("CREATE TABLE oe (v vector(3), u vector)").unwrap();
        assert_sql_error(
            "CREATE INDEX ON oe USING hnsw (v vector_l2_ops) WITH (m = 1)",
            "value 1 out of bounds for option \"m\"",
        );
        assert_sql_error(
            "CREATE INDEX ON oe USING hnsw (v vector_l2_ops) WITH (m = 101)",
            "value 101 out of bounds for option \"m\"",
        );
        assert_sql_error(
            "CREATE INDEX ON oe USING hnsw (v vector_l2_ops) WITH (ef_construction = 3)",
            "value 3 out of bounds for option \"ef_construction\"",
        );
        assert_sql_error(
            "CREATE INDEX ON oe USING hnsw (v vector_l2_ops) WITH (m = 40, ef_construction = 50)",
            "ef_construction must be greater than or equal to 2 * m",
        );
        assert_sql_error(
            "CREATE INDEX ON oe USING hnsw (v vector_l2_ops) WITH (foo = 1)",
            "unrecognized parameter \"foo\"",
        );
        assert_sql_error(
            "CREATE INDEX ON oe USING hnsw (u vector_l2_ops)",
            "column does not have dimensions",
        );
        Spi::run("CREATE TABLE big (v vector(2001))").unwrap();
        assert_sql_error(
            "CREATE INDEX ON big USING hnsw (v vector_l2_ops)",
            "column cannot have more than 2000 dimensions for hnsw index",
        );
        Spi::run("CREATE INDEX oe_idx ON oe USING hnsw (v vector_l2_ops) WITH (m = 4, ef_construction = 8)").unwrap();
        Spi::run("INSERT INTO oe (v) VALUES ('[1,2,3]')").unwrap();
        assert_sql_error(
            "INSERT INTO oe (v) VALUES ('[1,2]')",
            "expected 3 dimensions, not 2",
        );
        force_index();
        assert_sql_error(
            "SELECT * FROM oe ORDER BY v <-> '[1,2]' LIMIT 1",
            "different vector dimensions 3 and 2",
        );
        assert_sql_error(
            "SET hnsw.ef_search = 0",
            "0 is outside the valid range for parameter \"hnsw.ef_search\" (1 .. 1000)",
        );
        assert_sql_error(
            "SET hnsw.iterative_scan = on",
            "invalid value for parameter \"hnsw.iterative_scan\": \"on\"",
        );
        // 2,000 dimensions build and answer.
        Spi::run("CREATE TABLE wide (v vector(2000))").unwrap();
        Spi::run("INSERT INTO wide SELECT array_fill(i::real, ARRAY[2000]) FROM generate_series(1, 20) i").unwrap();
        Spi::run("CREATE INDEX ON wide USING hnsw (v vector_l2_ops)").unwrap();
        Spi::run("INSERT INTO wide SELECT array_fill(0.5::real, ARRAY[2000])").unwrap();
        assert_eq!(
            Spi::get_one::<f64>("SELECT v <-> array_fill(0.5::real, ARRAY[2000])::vector FROM wide ORDER BY v <-> array_fill(0.4::real, ARRAY[2000])::vector LIMIT 1").unwrap(),
            Some(0.0)
        );
    }

    #[pg_test]
    fn hnsw_cosine_skips_zero_vectors_and_empty_index_works() {
        Spi::run("CREATE TABLE cz (id int, v vector(2))").unwrap();
        Spi::run("CREATE INDEX ON cz USING hnsw (v vector_cosine_ops)").unwrap();
        force_index();
        assert_eq!(
            Spi::get_one::<i64>(
                "SELECT count(*) FROM (SELECT id FROM cz ORDER BY v <=> '[1,1]' LIMIT 5) s"
            )
            .unwrap(),
            Some(0)
        );
        Spi::run("INSERT INTO cz VALUES (1, '[0,0]'), (2, '[1,0]'), (3, '[0,1]'), (4, NULL)")
            .unwrap();
        assert_eq!(
            Spi::get_one::<String>("SELECT string_agg(id::text, ',') FROM (SELECT id FROM cz ORDER BY v <=> '[1,0.1]' LIMIT 5) s").unwrap(),
            Some("2,3".to_string())
        );
        // A NULL query vector still scans (pgvector's behaviour).
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM (SELECT id FROM cz ORDER BY v <=> (SELECT NULL::vector) LIMIT 5) s").unwrap(), Some(2));
    }

    /// Elements stored as 8-bit codes (64 dims or more, 1,000 rows or more): each batch is
    /// reranked on the heap rows, so an answer the graph finds comes out in the operator's
    /// exact order with real ctids — also after inserting rows far outside the quantiser's
    /// range, under a filter, in strict order, and through an expression index.
    #[pg_test]
    fn hnsw_codes_give_the_exact_order_with_ctids() {
        for (opclass, op) in [
            ("vector_l2_ops", "<->"),
            ("vector_ip_ops", "<#>"),
            ("vector_cosine_ops", "<=>"),
        ] {
            let t = format!("hq_{}", &opclass[7..opclass.len() - 4]);
            make_table(&t, 1500, 64);
            Spi::run(&format!(
                "CREATE INDEX {t}_idx ON {t} USING hnsw (v {opclass})"
            ))
            .unwrap();
            assert_eq!(
                stored_codes(&format!("{t}_idx")).as_deref(),
                Some("sq8"),
                "{opclass}"
            );
            // Outliers: fifty times the build's range, clamped codes, large error bounds.
            add_outliers(&t);
            Spi::run("SET LOCAL hnsw.ef_search = 1000").unwrap();
            let q = format!("(SELECT (SELECT array_agg(x * 3) FROM unnest(v::real[]) x)::vector FROM {t} WHERE id = 7)");
            let run = |index: bool, filter: &str| {
                answer_with(index, &ranked_rows(&t, op, &q, filter, 60))
            };
            let (indexed, exact) = (run(true, "true"), run(false, "true"));
            assert_eq!(indexed, exact, "{opclass}");
            assert!(!indexed.contains("4294967295"), "{opclass}: {indexed}");
            // 1 % of the rows match: every one of them, in order.
            assert_eq!(
                run(true, "category = 7"),
                run(false, "category = 7"),
                "{opclass}"
            );
            Spi::run(&format!(
                "SELECT id FROM {t} ORDER BY v {op} {q} LIMIT 5 FOR UPDATE"
            ))
            .unwrap();
            // strict_order over several small batches: never out of order.
            Spi::run("SET LOCAL hnsw.ef_search = 10; SET LOCAL hnsw.iterative_scan = strict_order")
                .unwrap();
            assert!(crate::test_support::boolean(&format!(
                "SELECT bool_and(d >= prev) FROM (SELECT d, lag(d, 1, '-Infinity'::float8) OVER (ORDER BY n) prev FROM (
                   SELECT row_number() OVER () n, d FROM (SELECT v {op} {q} AS d FROM {t} ORDER BY v {op} {q} LIMIT 200) s) a) b"
            )));
            Spi::run("RESET hnsw.iterative_scan").unwrap();
        }
        // An expression index: the scan evaluates the expression on each heap row.
        make_table("hq_expr", 1200, 64);
        Spi::run(
            "CREATE INDEX hq_expr_idx ON hq_expr USING hnsw ((l2_normalize(v)::vector(64)) vector_ip_ops);
             SET LOCAL hnsw.ef_search = 1000",
        )
        .unwrap();
        assert_eq!(stored_codes("hq_expr_idx").as_deref(), Some("sq8"));
        let run = |index: bool| {
            answer_with(
                index,
                "SELECT string_agg(id::text, ',') FROM (SELECT id FROM hq_expr \
                 ORDER BY l2_normalize(v)::vector(64) <#> (SELECT v FROM hq_expr WHERE id = 3) LIMIT 40) s",
            )
        };
        assert_eq!(run(true), run(false));
        // Few rows, few dimensions or L1: exact vectors.
        make_table("hq_small", 500, 64);
        Spi::run("CREATE INDEX hq_small_idx ON hq_small USING hnsw (v vector_l2_ops); CREATE INDEX hq_l1_idx ON hq_l2 USING hnsw (v vector_l1_ops)").unwrap();
        assert_eq!(stored_codes("hq_small_idx"), None);
        assert_eq!(stored_codes("hq_l1_idx"), None);
    }
}
