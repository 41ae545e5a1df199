-- connector-telemetry schema 9 (SQLite): the feed (schema 6) keeps one row per ingest batch
-- instead of one per item, as PostgreSQL's has since schema 8. A row holds the batch's new
-- items in order: ``seq`` is the last one's position, ``items`` how many there are (the
-- first is at ``seq - items + 1``), ``keys`` a JSON array of their ``[t, n, k]`` (``k``
-- null for snapshots; ctel writes the numbers exactly, as Python's repr, and reads them back
-- in Python: store/sqlite_feed.py). A row per item cost an ingest batch of 1000 events as
-- much as storing the events themselves (two B-trees, 1000 inserts). Rows stored before are
-- batches of one (``%!.17g``: 17 significant digits, which read back as the same double).
CREATE TABLE feed_batches (
    account_id  TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    items       INTEGER NOT NULL,
    cpk         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    a           REAL NOT NULL,
    keys        TEXT NOT NULL,
    PRIMARY KEY (account_id, seq)
) WITHOUT ROWID;
INSERT INTO feed_batches (account_id, seq, items, cpk, kind, a, keys)
SELECT account_id, seq, 1, cpk, kind, a,
       '[[' || printf('%!.17g', t) || ',' || printf('%!.17g', n) || ',' || json_quote(k) || ']]'
FROM feed;
DROP TABLE feed;
ALTER TABLE feed_batches RENAME TO feed;
CREATE INDEX feed_arrival ON feed (account_id, a);
