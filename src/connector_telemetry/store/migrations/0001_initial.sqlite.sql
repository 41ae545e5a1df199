-- connector-telemetry schema 1: accounts, credentials, connectors, events.
CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    name        TEXT NOT NULL,
    permission  TEXT NOT NULL CHECK (permission IN ('read', 'write')),
    secret_hash BLOB NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    expires_on  TEXT,
    revoked_at  TEXT
);

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    key_hash    BLOB NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE user_accounts (
    user_id     TEXT NOT NULL REFERENCES users(id),
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    PRIMARY KEY (user_id, account_id)
);

-- Bumped by every change to tokens or users, so servers can drop cached credentials.
CREATE TABLE credentials_version (version INTEGER NOT NULL);
INSERT INTO credentials_version VALUES (0);

CREATE TABLE connectors (
    -- AUTOINCREMENT: a pk is never reused, so a cached (account, id) -> pk can
    -- only ever point at a deleted connector's (empty) events, never another's.
    pk                  INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id          TEXT NOT NULL REFERENCES accounts(id),
    id                  TEXT NOT NULL,
    activated           INTEGER NOT NULL,
    days_of_week        TEXT NOT NULL,
    duration_hours      REAL NOT NULL,
    embargo_dates       TEXT NOT NULL,
    hour_of_day         REAL NOT NULL,
    notes               TEXT NOT NULL,
    timezone            TEXT NOT NULL,
    device_id           TEXT NOT NULL,
    device_serial       TEXT,
    device_type         TEXT NOT NULL,
    last_updated        TEXT NOT NULL,
    last_heartbeat      TEXT,
    last_seen_version   TEXT,
    license_key_hash    BLOB,
    UNIQUE (account_id, id)
);
CREATE INDEX connectors_device ON connectors (account_id, device_id);

-- One row per recorded event; doc is Get Event's result, serialized once at ingest.
CREATE TABLE events (
    cpk     INTEGER NOT NULL REFERENCES connectors(pk) ON DELETE CASCADE,
    t       REAL NOT NULL,
    n       REAL NOT NULL,
    a       REAL NOT NULL,
    k       TEXT NOT NULL,
    doc     BLOB NOT NULL,
    PRIMARY KEY (cpk, t, n)
) WITHOUT ROWID;
