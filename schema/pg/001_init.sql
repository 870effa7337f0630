-- 001_init.sql (Postgres): the first schema of the rtm store, the twin of
-- schema/001_init.sql. Same tables, columns, checks and indexes; the
-- differences are Postgres's types (BIGINT times and counters) and an
-- explicit `seq` where the sqlite queries use rowid as a tie-breaker.
-- Applied in one transaction by common/store_pg.c under an advisory lock,
-- which then records version 1 in rtm_schema.

-- One row per tenant; keys, revocations and sessions belong to an app.
CREATE TABLE apps (
    name             TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    duplicate_peer   TEXT NOT NULL DEFAULT 'allow' CHECK (duplicate_peer IN ('allow', 'replace')),
    resume_window_ms INTEGER NOT NULL DEFAULT -1,  -- -1 = the daemon's default
    max_connections  INTEGER NOT NULL DEFAULT 0,   -- 0 = no per-app cap
    created          BIGINT NOT NULL
);

-- API keys; see schema/001_init.sql for the meaning of kind, alg and secret.
CREATE TABLE keys (
    id          TEXT PRIMARY KEY,
    seq         BIGINT GENERATED ALWAYS AS IDENTITY,  -- creation order within a second
    app         TEXT NOT NULL REFERENCES apps (name),
    kind        TEXT NOT NULL CHECK (kind IN ('secret', 'publishable')),
    alg         TEXT NOT NULL DEFAULT '' CHECK (alg IN ('', 'HS256', 'RS256', 'ES256')),
    secret      TEXT,
    secret_hash TEXT,
    channels    TEXT NOT NULL DEFAULT '["**"]',
    actions     TEXT NOT NULL DEFAULT '["publish","subscribe","presence","send"]',
    origins     TEXT NOT NULL DEFAULT '[]',             -- [] = any Origin
    created     BIGINT NOT NULL,
    revoked     BIGINT NOT NULL DEFAULT 0,              -- 0 = live
    CHECK ((kind = 'publishable') = (secret IS NULL)),
    CHECK ((alg = 'HS256') = (secret_hash IS NOT NULL))
);
CREATE UNIQUE INDEX keys_by_hs256_secret ON keys (secret_hash) WHERE alg = 'HS256';
CREATE INDEX keys_by_created ON keys (created, seq);

-- Either a jti (void until `expires`) or a peer_id with `before`.
-- Inserts are serialized by an advisory lock (store_pg.c), so ids commit in
-- order and a reader paging by id never skips a row.
CREATE TABLE revocations (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app      TEXT NOT NULL,
    jti      TEXT,
    peer_id  TEXT,
    "before" BIGINT NOT NULL DEFAULT 0,
    expires  BIGINT NOT NULL DEFAULT 0,
    created  BIGINT NOT NULL,
    CHECK ((jti IS NULL) <> (peer_id IS NULL))
);
CREATE INDEX revocations_by_jti ON revocations (jti, app);
CREATE INDEX revocations_by_peer ON revocations (peer_id, app, "before");

-- One row per broker connection, upserted in batches by the broker.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    seq          BIGINT GENERATED ALWAYS AS IDENTITY,
    app          TEXT NOT NULL,
    peer_id      TEXT NOT NULL,
    jti          TEXT NOT NULL DEFAULT '',
    remote_addr  TEXT NOT NULL DEFAULT '',
    origin       TEXT,
    user_agent   TEXT,
    connected_ms BIGINT NOT NULL,
    closed_ms    BIGINT NOT NULL DEFAULT 0,  -- 0 while open
    close_code   INTEGER NOT NULL DEFAULT 0,
    close_reason TEXT NOT NULL DEFAULT '',
    frames_in    BIGINT NOT NULL DEFAULT 0,
    frames_out   BIGINT NOT NULL DEFAULT 0,
    bytes_in     BIGINT NOT NULL DEFAULT 0,
    bytes_out    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_by_peer ON sessions (peer_id, connected_ms);
CREATE INDEX sessions_by_connected ON sessions (connected_ms);
CREATE INDEX sessions_open ON sessions (closed_ms) WHERE closed_ms = 0;
