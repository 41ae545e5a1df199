-- connector-telemetry schema 4 (PostgreSQL; issue 9, the dashboard's fleet summary): per
-- connector, the health records of its two newest snapshots and the key and kind of its newest failure
-- event, kept up to date inside the ingest write transaction (store/fleet.py), so that the
-- fleet page is one read of the connectors table however long the histories are.
ALTER TABLE connectors ADD COLUMN health_t float8;
ALTER TABLE connectors ADD COLUMN health bytea;
ALTER TABLE connectors ADD COLUMN health_prev_t float8;
ALTER TABLE connectors ADD COLUMN health_prev bytea;
ALTER TABLE connectors ADD COLUMN failure_t float8;
ALTER TABLE connectors ADD COLUMN failure_n float8;
ALTER TABLE connectors ADD COLUMN failure_k text;
-- Existing snapshots: records are computed at read time (health_t = -1) until the next one.
UPDATE connectors SET health_t = -1 WHERE EXISTS (SELECT 1 FROM snapshots WHERE cpk = connectors.pk);
-- Existing events: the newest failure (the kinds of models.FAILURE_KINDS).
UPDATE connectors SET (failure_t, failure_n, failure_k) = (
    SELECT t, n, k FROM events WHERE cpk = connectors.pk AND k IN (
        'FinishAttestationFailure', 'FinishRotateCryptKeyFailure', 'FinishRotatePkiFailure',
        'FinishUpgradeFailure', 'BlessSlotFailure', 'HaError')
    ORDER BY t DESC, n DESC LIMIT 1
);
