//! The schema, as numbered migrations applied in order at start-up. Each runs in one
//! transaction with its number recorded, under an advisory lock, so nodes starting together
//! apply each once. Names sort in byte order (`COLLATE "C"`), as Azure lists queues.

/// The migrations, in order; a released one never changes, a change is a new one.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE entities (
    account        text COLLATE "C" NOT NULL,
    name           text COLLATE "C" NOT NULL,
    sid            bigserial UNIQUE,
    next_seq       bigint NOT NULL DEFAULT 1,
    bytes          bigint NOT NULL DEFAULT 0,
    counting       smallint NOT NULL,
    lapsed_settles boolean NOT NULL,
    max_deliveries integer,
    on_expiry      smallint NOT NULL,
    metadata       text[] NOT NULL DEFAULT '{}',
    policies       jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (account, name)
);
CREATE TABLE messages (
    sid           bigint NOT NULL REFERENCES entities (sid) ON DELETE CASCADE,
    seq           bigint NOT NULL,
    sub           smallint NOT NULL,
    id            uuid NOT NULL,
    state         smallint NOT NULL,
    visible_at    bigint NOT NULL,
    expires_at    bigint NOT NULL,
    inserted_at   bigint NOT NULL,
    dequeue_count integer NOT NULL,
    receipt       uuid NOT NULL,
    dl_reason     text,
    dl_description text,
    size          integer NOT NULL,
    body          bytea NOT NULL,
    PRIMARY KEY (sid, seq)
);
CREATE INDEX messages_ready ON messages (sid, sub, visible_at, seq) WHERE state <> 1;
CREATE INDEX messages_expiry ON messages (sid, expires_at);
CREATE INDEX messages_id ON messages (sid, id);
CREATE INDEX messages_receipt ON messages (sid, receipt);
ALTER TABLE messages SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);
CREATE TABLE account_documents (
    account text COLLATE "C" NOT NULL,
    key     text COLLATE "C" NOT NULL,
    value   bytea NOT NULL,
    PRIMARY KEY (account, key)
);
"#,
    // Only a locked message (states 3 and 5) settles by its token or lapses: those two indexes
    // hold locked rows only, so a put indexes nothing there, and housekeeping finds lapsed
    // locks without walking the queue.
    r#"
DROP INDEX messages_receipt;
CREATE INDEX messages_receipt ON messages (sid, receipt) WHERE state IN (3, 5);
CREATE INDEX messages_locks ON messages (sid, visible_at) WHERE state IN (3, 5);
"#,
];
