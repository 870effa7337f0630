-- 002_nodes_and_sync.sql (Postgres): the twin of schema/002_nodes_and_sync.sql.
-- A change counter bumped by row triggers on keys and apps (an
-- INSERT ... ON CONFLICT DO NOTHING that inserts nothing does not bump it),
-- session rows per node, the outbox, node heartbeats and presence snapshots.

CREATE TABLE change_counter (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO change_counter (id, n) VALUES (1, 0);
CREATE FUNCTION rtm_bump_change_counter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE change_counter SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER keys_changed AFTER INSERT OR UPDATE OR DELETE ON keys
    FOR EACH ROW EXECUTE FUNCTION rtm_bump_change_counter();
CREATE TRIGGER apps_changed AFTER INSERT OR UPDATE OR DELETE ON apps
    FOR EACH ROW EXECUTE FUNCTION rtm_bump_change_counter();

ALTER TABLE sessions ADD COLUMN node_id TEXT NOT NULL DEFAULT '';
DROP INDEX sessions_open;
CREATE INDEX sessions_open ON sessions (node_id) WHERE closed_ms = 0;

-- Inserts are serialized by an advisory lock (store_pg.c), so ids commit in
-- order and a broker paging by id never skips a row.
CREATE TABLE outbox (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('kick', 'publish')),
    app        TEXT NOT NULL,
    target     TEXT NOT NULL,
    data       TEXT,
    created_ms BIGINT NOT NULL
);
CREATE INDEX outbox_by_created ON outbox (created_ms);

CREATE TABLE nodes (
    node_id TEXT PRIMARY KEY,
    seen_ms BIGINT NOT NULL
);

CREATE TABLE presence (
    node_id    TEXT NOT NULL,
    app        TEXT NOT NULL,
    peers      TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (node_id, app)
);
