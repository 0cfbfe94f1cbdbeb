//! In-database tests of the ivfflat access method. Recall is measured against the exact
//! answer of the same query on an unindexed copy.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::test_support::{
        add_outliers, answer_with, assert_sql_error, exact_copy, force_index, make_table,
        ranked_rows, recall, scanned_rows, sql_error, text,
    };
    use pgrx::prelude::*;

    fn info(index: &str, key: &str) -> i64 {
        text(&format!("SELECT recall.index_info('{index}') ->> '{key}'"))
            .parse()
            .unwrap()
    }

    #[pg_test]
    fn ivfflat_recall_with_defaults_and_every_list() {
        for (opclass, op) in [
            ("vector_l2_ops", "<->"),
            ("vector_ip_ops", "<#>"),
            ("vector_cosine_ops", "<=>"),
        ] {
            let t = format!("ivr_{}", &opclass[7..opclass.len() - 4]);
            make_table(&t, 4000, 16);
            exact_copy(&t);
            Spi::run(&format!(
                "CREATE INDEX {t}_idx ON {t} USING ivfflat (v {opclass})"
            ))
            .unwrap();
            force_index();
            // Self-sized: 4000 rows → 40 lists, √40 ≈ 6 probes.
            assert_eq!(info(&format!("{t}_idx"), "lists"), 40);
            assert_eq!(info(&format!("{t}_idx"), "default_probes"), 6);
            let r = recall(&t, op, 10, 30);
            assert!(r >= 0.95, "{opclass}: recall@10 {r} with default settings");
            Spi::run("SET LOCAL ivfflat.probes = 40").unwrap();
            let r = recall(&t, op, 10, 30);
            assert_eq!(r, 1.0, "{opclass}: probing every list must be exact");
            Spi::run("RESET ivfflat.probes").unwrap();
        }
    }

    /// A 1%-selective filter still fills its LIMIT; `iterative_scan = off` is pgvector's
    /// bounded scan.
    #[pg_test]
    fn ivfflat_filtered_query_fills_its_limit() {
        make_table("ivf", 5000, 8);
        Spi::run("CREATE INDEX ON ivf USING ivfflat (v) WITH (lists = 50)").unwrap();
        force_index();
        let n = |limit: usize| {
            Spi::get_one::<i64>(&format!(
                "SELECT count(*) FROM (SELECT id FROM ivf WHERE category = 7 ORDER BY v <-> (SELECT v FROM ivf WHERE id = 1) LIMIT {limit}) s"
            ))
            .unwrap()
            .unwrap()
        };
        assert_eq!(n(20), 20);
        assert_eq!(n(500), 50, "every matching row must come back");
        assert_eq!(scanned_rows("ivf", 1), Some(5000));
        Spi::run("SET LOCAL ivfflat.iterative_scan = off; SET LOCAL ivfflat.probes = 1").unwrap();
        assert!(
            n(20) < 20,
            "one probe of 50 lists holds about 1 matching row"
        );
        Spi::run(
            "SET LOCAL ivfflat.iterative_scan = relaxed_order; SET LOCAL ivfflat.max_probes = 2",
        )
        .unwrap();
        assert!(n(500) < 50, "max_probes caps the lists scanned");
    }

    /// Fewer rows than lists: a NOTICE, and every row is its own list, so answers are exact.
    #[pg_test]
    fn ivfflat_little_data_is_exact() {
        make_table("ivl", 60, 4);
        exact_copy("ivl");
        Spi::run("CREATE INDEX ivl_idx ON ivl USING ivfflat (v) WITH (lists = 100)").unwrap();
        force_index();
        assert_eq!(info("ivl_idx", "lists"), 60);
        assert_eq!(info("ivl_idx", "lists_requested"), 100);
        assert_eq!(recall("ivl", "<->", 5, 10), 1.0);
        // An index built on an empty table takes inserts into its one placeholder list.
        Spi::run("CREATE TABLE ive (id int, v vector(3)); CREATE INDEX ive_idx ON ive USING ivfflat (v vector_ip_ops)").unwrap();
        Spi::run("INSERT INTO ive SELECT i, ARRAY[i, 1, 0]::vector FROM generate_series(1, 100) i")
            .unwrap();
        assert_eq!(
            Spi::get_one::<i32>("SELECT id FROM ive ORDER BY v <#> '[1,0,0]' LIMIT 1").unwrap(),
            Some(100)
        );
        assert_eq!(
            Spi::get_one::<i64>(
                "SELECT count(*) FROM (SELECT id FROM ive ORDER BY v <#> '[1,0,0]' LIMIT 1000) s"
            )
            .unwrap(),
            Some(100)
        );
    }

    #[pg_test]
    fn ivfflat_insert_and_vacuum() {
        make_table("ivi", 4000, 12);
        Spi::run("CREATE TABLE ivi2 (LIKE ivi INCLUDING ALL)").unwrap();
        Spi::run("INSERT INTO ivi2 SELECT * FROM ivi WHERE id <= 2000").unwrap();
        Spi::run("CREATE INDEX ON ivi2 USING ivfflat (v vector_l2_ops)").unwrap();
        Spi::run("INSERT INTO ivi2 SELECT * FROM ivi WHERE id > 2000").unwrap();
        Spi::run("DROP TABLE ivi; ALTER TABLE ivi2 RENAME TO ivi").unwrap();
        exact_copy("ivi");
        force_index();
        let r = recall("ivi", "<->", 10, 30);
        assert!(r >= 0.95, "recall after inserts {r}");
        assert_eq!(scanned_rows("ivi", 3), Some(4000));
        Spi::run("DELETE FROM ivi WHERE id % 3 = 0").unwrap();
        // VACUUM cannot run in the test's transaction; bulk delete is exercised by the
        // integration tests. Deleted rows are filtered by the heap here.
        assert_eq!(scanned_rows("ivi", 1), Some(4000 - 1333));
        // NULLs are not indexed.
        Spi::run("INSERT INTO ivi VALUES (100001, 1, NULL)").unwrap();
        assert_eq!(scanned_rows("ivi", 1), Some(4000 - 1333));
    }

    #[pg_test]
    fn ivfflat_options_and_errors() {
        Spi::run("CREATE TABLE ioe (v vector(3), u vector, w vector(2001))").unwrap();
        assert_sql_error(
            "CREATE INDEX ON ioe USING ivfflat (v) WITH (lists = 0)",
            "value 0 out of bounds for option \"lists\"",
        );
        assert_sql_error(
            "CREATE INDEX ON ioe USING ivfflat (v) WITH (lists = 32769)",
            "value 32769 out of bounds for option \"lists\"",
        );
        assert_sql_error(
            "CREATE INDEX ON ioe USING ivfflat (u)",
            "column does not have dimensions",
        );
        assert_sql_error(
            "CREATE INDEX ON ioe USING ivfflat (w)",
            "column cannot have more than 2000 dimensions for ivfflat index",
        );
        assert_sql_error(
            "SET ivfflat.probes = -1",
            "-1 is outside the valid range for parameter \"ivfflat.probes\" (0 .. 32768)",
        );
        assert_sql_error(
            "SET ivfflat.iterative_scan = strict_order",
            "invalid value for parameter \"ivfflat.iterative_scan\": \"strict_order\"",
        );
        // The k-means sample must fit maintenance_work_mem.
        Spi::run("CREATE TABLE ibig (v vector(100))").unwrap();
        Spi::run("SET LOCAL maintenance_work_mem = '1MB'").unwrap();
        assert_sql_error(
            "CREATE INDEX ON ibig USING ivfflat (v) WITH (lists = 1000)",
            "memory required is 5 MB, maintenance_work_mem is 1 MB",
        );
        Spi::run("RESET maintenance_work_mem").unwrap();
        // Dimension mismatches are pgvector's errors.
        Spi::run("CREATE INDEX ioe_v ON ioe USING ivfflat (v)").unwrap();
        force_index();
        assert_sql_error(
            "SELECT * FROM ioe ORDER BY v <-> '[1,2]' LIMIT 1",
            "different vector dimensions 3 and 2",
        );
        let e = sql_error("SELECT recall.index_info('ioe'::regclass)").unwrap();
        assert!(
            e.contains("not an hnsw or ivfflat index") || e.contains("is not an index"),
            "{e}"
        );
        assert_eq!(
            text("SELECT recall.index_info('ioe_v') ->> 'am'"),
            "ivfflat"
        );
        assert_eq!(
            text("SELECT recall.index_info('ioe_v') ->> 'lists_self_sized'"),
            "true"
        );
    }

    /// Lists hold 8-bit codes; the scan reads each candidate's heap row for its exact value.
    /// With every list probed the output must be the exact answer in exact order — values
    /// included — for every metric, also for rows inserted after the build far outside the
    /// quantiser's range, and through an expression index. Rows keep their ctid (the
    /// executor's own recheck path loses it on PostgreSQL 15) and can be locked.
    #[pg_test]
    fn ivfflat_codes_give_the_exact_order_with_ctids() {
        for (opclass, op) in [
            ("vector_l2_ops", "<->"),
            ("vector_ip_ops", "<#>"),
            ("vector_cosine_ops", "<=>"),
        ] {
            let t = format!("ivq_{}", &opclass[7..opclass.len() - 4]);
            make_table(&t, 1500, 12);
            Spi::run(&format!(
                "CREATE INDEX {t}_idx ON {t} USING ivfflat (v {opclass}) WITH (lists = 15)"
            ))
            .unwrap();
            // Outliers: fifty times the build's range, clamped codes, large error bounds.
            add_outliers(&t);
            Spi::run("SET LOCAL ivfflat.probes = 15").unwrap();
            let q = format!("(SELECT (SELECT array_agg(x * 3) FROM unnest(v::real[]) x)::vector FROM {t} WHERE id = 7)");
            let run = |index: bool| answer_with(index, &ranked_rows(&t, op, &q, "true", 60));
            let (indexed, exact) = (run(true), run(false));
            assert_eq!(indexed, exact, "{opclass}");
            assert!(!indexed.contains("4294967295"), "{opclass}: {indexed}");
            Spi::run(&format!(
                "SELECT id FROM {t} ORDER BY v {op} {q} LIMIT 5 FOR UPDATE"
            ))
            .unwrap();
        }
        // An expression index: the scan evaluates the expression on each heap row.
        make_table("ivq_expr", 1000, 6);
        Spi::run(
            "CREATE INDEX ivq_expr_idx ON ivq_expr USING ivfflat ((l2_normalize(v)::vector(6)) vector_ip_ops) WITH (lists = 10);
             SET LOCAL ivfflat.probes = 10",
        )
        .unwrap();
        let run = |index: bool| {
            answer_with(
                index,
                "SELECT string_agg(id::text, ',') FROM (SELECT id FROM ivq_expr \
                 ORDER BY l2_normalize(v)::vector(6) <#> (SELECT v FROM ivq_expr WHERE id = 3) LIMIT 40) s",
            )
        };
        assert_eq!(run(true), run(false));
    }
}
