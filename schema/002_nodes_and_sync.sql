-- 002_nodes_and_sync.sql: what lets several rtmd processes share one store.
-- A change counter the in-memory view polls (keys and apps), session rows
-- per node, the outbox (kicks and server publishes for brokers in other
-- processes) and per-node presence snapshots (GET /v1/peers from a mint-only
-- process). See docs/ARCHITECTURE.md.

-- Bumped by every change to keys or apps, so a poller re-reads them only
-- when they changed (one indexed read per poll otherwise).
CREATE TABLE change_counter (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO change_counter (id, n) VALUES (1, 0);
CREATE TRIGGER keys_ins AFTER INSERT ON keys BEGIN UPDATE change_counter SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER keys_upd AFTER UPDATE ON keys BEGIN UPDATE change_counter SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER keys_del AFTER DELETE ON keys BEGIN UPDATE change_counter SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER apps_ins AFTER INSERT ON apps BEGIN UPDATE change_counter SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER apps_upd AFTER UPDATE ON apps BEGIN UPDATE change_counter SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER apps_del AFTER DELETE ON apps BEGIN UPDATE change_counter SET n = n + 1 WHERE id = 1; END;

-- The rtmd (node-id setting) that owns a session row: a restart closes only
-- its own rows left open. '' = a row from before this migration (any node
-- closes those).
ALTER TABLE sessions ADD COLUMN node_id TEXT NOT NULL DEFAULT '';
DROP INDEX sessions_open;
CREATE INDEX sessions_open ON sessions (node_id) WHERE closed_ms = 0;

-- Kicks and server publishes for brokers in other processes. Every broker
-- reads rows with id above the newest it has seen; rows are pruned by age
-- (a minute) and count, so the table stays small.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL CHECK (kind IN ('kick', 'publish')),
    app        TEXT NOT NULL,
    target     TEXT NOT NULL,   -- kick: the peerId; publish: the channel
    data       TEXT,            -- publish: the JSON value
    created_ms INTEGER NOT NULL
);
CREATE INDEX outbox_by_created ON outbox (created_ms);

-- Brokers alive: each writes its row about every second.
CREATE TABLE nodes (
    node_id TEXT PRIMARY KEY NOT NULL,
    seen_ms INTEGER NOT NULL
);

-- Each broker's peers per app (the GET /v1/peers objects, a JSON array),
-- rewritten when they change; read only with a fresh nodes row.
CREATE TABLE presence (
    node_id    TEXT NOT NULL,
    app        TEXT NOT NULL,
    peers      TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (node_id, app)
);
