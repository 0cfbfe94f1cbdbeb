-- Two-tower models: the catalog and the inference functions.
CREATE SCHEMA IF NOT EXISTS recall;

CREATE TABLE recall.models (
    name text NOT NULL CHECK (name <> ''),
    version int NOT NULL CHECK (version > 0),
    config jsonb NOT NULL,
    weights bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);
-- Weights are already dense floats; compressing them costs CPU at every model load.
ALTER TABLE recall.models ALTER COLUMN weights SET STORAGE EXTERNAL;
-- Models are user data: pg_dump must carry them like any table's rows.
SELECT pg_catalog.pg_extension_config_dump('recall.models', '');

CREATE FUNCTION recall.load_model(name text, weights bytea, config jsonb DEFAULT NULL) RETURNS int
    AS 'MODULE_PATHNAME', 'load_model_wrapper' LANGUAGE C VOLATILE;
CREATE FUNCTION recall.load_model_file(name text, path text, config jsonb DEFAULT NULL) RETURNS int
    AS 'MODULE_PATHNAME', 'load_model_file_wrapper' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION recall.load_model_file(text, text, jsonb) FROM PUBLIC;
CREATE FUNCTION recall.drop_model(name text, version int DEFAULT NULL) RETURNS bigint
    AS 'MODULE_PATHNAME', 'drop_model_wrapper' LANGUAGE C VOLATILE;
CREATE FUNCTION recall.model_info(name text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'model_info_wrapper' LANGUAGE C STABLE;

CREATE FUNCTION recall.user_tower(model text, user_id bigint, features real[] DEFAULT NULL,
                                  behavior bigint[] DEFAULT NULL) RETURNS vector
    AS 'MODULE_PATHNAME', 'user_tower_wrapper' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION recall.item_tower(model text, item_id bigint, category int DEFAULT NULL,
                                  tags int[] DEFAULT NULL, features real[] DEFAULT NULL) RETURNS vector
    AS 'MODULE_PATHNAME', 'item_tower_wrapper' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION recall.tower_stats() RETURNS jsonb
    AS 'MODULE_PATHNAME', 'tower_stats_wrapper' LANGUAGE C VOLATILE;

-- Any change to the catalog tells every backend's model cache (see src/tower/cache.rs).
CREATE FUNCTION recall._models_changed(oid) RETURNS void
    AS 'MODULE_PATHNAME', 'models_changed_wrapper' LANGUAGE C VOLATILE;
CREATE FUNCTION recall._models_changed_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM recall._models_changed(TG_RELID);
    RETURN NULL;
END $$;
CREATE TRIGGER models_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON recall.models
    FOR EACH STATEMENT EXECUTE FUNCTION recall._models_changed_trigger();
