-- Memory is partitioned by scope: each scope is its own partition with its
-- own (small) GIN index, so a search reads only the posting lists of the
-- scopes it may read. A scope gets its partition on its first write
-- (pincer_memory_partition); anything else lands in the default partition.

ALTER TABLE memory_items RENAME TO memory_items_unpartitioned;
ALTER INDEX memory_items_pkey RENAME TO memory_items_unpartitioned_pkey;
ALTER INDEX memory_items_tsv RENAME TO memory_items_unpartitioned_tsv;
ALTER INDEX memory_items_scope_source RENAME TO memory_items_unpartitioned_scope_source;
ALTER SEQUENCE memory_items_id_seq OWNED BY NONE;

CREATE TABLE memory_items (
    id         BIGINT NOT NULL DEFAULT nextval('memory_items_id_seq'),
    scope      TEXT NOT NULL,
    source     TEXT NOT NULL,
    locator    TEXT NOT NULL DEFAULT '',
    author     TEXT NOT NULL,
    body       TEXT NOT NULL,
    tsv        TSVECTOR GENERATED ALWAYS AS (to_tsvector('english', body)) STORED,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, id)
) PARTITION BY LIST (scope);
ALTER SEQUENCE memory_items_id_seq OWNED BY memory_items.id;

CREATE TABLE memory_items_default PARTITION OF memory_items DEFAULT;
CREATE INDEX memory_items_tsv ON memory_items USING GIN (tsv);
CREATE INDEX memory_items_scope_source ON memory_items (scope, source);
CREATE INDEX memory_items_id ON memory_items (id);

-- Gives a scope its own partition (once; concurrent callers wait their turn),
-- moving any of its rows out of the default partition.
CREATE FUNCTION pincer_memory_partition(p_scope TEXT) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    part TEXT := 'memory_s_' || md5(p_scope);
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('pincer_memory_partition'));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN;
    END IF;
    CREATE TEMP TABLE pincer_moving ON COMMIT DROP AS
        SELECT id, scope, source, locator, author, body, created_at FROM memory_items_default WHERE scope = p_scope;
    DELETE FROM memory_items_default WHERE scope = p_scope;
    EXECUTE format('CREATE TABLE %I PARTITION OF memory_items FOR VALUES IN (%L)', part, p_scope);
    INSERT INTO memory_items (id, scope, source, locator, author, body, created_at)
        SELECT id, scope, source, locator, author, body, created_at FROM pincer_moving;
    DROP TABLE pincer_moving;
END;
$$;

INSERT INTO memory_items (id, scope, source, locator, author, body, created_at)
    SELECT id, scope, source, locator, author, body, created_at FROM memory_items_unpartitioned;
DROP TABLE memory_items_unpartitioned;
SELECT pincer_memory_partition(scope) FROM (SELECT DISTINCT scope FROM memory_items) s;
