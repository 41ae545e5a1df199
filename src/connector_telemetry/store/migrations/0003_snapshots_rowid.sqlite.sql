-- connector-telemetry schema 3: snapshots in an ordinary (rowid) table with its primary key
-- as a separate index. A snapshot is ~10 KB: as a WITHOUT ROWID table, whose B-tree holds
-- whole rows, most of each row sat in overflow pages and a Get Snapshot lookup cost
-- ~35 us; with the key in its own small index it costs ~10 us (measured, bench/README.md).
CREATE TABLE snapshots_v3 (
    cpk     INTEGER NOT NULL REFERENCES connectors(pk) ON DELETE CASCADE,
    t       REAL NOT NULL,
    a       REAL NOT NULL,
    doc     BLOB NOT NULL,
    PRIMARY KEY (cpk, t)
);
INSERT INTO snapshots_v3 (cpk, t, a, doc) SELECT cpk, t, a, doc FROM snapshots ORDER BY cpk, t;
DROP TABLE snapshots;
ALTER TABLE snapshots_v3 RENAME TO snapshots;
