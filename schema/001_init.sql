-- 001_init.sql: the first schema of the rtm store.
-- Times: created/revoked/before/expires in unix seconds, *_ms in unix milliseconds.
-- JSON columns hold arrays of strings. Applied in one transaction by
-- common/store.c, which then sets PRAGMA user_version = 1.

-- One row per tenant; keys, revocations and sessions belong to an app.
CREATE TABLE apps (
    name             TEXT PRIMARY KEY NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    duplicate_peer   TEXT NOT NULL DEFAULT 'allow' CHECK (duplicate_peer IN ('allow', 'replace')),
    resume_window_ms INTEGER NOT NULL DEFAULT -1,  -- -1 = the daemon's default
    max_connections  INTEGER NOT NULL DEFAULT 0,   -- 0 = no per-app cap
    created          INTEGER NOT NULL
);

-- API keys. kind 'secret': alg HS256 with the shared secret in `secret`, or
-- RS256/ES256 with the public key PEM in `secret` (id = the kid).
-- kind 'publishable': alg '' and secret NULL.
-- HS256 keys are found by secret_hash (hex SHA-256 of the secret), not by the
-- secret itself, so an index search's timing says nothing about the secret.
CREATE TABLE keys (
    id       TEXT PRIMARY KEY NOT NULL,
    app      TEXT NOT NULL REFERENCES apps (name),
    kind     TEXT NOT NULL CHECK (kind IN ('secret', 'publishable')),
    alg      TEXT NOT NULL DEFAULT '' CHECK (alg IN ('', 'HS256', 'RS256', 'ES256')),
    secret   TEXT,
    secret_hash TEXT,
    channels TEXT NOT NULL DEFAULT '["**"]',
    actions  TEXT NOT NULL DEFAULT '["publish","subscribe","presence","send"]',
    origins  TEXT NOT NULL DEFAULT '[]',             -- [] = any Origin
    created  INTEGER NOT NULL,
    revoked  INTEGER NOT NULL DEFAULT 0,            -- 0 = live
    CHECK ((kind = 'publishable') = (secret IS NULL)),
    CHECK ((alg = 'HS256') = (secret_hash IS NOT NULL))
);
-- Bearer auth finds a secret key by its secret on every mint request.
CREATE UNIQUE INDEX keys_by_hs256_secret ON keys (secret_hash) WHERE alg = 'HS256';

-- Either a jti (void until its token's exp, `expires`, after which the row may
-- be pruned) or a peer_id with `before`: tokens of that peer with iat < before
-- are void.
CREATE TABLE revocations (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    app      TEXT NOT NULL,
    jti      TEXT,
    peer_id  TEXT,
    "before" INTEGER NOT NULL DEFAULT 0,
    expires  INTEGER NOT NULL DEFAULT 0,
    created  INTEGER NOT NULL,
    CHECK ((jti IS NULL) <> (peer_id IS NULL))
);
CREATE INDEX revocations_by_jti ON revocations (jti, app);
CREATE INDEX revocations_by_peer ON revocations (peer_id, app, "before");

-- One row per broker connection, upserted in batches by the broker.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY NOT NULL,
    app          TEXT NOT NULL,
    peer_id      TEXT NOT NULL,
    jti          TEXT NOT NULL DEFAULT '',
    remote_addr  TEXT NOT NULL DEFAULT '',
    origin       TEXT,
    user_agent   TEXT,
    connected_ms INTEGER NOT NULL,
    closed_ms    INTEGER NOT NULL DEFAULT 0,  -- 0 while open
    close_code   INTEGER NOT NULL DEFAULT 0,
    close_reason TEXT NOT NULL DEFAULT '',
    frames_in    INTEGER NOT NULL DEFAULT 0,
    frames_out   INTEGER NOT NULL DEFAULT 0,
    bytes_in     INTEGER NOT NULL DEFAULT 0,
    bytes_out    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_by_peer ON sessions (peer_id, connected_ms);
CREATE INDEX sessions_by_connected ON sessions (connected_ms);
-- Only open rows: close_dangling at start touches just these.
CREATE INDEX sessions_open ON sessions (closed_ms) WHERE closed_ms = 0;
