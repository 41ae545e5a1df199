-- connector-telemetry schema 2 (PostgreSQL): snapshots, interrupts, device (license key)
-- credentials. Snapshots are partitioned like events (see 0001).
CREATE TABLE snapshots (
    cpk     bigint NOT NULL,
    t       float8 NOT NULL,
    a       float8 NOT NULL,
    doc     bytea NOT NULL,
    PRIMARY KEY (cpk, t)
) PARTITION BY RANGE (t);
CREATE TABLE snapshots_before_2000 PARTITION OF snapshots
    FOR VALUES FROM (MINVALUE) TO (946684800);
CREATE TABLE snapshots_from_2100 PARTITION OF snapshots
    FOR VALUES FROM (4102444800) TO (MAXVALUE);

CREATE TABLE interrupts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cpk             bigint NOT NULL REFERENCES connectors(pk) ON DELETE CASCADE,
    action          text NOT NULL CHECK (action IN ('reboot', 'restart', 'shutdown')),
    purge           boolean NOT NULL,
    submitted_at    text NOT NULL,
    triggered_at    text
);
CREATE INDEX interrupts_by_connector ON interrupts (cpk, id);
-- At most one pending (untriggered) interrupt per connector, enforced by the store itself.
CREATE UNIQUE INDEX interrupts_one_pending ON interrupts (cpk) WHERE triggered_at IS NULL;

-- The recording time of the newest telemetry seen, so last_seen_version never goes back
-- when an agent replays its spool.
ALTER TABLE connectors ADD COLUMN last_seen_t float8;
CREATE UNIQUE INDEX connectors_license ON connectors (license_key_hash)
    WHERE license_key_hash IS NOT NULL;
