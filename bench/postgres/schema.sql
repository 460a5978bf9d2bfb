-- The pgbench baseline's schema: shaped like the PostgreSQL store's (docs/storage-postgres.md),
-- with a queue table, a per-queue counter and the receive-order and expiry indexes; the store
-- itself also indexes ids and lock tokens, which this baseline does not need.
DROP TABLE IF EXISTS messages, queues CASCADE;
DROP SEQUENCE IF EXISTS sid_seq, msg_seq;
CREATE SEQUENCE sid_seq;
CREATE SEQUENCE msg_seq;
CREATE TABLE queues (
  account   text   NOT NULL,
  name      text   NOT NULL,
  sid       bigint NOT NULL UNIQUE DEFAULT nextval('sid_seq'),  -- storage id; a Clear swaps it
  next_seq  bigint NOT NULL DEFAULT 1,                          -- per-entity sequence counter
  metadata  jsonb  NOT NULL DEFAULT '[]',
  PRIMARY KEY (account, name)
);
CREATE TABLE messages (
  sid           bigint   NOT NULL,
  id            uuid     NOT NULL,          -- time-ordered (UUIDv7 layout), minted by the engine
  seq           bigint   NOT NULL,
  visible_at    bigint   NOT NULL,          -- ms since epoch, the engine's Timestamp
  expires_at    bigint   NOT NULL,
  inserted_at   bigint   NOT NULL,
  dequeue_count int      NOT NULL DEFAULT 0,
  receipt       uuid     NOT NULL,
  state         smallint NOT NULL DEFAULT 0, -- 0 active, 1 deferred, 2 dead-lettered (SB)
  body          bytea    NOT NULL,
  PRIMARY KEY (sid, id)
);
CREATE INDEX messages_visible ON messages (sid, visible_at, seq) WHERE state = 0;
CREATE INDEX messages_expiry  ON messages (sid, expires_at);
ALTER TABLE messages SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);
CREATE OR REPLACE FUNCTION now_ms() RETURNS bigint LANGUAGE sql STABLE
  AS $$ SELECT (extract(epoch FROM now()) * 1000)::bigint $$;
-- what MessageId::time_ordered makes: 48 bits of ms, 80 random bits
CREATE OR REPLACE FUNCTION uuid_v7ish() RETURNS uuid LANGUAGE sql VOLATILE
  AS $$ SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
                || substr(md5(random()::text), 1, 20))::uuid $$;
INSERT INTO queues (account, name) SELECT 'acct', 'q' || g FROM generate_series(1, 16) g;
