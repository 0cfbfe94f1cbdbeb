#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::test_support::{assert_sql_error, float8, make_table};

    fn info(index: &str, path: &str) -> serde_json::Value {
        let v = Spi::get_one::<pgrx::JsonB>(&format!(
            "SELECT recall.index_info('{index}') #> '{path}'"
        ))
        .unwrap()
        .map(|j| j.0)
        .unwrap_or(serde_json::Value::Null);
        v
    }

    /// Held-out queries: vectors from the same clusters that are not in the table.
    fn held_out(table: &str) {
        Spi::run(&format!(
            "CREATE TABLE {table}_q AS SELECT i AS id, (SELECT array_agg(x + (random() - 0.5))::vector
               FROM unnest(centre) x) AS v FROM generate_series(1, 300) i JOIN {table}_c ON c = i % 20"
        ))
        .unwrap();
    }

    #[pg_test]
    fn both_access_methods_calibrate_to_their_target() {
        // At 64 dimensions hnsw stores 8-bit codes: its scans walk on estimates and rerank
        // each batch, and the build's calibration must measure that walk, not the f32 one.
        for dims in [16, 64] {
            let t = format!("cal{dims}");
            make_table(&t, 4000, dims);
            held_out(&t);
            for (am, knob) in [("hnsw", "ef_search"), ("ivfflat", "probes")] {
                let index = format!("{t}_{am}");
                Spi::run(&format!("CREATE INDEX {index} ON {t} USING {am} (v vector_l2_ops) WITH (optimized_for = 'balanced')"))
                    .unwrap();
                if am == "hnsw" {
                    let codes = info(&index, "{storage,codes}");
                    assert_eq!(codes.is_null(), dims < 64, "{index}: {codes}");
                }
                let c = info(&index, "{calibration}");
                assert_eq!(c["optimized_for"], "balanced", "{index}: {c}");
                assert_eq!(c["target_recall"], 0.95);
                assert_eq!(c["target_k"], 10);
                assert!(
                    c["measured_recall"].as_f64().unwrap() >= 0.95,
                    "{index}: {c}"
                );
                let chosen = c["chosen"][knob].as_u64().unwrap();
                assert!(chosen >= 1, "{index}: {c}");
                // Held-out queries reach the target with the calibrated setting in force, up
                // to sampling error (300 queries on each side, standard error ≈ 0.006).
                let recall = float8(&format!(
                    "SELECT recall FROM recall.evaluate('{index}', 'SELECT v FROM {t}_q', 10)"
                ));
                assert!(
                    recall >= 0.94,
                    "{index}: held-out recall {recall} with {knob} {chosen}"
                );
                let effective = Spi::get_one::<i64>(&format!(
                    "SELECT (params->>'effective_{knob}')::bigint FROM recall.evaluate('{index}', 'SELECT v FROM {t}_q LIMIT 5', 10)"
                ))
                .unwrap()
                .unwrap();
                assert_eq!(
                    effective as u64, chosen,
                    "{index}: scans use the calibrated value"
                );
                Spi::run(&format!("DROP INDEX {index}")).unwrap();
            }
        }
    }

    #[pg_test]
    fn an_explicit_setting_wins_over_calibration() {
        make_table("cal", 2000, 8);
        Spi::run("CREATE INDEX cal_h ON cal USING hnsw (v vector_l2_ops) WITH (target_recall = 0.99, target_k = 20)").unwrap();
        let c = info("cal_h", "{calibration}");
        assert_eq!(c["target_k"], 20);
        assert_eq!(c["optimized_for"], serde_json::Value::Null);
        Spi::run("SET LOCAL hnsw.ef_search = 77").unwrap();
        let effective = Spi::get_one::<i64>(
            "SELECT (params->>'effective_ef_search')::bigint FROM recall.evaluate('cal_h', 'SELECT v FROM cal LIMIT 3', 10)",
        )
        .unwrap();
        assert_eq!(effective, Some(77));
        // pgvector's options win over the intent's build parameters.
        Spi::run("CREATE INDEX cal_m ON cal USING hnsw (v vector_l2_ops) WITH (optimized_for = 'recall', m = 8)").unwrap();
        assert_eq!(info("cal_m", "{m}"), 8);
        assert_eq!(info("cal_m", "{ef_construction}"), 64);
        Spi::run("CREATE INDEX cal_r ON cal USING hnsw (v vector_l2_ops) WITH (optimized_for = 'recall')").unwrap();
        assert_eq!(info("cal_r", "{m}"), 24);
        // Without an intent nothing is calibrated and pgvector's defaults hold.
        Spi::run("CREATE INDEX cal_p ON cal USING hnsw (v vector_l2_ops)").unwrap();
        assert_eq!(info("cal_p", "{calibration}"), serde_json::Value::Null);
        assert_eq!(info("cal_p", "{m}"), 16);
    }

    #[pg_test]
    fn bad_intent_options_are_errors() {
        make_table("cal", 100, 4);
        assert_sql_error(
            "CREATE INDEX ON cal USING hnsw (v vector_l2_ops) WITH (optimized_for = 'fast')",
            "invalid value for enum option \"optimized_for\": fast",
        );
        assert_sql_error(
            "CREATE INDEX ON cal USING ivfflat (v vector_l2_ops) WITH (target_recall = 1.5)",
            "value 1.5 out of bounds for option \"target_recall\"",
        );
        assert_sql_error(
            "CREATE INDEX ON cal USING ivfflat (v vector_l2_ops) WITH (target_recall = 0)",
            "target_recall must be greater than 0 and at most 1",
        );
        assert_sql_error(
            "CREATE INDEX ON cal USING hnsw (v vector_l2_ops) WITH (target_k = 0)",
            "value 0 out of bounds for option \"target_k\"",
        );
        assert_sql_error(
            "CREATE INDEX ON cal USING hnsw (v vector_l2_ops) WITH (target_k = 50)",
            "target_k needs target_recall or optimized_for",
        );
    }

    /// An index built without a target is calibrated afterwards; the setting is written to
    /// the metapage, used by scans, and reaches the target on held-out queries.
    #[pg_test]
    fn tune_calibrates_an_existing_index() {
        make_table("tn", 4000, 16);
        held_out("tn");
        for (am, knob) in [("hnsw", "ef_search"), ("ivfflat", "probes")] {
            Spi::run(&format!(
                "CREATE INDEX tn_{am} ON tn USING {am} (v vector_l2_ops)"
            ))
            .unwrap();
            assert_eq!(
                info(&format!("tn_{am}"), "{calibration}"),
                serde_json::Value::Null
            );
            let tuned =
                Spi::get_one::<pgrx::JsonB>(&format!("SELECT recall.tune('tn_{am}', 0.95)"))
                    .unwrap()
                    .unwrap()
                    .0;
            let c = &tuned["calibration"];
            assert_eq!(c["by"], "recall.tune", "{am}: {tuned}");
            assert_eq!(c["target_k"], 10);
            assert_eq!(c["queries"], 300);
            assert!(c["measured_recall"].as_f64().unwrap() >= 0.95, "{am}: {c}");
            assert_eq!(
                info(&format!("tn_{am}"), "{calibration}"),
                *c,
                "{am}: stored in the metapage"
            );
            let chosen = c["chosen"][knob].as_u64().unwrap();
            let (recall, effective) = Spi::get_two::<f64, i64>(&format!(
                "SELECT recall, (params->>'effective_{knob}')::bigint FROM recall.evaluate('tn_{am}', 'SELECT v FROM tn_q', 10)"
            ))
            .unwrap();
            assert_eq!(
                effective.unwrap() as u64,
                chosen,
                "{am}: scans use the tuned value"
            );
            // Both measurements are samples (300 queries each, standard error ≈ 0.006).
            assert!(
                recall.unwrap() >= 0.94,
                "{am}: held-out recall {recall:?} with {knob} {chosen}"
            );
            // A higher target never costs less; a lower one never more.
            let at = |target: f64, k: i32| {
                Spi::get_one::<i64>(&format!(
                    "SELECT (recall.tune('tn_{am}', {target}, {k}) #>> '{{calibration,chosen,{knob}}}')::bigint"
                ))
                .unwrap()
                .unwrap() as u64
            };
            let (low, high) = (at(0.5, 10), at(0.999, 10));
            assert!(
                low <= chosen && chosen <= high,
                "{am}: {low} {chosen} {high}"
            );
            if am == "hnsw" {
                // A beam narrower than k is measured as a relaxed scan that continues; with
                // iterative scans off, the scan widens it to target_k instead.
                let narrow = at(0.3, 10);
                let effective = |setting: &str| {
                    Spi::run(&format!("SET LOCAL hnsw.iterative_scan = {setting}")).unwrap();
                    Spi::get_one::<i64>("SELECT (params->>'effective_ef_search')::bigint FROM recall.evaluate('tn_hnsw', 'SELECT v FROM tn_q LIMIT 3', 10)")
                        .unwrap()
                        .unwrap() as u64
                };
                assert!(
                    narrow < 10,
                    "a 0.3 target needs a beam narrower than k: {narrow}"
                );
                assert_eq!(effective("relaxed_order"), narrow);
                assert_eq!(effective("off"), 10);
                Spi::run("RESET hnsw.iterative_scan").unwrap();
            }
            let k50 =
                Spi::get_one::<pgrx::JsonB>(&format!("SELECT recall.tune('tn_{am}', 0.9, 50)"))
                    .unwrap()
                    .unwrap()
                    .0;
            assert_eq!(k50["calibration"]["target_k"], 50, "{am}: {k50}");
            assert!(
                k50["calibration"]["measured_recall"].as_f64().unwrap() >= 0.9,
                "{am}: {k50}"
            );
        }
    }

    /// A build whose graph outgrows maintenance_work_mem is calibrated on its pages.
    #[pg_test]
    fn a_spilled_hnsw_build_is_calibrated_on_its_pages() {
        make_table("tsp", 3000, 16);
        Spi::run("SET LOCAL maintenance_work_mem = '1MB'").unwrap();
        Spi::run("CREATE INDEX tsp_i ON tsp USING hnsw (v vector_l2_ops) WITH (optimized_for = 'balanced')").unwrap();
        let c = info("tsp_i", "{calibration}");
        assert_eq!(c["by"], "build", "{c}");
        assert_eq!(c["optimized_for"], "balanced", "{c}");
        assert!(c["measured_recall"].as_f64().unwrap() >= 0.95, "{c}");
    }

    #[pg_test]
    fn tune_rejects_bad_arguments() {
        make_table("tb", 200, 4);
        Spi::run(
            "CREATE INDEX tb_h ON tb USING hnsw (v vector_l2_ops); CREATE INDEX tb_b ON tb (id)",
        )
        .unwrap();
        for (sql, message) in [
            (
                "SELECT recall.tune('tb_h', 0)",
                "target_recall must be greater than 0 and at most 1",
            ),
            (
                "SELECT recall.tune('tb_h', 1.5)",
                "target_recall must be greater than 0 and at most 1",
            ),
            (
                "SELECT recall.tune('tb_h', 'NaN')",
                "target_recall must be greater than 0 and at most 1",
            ),
            (
                "SELECT recall.tune('tb_h', 0.9, 0)",
                "target_k must be between 1 and 1000",
            ),
            (
                "SELECT recall.tune('tb_h', 0.9, 1001)",
                "target_k must be between 1 and 1000",
            ),
            (
                "SELECT recall.tune('tb_b', 0.9)",
                "\"tb_b\" is not an hnsw or ivfflat index (access method \"btree\")",
            ),
            ("SELECT recall.tune('tb', 0.9)", "\"tb\" is not an index"),
            (
                "SELECT recall.tune('no_such_index', 0.9)",
                "relation \"no_such_index\" does not exist",
            ),
        ] {
            assert_sql_error(sql, message);
        }
        assert_eq!(
            Spi::get_one::<pgrx::JsonB>("SELECT recall.tune(NULL, 0.9)")
                .unwrap()
                .map(|j| j.0),
            None
        );
        Spi::run("CREATE TABLE te (v vector(3)); CREATE INDEX te_i ON te USING ivfflat (v)")
            .unwrap();
        assert_sql_error(
            "SELECT recall.tune('te_i', 0.9)",
            "cannot tune index \"te_i\": it has 0 rows, calibration needs at least 2",
        );
        Spi::run("CREATE ROLE tb_other; GRANT SELECT ON tb TO tb_other; SET LOCAL ROLE tb_other")
            .unwrap();
        assert_sql_error(
            "SELECT recall.tune('tb_h', 0.9)",
            "must be owner of index tb_h",
        );
        Spi::run("RESET ROLE").unwrap();
    }
}
