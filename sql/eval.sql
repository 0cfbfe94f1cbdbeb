-- Measured recall of an index: each query through the index and as an exact scan.
CREATE FUNCTION recall.evaluate(index regclass, queries text, k int DEFAULT 10, filter text DEFAULT NULL)
    RETURNS TABLE(recall float8, recall_p5 float8, ndcg float8, p50_ms float8, p95_ms float8,
                  p99_ms float8, qps float8, params jsonb, queries int)
    AS 'MODULE_PATHNAME', 'evaluate_wrapper' LANGUAGE C VOLATILE;
CREATE FUNCTION recall.evaluate_curve(index regclass, queries text, k int, params int[], filter text DEFAULT NULL)
    RETURNS TABLE(recall float8, recall_p5 float8, ndcg float8, p50_ms float8, p95_ms float8,
                  p99_ms float8, qps float8, params jsonb, queries int)
    AS 'MODULE_PATHNAME', 'evaluate_curve_wrapper' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION recall.evaluate(regclass, text, int, text) IS
    'recall@k (mean, p5), NDCG@k, latency and QPS of an hnsw or ivfflat index against exact search';
-- recall.tune(): re-calibrate an index's search setting without a rebuild.
CREATE FUNCTION recall.tune(index regclass, target_recall real, target_k int DEFAULT 10) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'tune_wrapper' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION recall.tune(regclass, real, int) IS
    'measure an hnsw or ivfflat index on its own rows and store the cheapest ef_search / probes that reaches target_recall at target_k';
