-- connector-telemetry schema 3. On SQLite, snapshots moved to a rowid table (see
-- 0003_snapshots_rowid.sqlite.sql). PostgreSQL always keeps rows in a heap with the
-- primary key as a separate B-tree: nothing to change; the number keeps both schemas'
-- versions in step.
SELECT 1;
