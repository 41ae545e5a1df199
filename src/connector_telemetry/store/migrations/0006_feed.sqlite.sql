-- connector-telemetry schema 6 (issue 10, live streams): every event and snapshot stored from
-- now on, in arrival (commit) order per account. ``seq`` is numbered inside the ingest write
-- transaction from ``feed_heads`` (one row per account, bumped by the batch's new items), so
-- that seq order is commit order; a stream's resume token is a seq. Rows point at their item
-- (cpk, t, n): the document itself is read from events or snapshots when delivered. Retention
-- trims rows by arrival time ``a`` (store/common.py, purge_telemetry).
CREATE TABLE feed (
    account_id  TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    cpk         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    t           REAL NOT NULL,
    n           REAL NOT NULL,
    a           REAL NOT NULL,
    k           TEXT,
    PRIMARY KEY (account_id, seq)
) WITHOUT ROWID;
-- ?from=<epoch> (the first item recorded from then on) and retention (rows before a time).
CREATE INDEX feed_arrival ON feed (account_id, a);
CREATE TABLE feed_heads (
    account_id  TEXT PRIMARY KEY,
    seq         INTEGER NOT NULL
) WITHOUT ROWID;
