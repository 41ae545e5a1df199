-- connector-telemetry schema 6 (PostgreSQL; issue 10, live streams): every event and snapshot
-- stored from now on, in arrival (commit) order per account. ``seq`` is numbered inside the
-- ingest write transaction from ``feed_heads`` (one row per account, bumped by the batch's new
-- items): the row lock on the account's head is held until commit, so seq order is commit
-- order per account on every node, and a reader never sees seq N+1 committed before N. Rows
-- point at their item (cpk, t, n); retention trims them by arrival time ``a``.
CREATE TABLE feed (
    account_id  text NOT NULL,
    seq         bigint NOT NULL,
    cpk         bigint NOT NULL,
    kind        text NOT NULL,
    t           float8 NOT NULL,
    n           float8 NOT NULL,
    a           float8 NOT NULL,
    k           text,
    PRIMARY KEY (account_id, seq)
);
CREATE INDEX feed_arrival ON feed (account_id, a);
CREATE TABLE feed_heads (
    account_id  text PRIMARY KEY,
    seq         bigint NOT NULL
);
