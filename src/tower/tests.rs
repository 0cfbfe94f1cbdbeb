#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;
    use serde_json::Value as Json;

    use crate::test_support::{assert_sql_error, sql_error};

    const F32: &[u8] = include_bytes!("../../tests/fixtures/two_tower/f32/model.safetensors");
    const F32_CASES: &str = include_str!("../../tests/fixtures/two_tower/f32/cases.json");
    const F16: &[u8] = include_bytes!("../../tests/fixtures/two_tower/f16/model.safetensors");
    const F16_CONFIG: &str = include_str!("../../tests/fixtures/two_tower/f16/config.json");
    const F16_CASES: &str = include_str!("../../tests/fixtures/two_tower/f16/cases.json");
    const BF16: &[u8] = include_bytes!("../../tests/fixtures/two_tower/bf16/model.safetensors");
    const BF16_CASES: &str = include_str!("../../tests/fixtures/two_tower/bf16/cases.json");

    fn load(name: &str, weights: &[u8], config: Option<&str>) -> i32 {
        let config = config.map(|c| pgrx::JsonB(serde_json::from_str(c).unwrap()));
        Spi::get_one_with_args::<i32>(
            "SELECT recall.load_model($1, $2, $3)",
            &[name.into(), weights.into(), config.into()],
        )
        .unwrap()
        .unwrap()
    }

    fn stat(key: &str) -> i64 {
        Spi::get_one::<i64>(&format!("SELECT (recall.tower_stats()->>'{key}')::bigint"))
            .unwrap()
            .unwrap()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn ids(v: &Json) -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect()
    }

    fn floats(v: &Json) -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5,
                "{what}[{i}]: pg_recall {g}, PyTorch {w}"
            );
        }
    }

    /// Every fixture case through SQL: argument conversion, the cache and the forward pass.
    fn check_parity(name: &str, cases: &str) {
        let cases: Json = serde_json::from_str(cases).unwrap();
        for (n, c) in cases["user"].as_array().unwrap().iter().enumerate() {
            let got = Spi::get_one_with_args::<Vec<f32>>(
                "SELECT recall.user_tower($1, $2, $3, $4)::real[]",
                &[
                    name.into(),
                    c["user_id"].as_i64().unwrap().into(),
                    floats(&c["features"]).into(),
                    ids(&c["behavior"]).into(),
                ],
            )
            .unwrap()
            .unwrap();
            assert_close(
                &got,
                &floats(&c["expected"]),
                &format!("{name} user case {n}"),
            );
        }
        for (n, c) in cases["item"].as_array().unwrap().iter().enumerate() {
            let tags: Vec<i32> = ids(&c["tags"]).into_iter().map(|t| t as i32).collect();
            let got = Spi::get_one_with_args::<Vec<f32>>(
                "SELECT recall.item_tower($1, $2, $3, $4, $5)::real[]",
                &[
                    name.into(),
                    c["item_id"].as_i64().unwrap().into(),
                    (c["category"].as_i64().unwrap() as i32).into(),
                    tags.into(),
                    floats(&c["features"]).into(),
                ],
            )
            .unwrap()
            .unwrap();
            assert_close(
                &got,
                &floats(&c["expected"]),
                &format!("{name} item case {n}"),
            );
        }
    }

    #[pg_test]
    fn towers_match_pytorch_through_sql() {
        assert_eq!(load("fx32", F32, None), 1);
        check_parity("fx32", F32_CASES);
        assert_eq!(load("fx16", F16, Some(F16_CONFIG)), 1);
        check_parity("fx16", F16_CASES);
        assert_eq!(load("fxbf16", BF16, None), 1);
        check_parity("fxbf16", BF16_CASES);
        let info = Spi::get_one::<pgrx::JsonB>("SELECT recall.model_info('fx32')")
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(info["version"], 1);
        assert_eq!(
            info["user_tower"]["inputs"],
            serde_json::json!(["user_id", "features", "behavior"])
        );
        assert_eq!(info["user_tower"]["features"], 6);
        assert_eq!(info["item_tower"]["output_dim"], 64);
        assert_eq!(info["weights_bytes"], F32.len());
    }

    #[pg_test]
    fn versions_load_drop_and_switch() {
        assert_eq!(load("m", F16, None), 1);
        let dims = || {
            Spi::get_one::<i32>(
                "SELECT vector_dims(recall.user_tower('m', 1, array_fill(0.5::real, ARRAY[6])))",
            )
            .unwrap()
        };
        assert_eq!(dims(), Some(16));
        // The same name again: a new version, used from then on, the old one kept.
        assert_eq!(load("m", F32, None), 2);
        assert_eq!(dims(), Some(64));
        let versions = Spi::get_one::<pgrx::JsonB>("SELECT recall.model_info('m')->'versions'")
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(versions, serde_json::json!([1, 2]));
        assert_eq!(
            Spi::get_one::<i64>("SELECT recall.drop_model('m', 2)").unwrap(),
            Some(1)
        );
        assert_eq!(dims(), Some(16));
        assert_eq!(
            Spi::get_one::<i64>("SELECT recall.drop_model('m')").unwrap(),
            Some(1)
        );
        assert_sql_error(
            "SELECT recall.user_tower('m', 1)",
            "model \"m\" does not exist",
        );
        assert_sql_error(
            "SELECT recall.drop_model('m')",
            "model \"m\" does not exist",
        );
        assert_sql_error(
            "SELECT recall.drop_model('fx', 3)",
            "model \"fx\" version 3 does not exist",
        );
    }

    #[pg_test]
    fn bad_inputs_are_errors() {
        load("fx", F32, None);
        let f6 = "array_fill(0.5::real, ARRAY[6])";
        assert_sql_error(
            "SELECT recall.user_tower(NULL, 1)",
            "model name must not be NULL",
        );
        assert_sql_error(
            "SELECT recall.user_tower('', 1)",
            "model name must not be empty",
        );
        assert_sql_error(
            "SELECT recall.user_tower('nope', 1)",
            "model \"nope\" does not exist",
        );
        assert_sql_error(
            "SELECT recall.user_tower('fx', 1, ARRAY[1,2,3]::real[])",
            "model \"fx\" version 1: expected 6 features, not 3",
        );
        assert_sql_error(
            "SELECT recall.user_tower('fx', 1, ARRAY[1,NULL,3,4,5,6]::real[])",
            "features must not contain NULLs",
        );
        assert_sql_error(
            "SELECT recall.user_tower('fx', 1)",
            "model \"fx\" version 1: the model's user tower needs \"features\"; it must not be NULL",
        );
        assert_sql_error(
            &format!("SELECT recall.user_tower('fx', NULL, {f6})"),
            "model \"fx\" version 1: the model's user tower needs \"user_id\"; it must not be NULL",
        );
        assert_sql_error(
            &format!("SELECT recall.user_tower('fx', 1, {f6}, ARRAY[1, 60])"),
            "model \"fx\" version 1: behavior 60 is outside the model's vocabulary (0..59) and the config sets no oov_row",
        );
        assert_sql_error(
            "SELECT recall.item_tower('fx', 1000, 1, NULL, array_fill(0.5::real, ARRAY[5]))",
            "model \"fx\" version 1: item_id 1000 is outside the model's vocabulary (0..59) and the config sets no oov_row",
        );
        // Out-of-vocabulary users map to the configured row 0.
        assert!(sql_error(&format!("SELECT recall.user_tower('fx', 123456, {f6})")).is_none());
        assert_sql_error(
            "SELECT recall.load_model('x', NULL)",
            "model weights must not be NULL",
        );
        let e = sql_error("SELECT recall.load_model('x', '\\x0102'::bytea)").unwrap();
        assert!(e.contains("invalid safetensors file"), "{e}");
        let mut truncated = F32.to_vec();
        truncated.truncate(F32.len() - 10);
        let e = sql_error(&format!(
            "SELECT recall.load_model('x', '\\x{}'::bytea)",
            hex(&truncated)
        ))
        .unwrap();
        assert!(
            e.starts_with("cannot load model \"x\": invalid safetensors file"),
            "{e}"
        );
        let wrong = F16_CONFIG.replace("\"vocab\": 40", "\"vocab\": 41");
        let e = sql_error(&format!(
            "SELECT recall.load_model('x', '\\x{}'::bytea, '{}'::jsonb)",
            hex(F16),
            wrong
        ))
        .unwrap();
        assert_eq!(
            e,
            "cannot load model \"x\": tensor \"user_tower.user_id.weight\" has shape [40, 64], the config expects [41, 64]"
        );
        assert_sql_error(
            "SELECT recall.load_model_file('x', '/nonexistent/model.safetensors')",
            "could not read model file \"/nonexistent/model.safetensors\": No such file or directory (os error 2)",
        );
        // Nothing half-stored by the failures.
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM recall.models WHERE name = 'x'").unwrap(),
            Some(0)
        );
    }

    /// `ORDER BY embedding <#> recall.user_tower(...)` runs the model once per query, whatever
    /// the plan, and reads the catalog at most once per transaction.
    #[pg_test]
    fn tower_runs_once_per_query() {
        load("fx", F32, None);
        Spi::run(
            "CREATE TABLE items AS SELECT i AS id,
                 recall.item_tower('fx', i, i % 7, ARRAY[i % 25], array_fill((i % 3)::real, ARRAY[5]))::vector(64) AS embedding
             FROM generate_series(0, 59) i;
             INSERT INTO items SELECT id + 60, embedding FROM items;
             INSERT INTO items SELECT id + 120, embedding FROM items;
             CREATE INDEX ON items USING ivfflat (embedding vector_ip_ops) WITH (lists = 4);
             ANALYZE items",
        )
        .unwrap();
        // A different user for each plan, so the second does not reuse the first's result.
        for (user, plan) in [
            (7, "SET LOCAL enable_seqscan = off"),
            (8, "SET LOCAL enable_indexscan = off"),
        ] {
            Spi::run(plan).unwrap();
            let query = format!(
                "SELECT count(*) FROM (SELECT id FROM items
                   ORDER BY embedding <#> recall.user_tower('fx', {user}, array_fill(0.25::real, ARRAY[6]), ARRAY[1, 2, 3])
                   LIMIT 10) t"
            );
            let (passes, lookups) = (stat("forward_passes"), stat("catalog_lookups"));
            assert_eq!(Spi::get_one::<i64>(&query).unwrap(), Some(10));
            assert_eq!(stat("forward_passes") - passes, 1, "{plan}");
            assert_eq!(
                stat("catalog_lookups") - lookups,
                0,
                "{plan}: already checked in this transaction"
            );
            Spi::run("RESET enable_seqscan; RESET enable_indexscan").unwrap();
        }
        // A different user per row: one forward pass each, still no catalog read.
        let (passes, lookups) = (stat("forward_passes"), stat("catalog_lookups"));
        Spi::run("SELECT recall.user_tower('fx', i, array_fill(i::real, ARRAY[6])) FROM generate_series(1, 50) i").unwrap();
        assert_eq!(stat("forward_passes") - passes, 50);
        assert_eq!(stat("catalog_lookups") - lookups, 0);
    }
}
