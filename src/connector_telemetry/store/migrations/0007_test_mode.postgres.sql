-- connector-telemetry schema 7 (PostgreSQL; issue 11, test mode): the same tables as the
-- SQLite schema of the same number (see there), with PostgreSQL's types.
CREATE TABLE meta (
    name    text COLLATE "C" PRIMARY KEY,
    value   text NOT NULL
);
CREATE TABLE test_state (
    id              integer PRIMARY KEY CHECK (id = 1),
    clock_offset    float8 NOT NULL,
    rate_requests   bigint,
    rate_period     float8
);
INSERT INTO test_state VALUES (1, 0, NULL, NULL);
CREATE TABLE test_faults (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    route       text COLLATE "C" NOT NULL,
    method      text,
    status      integer,
    delay_ms    bigint,
    close       boolean NOT NULL,
    count       bigint,
    remaining   bigint
);
CREATE TABLE test_rate (
    credential  text COLLATE "C" PRIMARY KEY,
    win         bigint NOT NULL,
    hits        bigint NOT NULL
);
CREATE TABLE test_journal (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time            float8 NOT NULL,
    method          text NOT NULL,
    path            text NOT NULL,
    route           text,
    query           text NOT NULL,
    status          integer NOT NULL,
    bytes_in        bigint NOT NULL,
    bytes_out       bigint NOT NULL,
    credential_kind text,
    credential_id   text,
    account_id      text
);
