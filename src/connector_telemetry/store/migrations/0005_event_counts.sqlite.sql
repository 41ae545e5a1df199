-- connector-telemetry schema 5 (SQLite; issue 12, the fleet for Prometheus): each connector's
-- events counted by kind, kept up to date inside the ingest write transaction
-- (store/fleet.py), so that a scrape of the fleet's counters reads one row per connector and
-- kind however long the histories are. Monotonic: retention does not lower them.
CREATE TABLE event_counts (
    cpk     INTEGER NOT NULL REFERENCES connectors(pk) ON DELETE CASCADE,
    k       TEXT NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (cpk, k)
) WITHOUT ROWID;
INSERT INTO event_counts (cpk, k, count) SELECT cpk, k, count(*) FROM events GROUP BY cpk, k;
