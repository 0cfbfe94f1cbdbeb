-- pg_recall: the ivfflat access method and its operator classes, with pgvector's names, and
-- recall.index_info() for both index kinds.

CREATE FUNCTION ivfflathandler(internal) RETURNS index_am_handler
    AS 'MODULE_PATHNAME', 'ivfflathandler_wrapper' LANGUAGE C;

CREATE ACCESS METHOD ivfflat TYPE INDEX HANDLER ivfflathandler;

COMMENT ON ACCESS METHOD ivfflat IS 'ivfflat index access method';

CREATE OPERATOR CLASS vector_l2_ops
    DEFAULT FOR TYPE vector USING ivfflat AS
    OPERATOR 1 <-> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 vector_l2_squared_distance(vector, vector);

CREATE OPERATOR CLASS vector_ip_ops
    FOR TYPE vector USING ivfflat AS
    OPERATOR 1 <#> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 vector_negative_inner_product(vector, vector);

CREATE OPERATOR CLASS vector_cosine_ops
    FOR TYPE vector USING ivfflat AS
    OPERATOR 1 <=> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 vector_negative_inner_product(vector, vector),
    FUNCTION 2 vector_norm(vector);

CREATE SCHEMA IF NOT EXISTS recall;
-- Application roles call the functions here (index_info, evaluate, the towers); each checks
-- its own privileges (recall.tune: ownership; the towers: SELECT on recall.models).
GRANT USAGE ON SCHEMA recall TO PUBLIC;

CREATE FUNCTION recall.index_info(regclass) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'index_info_wrapper' LANGUAGE C STRICT STABLE;

COMMENT ON FUNCTION recall.index_info(regclass) IS
    'parameters an hnsw or ivfflat index of pg_recall was built with and chose for itself';
