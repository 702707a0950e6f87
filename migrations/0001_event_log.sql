-- The event log: the only source of truth in factlog.
--
-- Positions are assigned by the appender while it holds the row lock on
-- `event_head`, so they are gapless and in commit order (see ARCHITECTURE.md,
-- "Why no reader skips an event"). Nothing here ever updates or deletes an event.

CREATE TABLE events (
    position    bigint      PRIMARY KEY CHECK (position > 0),
    event_id    uuid        NOT NULL UNIQUE,
    stream      text        NOT NULL CHECK (stream <> ''),
    version     bigint      NOT NULL CHECK (version > 0),
    type        text        NOT NULL CHECK (type <> ''),
    data        jsonb       NOT NULL,
    metadata    jsonb       NOT NULL,
    actor       text        NOT NULL,
    recorded_at timestamptz NOT NULL,
    hash        bytea       NOT NULL CHECK (octet_length(hash) = 32),
    CONSTRAINT events_stream_version UNIQUE (stream, version)
);

CREATE INDEX events_actor_recorded_at ON events (actor, recorded_at, position);
CREATE INDEX events_recorded_at ON events (recorded_at, position);

-- The head of the log: last position, its hash and its record time. Holding
-- this row's lock is what serializes appends; it is a cache of the log's last
-- row, and `verify` cross-checks it against the log (a truncated tail shows).
CREATE TABLE event_head (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    position    bigint      NOT NULL,
    hash        bytea       NOT NULL CHECK (octet_length(hash) = 32),
    recorded_at timestamptz NOT NULL
);
INSERT INTO event_head (singleton, position, hash, recorded_at)
VALUES (true, 0, decode(repeat('00', 32), 'hex'), '-infinity');

-- Immutability in the database itself: UPDATE, DELETE and TRUNCATE fail for
-- everyone, owner and superuser included. ENABLE ALWAYS keeps the triggers
-- firing under session_replication_role = replica as well; only someone who
-- explicitly disables them can alter the log, and `factlog verify` finds that.
CREATE FUNCTION factlog_refuse_log_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_no_update_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION factlog_refuse_log_change();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION factlog_refuse_log_change();
ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_update_delete;
ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_truncate;

-- Idempotency: the first successful response to a keyed write, stored in the
-- same transaction as the write's events, so a replay can never append twice.
CREATE TABLE idempotency_keys (
    scope        text        NOT NULL,
    key          text        NOT NULL,
    method       text        NOT NULL,
    path         text        NOT NULL,
    request_hash bytea       NOT NULL,
    status       smallint    NOT NULL,
    response     jsonb       NOT NULL,
    position     bigint      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- The runtime role: what the service needs and nothing more. Roles are
-- cluster-wide, so creation tolerates a concurrent or earlier creator, and a
-- migrator without CREATEROLE (common on managed PostgreSQL) only gets a notice.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factlog_app') THEN
        BEGIN
            CREATE ROLE factlog_app LOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'cannot create role factlog_app; create it by hand to use it';
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factlog_app') THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO factlog_app', current_database());
        GRANT USAGE ON SCHEMA public TO factlog_app;
        GRANT SELECT, INSERT ON events TO factlog_app;
        GRANT SELECT, UPDATE ON event_head TO factlog_app;
        GRANT SELECT, INSERT, DELETE ON idempotency_keys TO factlog_app;
        GRANT SELECT ON _sqlx_migrations TO factlog_app;
    END IF;
END;
$$;
