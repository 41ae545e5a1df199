-- connector-telemetry schema 2: snapshots, interrupts, device (license key) credentials.
CREATE TABLE snapshots (
    cpk     INTEGER NOT NULL REFERENCES connectors(pk) ON DELETE CASCADE,
    t       REAL NOT NULL,
    a       REAL NOT NULL,
    doc     BLOB NOT NULL,
    PRIMARY KEY (cpk, t)
) WITHOUT ROWID;

CREATE TABLE interrupts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    cpk             INTEGER NOT NULL REFERENCES connectors(pk) ON DELETE CASCADE,
    action          TEXT NOT NULL CHECK (action IN ('reboot', 'restart', 'shutdown')),
    purge           INTEGER NOT NULL,
    submitted_at    TEXT NOT NULL,
    triggered_at    TEXT
);
CREATE INDEX interrupts_by_connector ON interrupts (cpk, id);
-- At most one pending (untriggered) interrupt per connector, enforced by the store itself.
CREATE UNIQUE INDEX interrupts_one_pending ON interrupts (cpk) WHERE triggered_at IS NULL;

-- The recording time of the newest telemetry seen, so last_seen_version never goes back
-- when an agent replays its spool.
ALTER TABLE connectors ADD COLUMN last_seen_t REAL;
CREATE UNIQUE INDEX connectors_license ON connectors (license_key_hash)
    WHERE license_key_hash IS NOT NULL;
