#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::test_support::{assert_sql_error, float8, make_table};

    fn info(index: &str, path: &str) -> serde_json::Value {
        let v = Spi::get_one::<pgrx::JsonB>(&format!("SELECT recall.index_info('{index}') #> '{path}'"))
            .unwrap()
            .map(|j| j.0)
            .unwrap_or(serde_json::Value::Null);
        v
    }

    /// Held-out queries: vectors from the same clusters that are not in the table.
    fn held_out(table: &str) {
        Spi::run(&format!(
            "CREATE TABLE {table}_q AS SELECT i AS id, (SELECT array_agg(x + (random() - 0.5))::vector
               FROM unnest(centre) x) AS v FROM generate_series(1, 100) i JOIN {table}_c ON c = i % 20"
        ))
        .unwrap();
    }

    #[pg_test]
    fn both_access_methods_calibrate_to_their_target() {
        make_table("cal", 4000, 16);
        held_out("cal");
        for (am, knob) in [("hnsw", "ef_search"), ("ivfflat", "probes")] {
            Spi::run(&format!("CREATE INDEX cal_{am} ON cal USING {am} (v vector_l2_ops) WITH (optimized_for = 'balanced')"))
                .unwrap();
            let c = info(&format!("cal_{am}"), "{calibration}");
            assert_eq!(c["optimized_for"], "balanced", "{am}: {c}");
            assert_eq!(c["target_recall"], 0.95);
            assert_eq!(c["target_k"], 10);
            assert!(c["measured_recall"].as_f64().unwrap() >= 0.95, "{am}: {c}");
            let chosen = c["chosen"][knob].as_u64().unwrap();
            assert!(chosen >= 1, "{am}: {c}");
            // Held-out queries reach the target with the calibrated setting in force.
            let recall = float8(&format!(
                "SELECT recall FROM recall.evaluate('cal_{am}', 'SELECT v FROM cal_q', 10)"
            ));
            assert!(recall >= 0.95, "{am}: held-out recall {recall} with {knob} {chosen}");
            let effective = Spi::get_one::<i64>(&format!(
                "SELECT (params->>'effective_{knob}')::bigint FROM recall.evaluate('cal_{am}', 'SELECT v FROM cal_q LIMIT 5', 10)"
            ))
            .unwrap()
            .unwrap();
            assert_eq!(effective as u64, chosen, "{am}: scans use the calibrated value");
            Spi::run(&format!("DROP INDEX cal_{am}")).unwrap();
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
}
