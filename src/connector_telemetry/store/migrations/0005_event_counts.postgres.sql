-- connector-telemetry schema 5 (PostgreSQL; issue 12, the fleet for Prometheus): each
-- connector's events counted by kind, kept up to date inside the ingest write transaction
-- (store/fleet.py), so that a scrape of the fleet's counters reads one row per connector and
-- kind however long the histories are. Monotonic: retention does not lower them.
CREATE TABLE event_counts (
    cpk     bigint NOT NULL REFERENCES connectors(pk) ON DELETE CASCADE,
    k       text NOT NULL,
    count   bigint NOT NULL,
    PRIMARY KEY (cpk, k)
);
INSERT INTO event_counts (cpk, k, count) SELECT cpk, k, count(*) FROM events GROUP BY cpk, k;
