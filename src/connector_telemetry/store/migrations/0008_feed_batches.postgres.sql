-- connector-telemetry schema 8 (PostgreSQL; issue 13, ingest): the feed (schema 6) keeps one
-- row per ingest batch instead of one per item. A row holds the batch's new items in order:
-- ``seq`` is the last one's position, ``items`` how many there are (the first is at
-- ``seq - items + 1``), ``ts``/``ns``/``ks`` their keys and kinds (``ns`` and ``ks`` NULL for
-- snapshots). Inserting 1000 feed rows with two indexes cost an ingest batch as much as
-- storing its 1000 events; one row costs next to nothing. Rows stored before are batches of
-- one. SQLite keeps a row per item (schema 8 changes nothing there: in-process inserts cost
-- it a few microseconds each).
ALTER TABLE feed
    ADD COLUMN items integer NOT NULL DEFAULT 1,
    ADD COLUMN ts float8[],
    ADD COLUMN ns float8[],
    ADD COLUMN ks text[];
UPDATE feed SET ts = ARRAY[t],
    ns = CASE WHEN kind = 'event' THEN ARRAY[n] END,
    ks = CASE WHEN kind = 'event' THEN ARRAY[k] END;
ALTER TABLE feed
    DROP COLUMN t,
    DROP COLUMN n,
    DROP COLUMN k,
    ALTER COLUMN items DROP DEFAULT,
    ALTER COLUMN ts SET NOT NULL;
