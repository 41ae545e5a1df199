-- connector-telemetry schema 1 (PostgreSQL): accounts, credentials, connectors, events.
-- The same tables as the SQLite schema of the same number, with PostgreSQL's types:
-- text keys in the "C" collation (byte order, as in SQLite, whatever the database's
-- locale), numbers as float8 (so 3 and 3.0 are one key), documents as bytea.
CREATE TABLE accounts (
    id          text COLLATE "C" PRIMARY KEY,
    name        text NOT NULL,
    created_at  text COLLATE "C" NOT NULL
);

CREATE TABLE tokens (
    id          text COLLATE "C" PRIMARY KEY,
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts(id),
    name        text NOT NULL,
    permission  text NOT NULL CHECK (permission IN ('read', 'write')),
    secret_hash bytea NOT NULL UNIQUE,
    created_at  text COLLATE "C" NOT NULL,
    expires_on  text,
    revoked_at  text
);

CREATE TABLE users (
    id          text COLLATE "C" PRIMARY KEY,
    email       text COLLATE "C" NOT NULL UNIQUE,
    key_hash    bytea NOT NULL,
    created_at  text NOT NULL
);

CREATE TABLE user_accounts (
    user_id     text COLLATE "C" NOT NULL REFERENCES users(id),
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts(id),
    PRIMARY KEY (user_id, account_id)
);

-- Bumped by every change to tokens, users or connectors (license keys), in the same
-- transaction, so servers can drop cached credentials.
CREATE TABLE credentials_version (version bigint NOT NULL);
INSERT INTO credentials_version VALUES (0);

CREATE TABLE connectors (
    -- An identity never hands out a pk twice, so a cached (account, id) -> pk can only
    -- ever point at a deleted connector's (empty) telemetry, never another's.
    pk                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id          text COLLATE "C" NOT NULL REFERENCES accounts(id),
    id                  text COLLATE "C" NOT NULL,
    activated           boolean NOT NULL,
    days_of_week        text NOT NULL,
    duration_hours      float8 NOT NULL,
    embargo_dates       text NOT NULL,
    hour_of_day         float8 NOT NULL,
    notes               text NOT NULL,
    timezone            text NOT NULL,
    device_id           text COLLATE "C" NOT NULL,
    device_serial       text COLLATE "C",
    device_type         text NOT NULL,
    last_updated        text NOT NULL,
    last_heartbeat      text,
    last_seen_version   text,
    license_key_hash    bytea,
    UNIQUE (account_id, id)
);
CREATE INDEX connectors_device ON connectors (account_id, device_id);

-- One row per recorded event; doc is Get Event's result, serialized once at ingest.
-- Range-partitioned on t: one partition per calendar month from 2000 to 2099, created
-- on demand by the store (see store/postgres.py), and two permanent partitions for
-- anything outside those years, so that no row ever lacks a home. (No DEFAULT
-- partition: attaching a month next to one would lock it, and so every reader, and a
-- row that landed there would forbid its month's partition for ever.)
-- No foreign key to connectors: ingest locks the connector row itself, deleting a
-- connector deletes its telemetry explicitly, and partitions need no trigger on it.
CREATE TABLE events (
    cpk     bigint NOT NULL,
    t       float8 NOT NULL,
    n       float8 NOT NULL,
    a       float8 NOT NULL,
    k       text COLLATE "C" NOT NULL,
    doc     bytea NOT NULL,
    PRIMARY KEY (cpk, t, n)
) PARTITION BY RANGE (t);
CREATE TABLE events_before_2000 PARTITION OF events FOR VALUES FROM (MINVALUE) TO (946684800);
CREATE TABLE events_from_2100 PARTITION OF events FOR VALUES FROM (4102444800) TO (MAXVALUE);
