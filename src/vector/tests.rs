//! In-database tests of every `vector` SQL object, each with its bad inputs.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::test_support::{assert_sql_error, boolean, float8, text};
    use pgrx::prelude::*;

    #[pg_test]
    fn vector_text_io() {
        assert_eq!(text("SELECT '[1,2,3]'::vector::text"), "[1,2,3]");
        assert_eq!(
            text("SELECT '  [ 1.5 ,\t-2 ,3e-5 ]  '::vector::text"),
            "[1.5,-2,3e-05]"
        );
        assert_eq!(
            text("SELECT '[1e20,0.1,-0]'::vector::text"),
            "[1e+20,0.1,-0]"
        );
        assert_sql_error(
            "SELECT '1,2'::vector",
            "invalid input syntax for type vector: \"1,2\"",
        );
        assert_sql_error(
            "SELECT '[1,2'::vector",
            "invalid input syntax for type vector: \"[1,2\"",
        );
        assert_sql_error(
            "SELECT '[1,,2]'::vector",
            "invalid input syntax for type vector: \"[1,,2]\"",
        );
        assert_sql_error(
            "SELECT '[1,2] x'::vector",
            "invalid input syntax for type vector: \"[1,2] x\"",
        );
        assert_sql_error(
            "SELECT ''::vector",
            "invalid input syntax for type vector: \"\"",
        );
        assert_sql_error(
            "SELECT '[]'::vector",
            "vector must have at least 1 dimension",
        );
        assert_sql_error("SELECT '[1,NaN]'::vector", "NaN not allowed in vector");
        assert_sql_error(
            "SELECT '[1,Infinity]'::vector",
            "infinite value not allowed in vector",
        );
        assert_sql_error(
            "SELECT '[-inf]'::vector",
            "infinite value not allowed in vector",
        );
        assert_sql_error(
            "SELECT '[4e38]'::vector",
            "\"4e38\" is out of range for type vector",
        );
        assert_sql_error(
            "SELECT ('[' || array_to_string(array_fill(1, ARRAY[16001]), ',') || ']')::vector",
            "vector cannot have more than 16000 dimensions",
        );
        assert_eq!(
            Spi::get_one::<i32>("SELECT vector_dims(('[' || array_to_string(array_fill(1, ARRAY[16000]), ',') || ']')::vector)")
                .unwrap(),
            Some(16000)
        );
    }

    /// Output must be exactly what `float4out` prints for each element: shortest digits with
    /// PostgreSQL's interval and tie rules, fixed or exponent notation. Covers the whole
    /// exponent range, denormals, integers, powers of two and their neighbours.
    #[pg_test]
    fn vector_text_output_matches_float4out() {
        let mismatches = Spi::get_one::<i64>(
            "WITH x AS (
               SELECT ((random() * 2 - 1) * 2 ^ (floor(random() * 254) - 126))::real AS f FROM generate_series(1, 60000)
               UNION ALL SELECT ((random() - 0.5) * 2e9)::int::real FROM generate_series(1, 20000)
               UNION ALL SELECT (2::float8 ^ e * m)::real FROM generate_series(-149, 127) e, unnest(ARRAY[1, 1.0000001, 0.99999994, -1]) m
               UNION ALL SELECT (random() * 1000)::numeric(10, 3)::real FROM generate_series(1, 20000)),
             v AS (SELECT ARRAY[f] AS a FROM x WHERE f <> 0 AND f::float8 <> 'Infinity' AND f::float8 <> '-Infinity')
             SELECT count(*) FROM v
             WHERE a::vector::text <> '[' || array_to_string(a, ',') || ']'
                OR (a::vector::text)::vector::real[] <> a",
        )
        .unwrap();
        assert_eq!(mismatches, Some(0));
    }

    #[pg_test]
    fn vector_typmod() {
        Spi::run("CREATE TABLE tm (v vector(3))").unwrap();
        Spi::run("INSERT INTO tm VALUES ('[1,2,3]')").unwrap();
        assert_sql_error(
            "INSERT INTO tm VALUES ('[1,2]')",
            "expected 3 dimensions, not 2",
        );
        assert_sql_error(
            "INSERT INTO tm VALUES ('[1,2]'::vector)",
            "expected 3 dimensions, not 2",
        );
        assert_sql_error(
            "INSERT INTO tm VALUES (ARRAY[1,2]::real[])",
            "expected 3 dimensions, not 2",
        );
        assert_sql_error(
            "UPDATE tm SET v = v || '[4]'",
            "expected 3 dimensions, not 4",
        );
        assert_sql_error("SELECT '[1,2]'::vector(3)", "expected 3 dimensions, not 2");
        assert_eq!(text("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'tm'::regclass AND attname = 'v'"), "vector(3)");
        assert_sql_error(
            "CREATE TABLE tm0 (v vector(0))",
            "dimensions for type vector must be at least 1",
        );
        assert_sql_error(
            "CREATE TABLE tm1 (v vector(16001))",
            "dimensions for type vector cannot exceed 16000",
        );
        assert_sql_error("CREATE TABLE tm2 (v vector(2, 3))", "invalid type modifier");
        Spi::run("CREATE TABLE tm3 (v vector(16000))").unwrap();
    }

    #[pg_test]
    fn vector_binary_send_and_copy() {
        assert_eq!(
            text("SELECT vector_send('[1,2]')::text"),
            "\\x000200003f80000040000000"
        );
        // Binary COPY out and back in goes through vector_send and vector_recv.
        let path = format!("/tmp/pg_recall_copy_{}.bin", std::process::id());
        Spi::run("CREATE TABLE bc (id int, v vector(3))").unwrap();
        Spi::run("INSERT INTO bc SELECT i, ARRAY[i, -i, i * 0.001]::real[] FROM generate_series(1, 100) i").unwrap();
        Spi::run(&format!("COPY bc TO '{path}' WITH (FORMAT binary)")).unwrap();
        Spi::run("CREATE TABLE bc2 (id int, v vector(3))").unwrap();
        Spi::run(&format!("COPY bc2 FROM '{path}' WITH (FORMAT binary)")).unwrap();
        assert!(boolean(
            "SELECT count(*) = 100 AND bool_and(a.v = b.v) FROM bc a JOIN bc2 b USING (id)"
        ));
        // recv checks the typmod of the target column.
        Spi::run("CREATE TABLE bc4 (id int, v vector(4))").unwrap();
        assert_sql_error(
            &format!("COPY bc4 FROM '{path}' WITH (FORMAT binary)"),
            "expected 4 dimensions, not 3",
        );
        let _ = std::fs::remove_file(&path);
    }

    /// A binary COPY file of rows `(int, vector)` whose vector fields are the given raw
    /// bytes (int16 dim, int16 unused, big-endian float4s), for malformed binary input.
    fn copy_file_with_vector_fields(path: &str, fields: &[Vec<u8>]) {
        let mut f = b"PGCOPY\n\xff\r\n\0".to_vec();
        f.extend_from_slice(&[0; 8]);
        for (i, v) in fields.iter().enumerate() {
            f.extend_from_slice(&2i16.to_be_bytes());
            f.extend_from_slice(&4i32.to_be_bytes());
            f.extend_from_slice(&(i as i32).to_be_bytes());
            f.extend_from_slice(&(v.len() as i32).to_be_bytes());
            f.extend_from_slice(v);
        }
        f.extend_from_slice(&(-1i16).to_be_bytes());
        std::fs::write(path, f).unwrap();
    }

    fn binary_vector(dim: i16, values: &[f32]) -> Vec<u8> {
        let mut v = dim.to_be_bytes().to_vec();
        v.extend_from_slice(&0i16.to_be_bytes());
        for x in values {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v
    }

    /// vector_recv reads all elements in one copy: a field shorter than its dimension count
    /// says, or holding a NaN, is an ERROR with PostgreSQL's and pgvector's wording, and
    /// well-formed fields keep their values exactly (byte order included).
    #[pg_test]
    fn vector_binary_input_rejects_short_and_non_finite_fields() {
        let path = format!("/tmp/pg_recall_recv_{}.bin", std::process::id());
        Spi::run("CREATE TABLE br (id int, v vector)").unwrap();
        copy_file_with_vector_fields(
            &path,
            &[
                binary_vector(3, &[1.5, -2.25, 1e-7]),
                binary_vector(1, &[f32::MAX]),
            ],
        );
        Spi::run(&format!("COPY br FROM '{path}' WITH (FORMAT binary)")).unwrap();
        assert_eq!(
            text("SELECT string_agg(v::text, ' ' ORDER BY id) FROM br"),
            "[1.5,-2.25,1e-07] [3.4028235e+38]"
        );
        copy_file_with_vector_fields(&path, &[binary_vector(3, &[1.0, 2.0])]);
        assert_sql_error(
            &format!("COPY br FROM '{path}' WITH (FORMAT binary)"),
            "insufficient data left in message",
        );
        copy_file_with_vector_fields(&path, &[binary_vector(2, &[1.0, f32::NAN])]);
        assert_sql_error(
            &format!("COPY br FROM '{path}' WITH (FORMAT binary)"),
            "NaN not allowed in vector",
        );
        copy_file_with_vector_fields(&path, &[binary_vector(2, &[f32::INFINITY, 1.0])]);
        assert_sql_error(
            &format!("COPY br FROM '{path}' WITH (FORMAT binary)"),
            "infinite value not allowed in vector",
        );
        let _ = std::fs::remove_file(&path);
    }

    /// Operators read stored values in every varlena form: short headers (small vectors in
    /// a heap row), plain 4-byte headers, compressed in line and moved out of line to TOAST.
    #[pg_test]
    fn vector_operators_read_every_stored_form() {
        Spi::run(
            "CREATE TABLE forms (id int, v vector);
             ALTER TABLE forms ALTER COLUMN v SET STORAGE MAIN;
             CREATE TABLE forms_ext (id int, v vector);
             ALTER TABLE forms_ext ALTER COLUMN v SET STORAGE EXTERNAL;
             INSERT INTO forms VALUES
               (1, '[1,2,3]'),
               (2, array_fill(0.5::real, ARRAY[200])::vector),
               (3, array_fill(0.25::real, ARRAY[3000])::vector);
             INSERT INTO forms_ext VALUES (4, array_fill(2::real, ARRAY[1000])::vector);",
        )
        .unwrap();
        // Row 3 is compressed in line (STORAGE MAIN), row 4 lives in the TOAST table.
        assert!(boolean(
            "SELECT pg_column_compression(v) IS NOT NULL FROM forms WHERE id = 3"
        ));
        assert!(boolean(
            "SELECT pg_relation_size(reltoastrelid) > 0 FROM pg_class WHERE relname = 'forms_ext'"
        ));
        let ip = |sql: &str| float8(sql);
        assert_eq!(ip("SELECT v <#> '[1,1,1]' FROM forms WHERE id = 1"), -6.0);
        assert_eq!(
            ip("SELECT v <#> array_fill(2::real, ARRAY[200])::vector FROM forms WHERE id = 2"),
            -200.0
        );
        assert_eq!(
            ip("SELECT v <#> array_fill(4::real, ARRAY[3000])::vector FROM forms WHERE id = 3"),
            -3000.0
        );
        assert_eq!(
            ip("SELECT v <-> array_fill(2::real, ARRAY[1000])::vector FROM forms_ext"),
            0.0
        );
        assert_eq!(ip("SELECT a.v <#> a.v FROM forms a WHERE id = 1"), -14.0);
    }

    #[pg_test]
    fn vector_distance_operators() {
        assert_eq!(float8("SELECT '[1,2,3]'::vector <#> '[1,1,1]'"), -6.0);
        assert_eq!(float8("SELECT inner_product('[1,2,3]', '[1,1,1]')"), 6.0);
        assert_eq!(float8("SELECT '[0,0]'::vector <-> '[3,4]'"), 5.0);
        assert_eq!(float8("SELECT l2_distance('[0,0]', '[3,4]')"), 5.0);
        assert_eq!(float8("SELECT '[1,2,3]'::vector <+> '[1,1,1]'"), 3.0);
        assert_eq!(float8("SELECT l1_distance('[1,2,3]', '[0,0,0]')"), 6.0);
        assert_eq!(float8("SELECT '[1,2]'::vector <=> '[2,4]'"), 0.0);
        assert_eq!(float8("SELECT cosine_distance('[1,0]', '[-1,0]')"), 2.0);
        assert!((float8("SELECT '[1,0]'::vector <=> '[0,1]'") - 1.0).abs() < 1e-12);
        assert!(float8("SELECT '[0,0]'::vector <=> '[1,1]'").is_nan());
        for op in ["<->", "<#>", "<=>", "<+>"] {
            assert_sql_error(
                &format!("SELECT '[1,2]'::vector {op} '[1,2,3]'"),
                "different vector dimensions 2 and 3",
            );
        }
        for f in [
            "l2_distance",
            "inner_product",
            "cosine_distance",
            "l1_distance",
        ] {
            assert_sql_error(
                &format!("SELECT {f}('[1]', '[1,2]')"),
                "different vector dimensions 1 and 2",
            );
            assert!(
                Spi::get_one::<f64>(&format!("SELECT {f}(NULL::vector, '[1]')"))
                    .unwrap()
                    .is_none()
            );
        }
        // Kernels cover every length, so long vectors agree with a double-precision reference.
        let diff = float8(
            "WITH v AS (SELECT array_agg(random()::real) a, array_agg(random()::real) b FROM generate_series(1, 1537))
             SELECT abs((a::vector <-> b::vector) - sqrt((SELECT sum((x - y)^2) FROM unnest(a, b) t(x, y)))) FROM v",
        );
        assert!(diff < 1e-3, "{diff}");
    }

    #[pg_test]
    fn vector_functions() {
        assert_eq!(
            Spi::get_one::<i32>("SELECT vector_dims('[1,2,3]')").unwrap(),
            Some(3)
        );
        assert_eq!(float8("SELECT vector_norm('[3,4]')"), 5.0);
        assert_eq!(text("SELECT l2_normalize('[3,4]')::text"), "[0.6,0.8]");
        assert_eq!(text("SELECT l2_normalize('[0,0]')::text"), "[0,0]");
        assert_eq!(
            text("SELECT subvector('[1,2,3,4,5]', 2, 3)::text"),
            "[2,3,4]"
        );
        assert_eq!(
            text("SELECT subvector('[1,2,3,4,5]', 3, 9)::text"),
            "[3,4,5]"
        );
        assert_eq!(text("SELECT subvector('[1,2,3,4,5]', -1, 3)::text"), "[1]");
        assert_eq!(
            text("SELECT subvector('[1,2,3,4,5]', 1, 2147483647)::text"),
            "[1,2,3,4,5]"
        );
        assert_sql_error(
            "SELECT subvector('[1,2,3,4,5]', 1, 0)",
            "vector must have at least 1 dimension",
        );
        assert_sql_error(
            "SELECT subvector('[1,2,3,4,5]', 6, 1)",
            "vector must have at least 1 dimension",
        );
        assert_sql_error(
            "SELECT subvector('[1,2,3,4,5]', -1, 2)",
            "vector must have at least 1 dimension",
        );
    }

    #[pg_test]
    fn vector_arithmetic() {
        assert_eq!(
            text("SELECT ('[1,2,3]'::vector + '[4,5,6]')::text"),
            "[5,7,9]"
        );
        assert_eq!(
            text("SELECT ('[1,2,3]'::vector - '[4,5,6]')::text"),
            "[-3,-3,-3]"
        );
        assert_eq!(
            text("SELECT ('[1,2,3]'::vector * '[4,5,6]')::text"),
            "[4,10,18]"
        );
        assert_eq!(text("SELECT ('[1,2]'::vector || '[3]')::text"), "[1,2,3]");
        assert_sql_error(
            "SELECT '[3e38]'::vector + '[3e38]'",
            "value out of range: overflow",
        );
        assert_sql_error(
            "SELECT '[-3e38]'::vector - '[3e38]'",
            "value out of range: overflow",
        );
        assert_sql_error(
            "SELECT '[1e20]'::vector * '[1e20]'",
            "value out of range: overflow",
        );
        assert_sql_error(
            "SELECT '[1e-30]'::vector * '[1e-30]'",
            "value out of range: underflow",
        );
        assert_sql_error(
            "SELECT '[1,2]'::vector + '[1]'",
            "different vector dimensions 2 and 1",
        );
        assert_sql_error(
            "SELECT '[1,2]'::vector - '[1]'",
            "different vector dimensions 2 and 1",
        );
        assert_sql_error(
            "SELECT '[1,2]'::vector * '[1]'",
            "different vector dimensions 2 and 1",
        );
        assert_sql_error(
            "SELECT array_fill(1, ARRAY[16000])::real[]::vector || '[1]'",
            "vector cannot have more than 16000 dimensions",
        );
    }

    #[pg_test]
    fn vector_btree_ordering() {
        assert!(boolean("SELECT '[1,2]'::vector < '[1,3]' AND '[1,2]'::vector < '[1,2,0]' AND '[2]'::vector > '[1,9]'"));
        assert!(boolean(
            "SELECT '[1,2]'::vector = '[1,2]' AND '[1,2]'::vector <> '[1,2,3]'"
        ));
        assert!(boolean(
            "SELECT '[1,2]'::vector <= '[1,2]' AND '[1,2]'::vector >= '[1,2]'"
        ));
        assert_eq!(
            Spi::get_one::<i32>("SELECT vector_cmp('[1,2]', '[1,3]')").unwrap(),
            Some(-1)
        );
        Spi::run("CREATE TABLE bt (v vector)").unwrap();
        Spi::run("INSERT INTO bt VALUES ('[3]'), ('[1,2]'), ('[1]'), ('[1,2]'), ('[2,1]')")
            .unwrap();
        assert_eq!(
            text("SELECT string_agg(v::text, ' ' ORDER BY v) FROM bt"),
            "[1] [1,2] [1,2] [2,1] [3]"
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(DISTINCT v) FROM bt").unwrap(),
            Some(4)
        );
        assert_sql_error(
            "CREATE UNIQUE INDEX ON bt (v)",
            "could not create unique index \"bt_v_idx\"",
        );
        Spi::run("DELETE FROM bt WHERE ctid NOT IN (SELECT min(ctid) FROM bt GROUP BY v)").unwrap();
        Spi::run("CREATE UNIQUE INDEX ON bt (v)").unwrap();
        assert_sql_error(
            "INSERT INTO bt VALUES ('[1,2]')",
            "duplicate key value violates unique constraint \"bt_v_idx\"",
        );
    }

    #[pg_test]
    fn vector_casts() {
        assert_eq!(text("SELECT ARRAY[1,2,3]::vector::text"), "[1,2,3]");
        assert_eq!(
            text("SELECT ARRAY[1.5,2,3]::real[]::vector::text"),
            "[1.5,2,3]"
        );
        assert_eq!(
            text("SELECT ARRAY[1.5,2,3]::float8[]::vector::text"),
            "[1.5,2,3]"
        );
        assert_eq!(
            text("SELECT ARRAY[1.5,2,3]::numeric[]::vector::text"),
            "[1.5,2,3]"
        );
        assert_eq!(text("SELECT '[1,2,3]'::vector::real[]::text"), "{1,2,3}");
        assert_eq!(text("SELECT ARRAY[1,2,3]::vector(3)::text"), "[1,2,3]");
        assert_sql_error(
            "SELECT ARRAY[1,2]::vector(3)",
            "expected 3 dimensions, not 2",
        );
        assert_sql_error(
            "SELECT '{{1,2},{3,4}}'::real[]::vector",
            "array must be 1-D",
        );
        assert_sql_error(
            "SELECT '{1,NULL}'::real[]::vector",
            "array must not contain nulls",
        );
        assert_sql_error(
            "SELECT '{}'::real[]::vector",
            "vector must have at least 1 dimension",
        );
        assert_sql_error(
            "SELECT '{NaN}'::real[]::vector",
            "NaN not allowed in vector",
        );
        assert_sql_error(
            "SELECT '{Infinity}'::float8[]::vector",
            "infinite value not allowed in vector",
        );
        assert_sql_error(
            "SELECT '{1e300}'::float8[]::vector",
            "infinite value not allowed in vector",
        );
        assert_sql_error(
            "SELECT '{NaN}'::numeric[]::vector",
            "NaN not allowed in vector",
        );
        // pgvector's cast contexts: arrays → vector on assignment, vector → real[] implicitly.
        let contexts = text(
            "SELECT string_agg(c, ' ' ORDER BY c) FROM (
               SELECT format_type(castsource, NULL) || '>' || format_type(casttarget, NULL) || ':' || castcontext::text AS c
               FROM pg_cast WHERE castsource = 'vector'::regtype OR casttarget = 'vector'::regtype) s",
        );
        assert_eq!(
            contexts,
            "double precision[]>vector:a integer[]>vector:a numeric[]>vector:a real[]>vector:a vector>real[]:i vector>vector:i"
        );
        Spi::run("CREATE TABLE ca (v vector(2))").unwrap();
        Spi::run("INSERT INTO ca VALUES (ARRAY[1,2]), (ARRAY[1.5,2]::float8[])").unwrap();
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM ca").unwrap(),
            Some(2)
        );
    }

    #[pg_test]
    fn vector_aggregates() {
        Spi::run("CREATE TABLE ag (g int, v vector)").unwrap();
        Spi::run("INSERT INTO ag VALUES (1, '[1,2,3]'), (1, '[3,4,5]'), (1, NULL), (2, '[1,1]')")
            .unwrap();
        assert_eq!(text("SELECT avg(v)::text FROM ag WHERE g = 1"), "[2,3,4]");
        assert_eq!(text("SELECT sum(v)::text FROM ag WHERE g = 1"), "[4,6,8]");
        assert!(
            Spi::get_one::<String>("SELECT avg(v)::text FROM ag WHERE g = 3")
                .unwrap()
                .is_none()
        );
        assert!(
            Spi::get_one::<String>("SELECT sum(v)::text FROM ag WHERE g = 3")
                .unwrap()
                .is_none()
        );
        assert_sql_error("SELECT avg(v) FROM ag", "expected 3 dimensions, not 2");
        assert_sql_error(
            "SELECT sum(v) FROM ag",
            "different vector dimensions 3 and 2",
        );
        // avg accumulates in double precision like pgvector, so only sum overflows float4.
        assert_eq!(
            text("SELECT avg(v)::text FROM (VALUES ('[3e38]'::vector), ('[3e38]')) t(v)"),
            "[3e+38]"
        );
        assert_sql_error(
            "SELECT sum(v) FROM (VALUES ('[3e38]'::vector), ('[3e38]')) t(v)",
            "value out of range: overflow",
        );
        // Parallel safe with a combine function, so partial aggregation across workers works.
        assert_eq!(
            text("SELECT string_agg(p.proparallel::text || coalesce(a.aggcombinefn::text, '-'), ',' ORDER BY p.proname)
                  FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
                  WHERE p.proargtypes[0] = 'vector'::regtype"),
            "svector_combine,svector_add"
        );
        // Values whose float4 sums are exact in any order, so parallel plans give one answer.
        Spi::run("CREATE TABLE agp AS SELECT ARRAY[i % 3, 1, 2]::vector AS v FROM generate_series(1, 60000) i").unwrap();
        Spi::run("SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0; SET LOCAL min_parallel_table_scan_size = 0; SET LOCAL max_parallel_workers_per_gather = 2").unwrap();
        assert_eq!(text("SELECT avg(v)::text FROM agp"), "[1,1,2]");
        assert_eq!(text("SELECT sum(v)::text FROM agp"), "[60000,60000,120000]");
    }

    #[pg_test]
    fn vector_installed_in_extension_schema() {
        assert!(boolean(
            "SELECT t.typnamespace = e.extnamespace FROM pg_type t, pg_extension e
             WHERE t.typname = 'vector' AND e.extname = 'pg_recall'"
        ));
        assert!(boolean("SELECT count(*) = 4 FROM pg_operator WHERE oprname IN ('<->','<#>','<=>','<+>') AND oprleft = 'vector'::regtype"));
        // The type's own functions; the towers in schema recall read the model catalog (STABLE).
        assert!(boolean(
            "SELECT bool_and(proparallel = 's' AND provolatile = 'i') FROM pg_proc
             WHERE ('vector'::regtype = ANY(proargtypes) OR prorettype = 'vector'::regtype AND prokind = 'f')
               AND pronamespace <> 'recall'::regnamespace"
        ));
        assert!(boolean(
            "SELECT bool_and(proparallel = 's' AND provolatile = 's') FROM pg_proc
             WHERE proname IN ('user_tower', 'item_tower') AND pronamespace = 'recall'::regnamespace"
        ));
    }
}
