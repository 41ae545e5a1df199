-- connector-telemetry schema 7 (issue 11, test mode). ``meta``: facts about the database
-- itself; a test-mode server that creates the database writes ('test_mode', <when>) there,
-- and ``--test-mode`` refuses a database without that row. The ``test_*`` tables hold the
-- test-mode state every worker process shares (api/testmode.py, service/testmode.py): one
-- row of settings (clock offset, rate limit), the fault rules with their remaining counts,
-- one counter per credential for the rate limit, and the request journal. They stay empty
-- unless a test-mode server uses them.
CREATE TABLE meta (
    name    TEXT PRIMARY KEY,
    value   TEXT NOT NULL
);
CREATE TABLE test_state (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    clock_offset    REAL NOT NULL,
    rate_requests   INTEGER,
    rate_period     REAL
);
INSERT INTO test_state VALUES (1, 0, NULL, NULL);
CREATE TABLE test_faults (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    route       TEXT NOT NULL,
    method      TEXT,
    status      INTEGER,
    delay_ms    INTEGER,
    close       INTEGER NOT NULL,
    count       INTEGER,
    remaining   INTEGER
);
CREATE TABLE test_rate (
    credential  TEXT PRIMARY KEY,
    win         INTEGER NOT NULL,
    hits        INTEGER NOT NULL
);
CREATE TABLE test_journal (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    time            REAL NOT NULL,
    method          TEXT NOT NULL,
    path            TEXT NOT NULL,
    route           TEXT,
    query           TEXT NOT NULL,
    status          INTEGER NOT NULL,
    bytes_in        INTEGER NOT NULL,
    bytes_out       INTEGER NOT NULL,
    credential_kind TEXT,
    credential_id   TEXT,
    account_id      TEXT
)
