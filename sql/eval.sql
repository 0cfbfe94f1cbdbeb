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
