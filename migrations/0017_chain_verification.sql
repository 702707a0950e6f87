-- What the background verifier has established about the hash chain, so
-- that `GET /v1/integrity` answers from it instead of re-hashing the whole
-- log on every request (4.6 s at 1M events).
--
-- One row. `position`/`hash`: the verified prefix, every link up to and
-- including `position` recomputed, and the stored hash it ended at (a
-- request compares the log's stored hash there with it, and re-hashes only
-- what lies beyond). `first_bad_position`: the first break any pass found,
-- kept until a full pass from the genesis finds none. `full_*`: the last
-- full pass from the genesis (on a schedule, or asked for by an auditor at
-- `POST /v1/integrity/checks`). Nothing here is a source of truth: the log
-- is; a lost or reset row only costs one more full pass.
CREATE TABLE chain_verification (
    singleton          boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    position           bigint      NOT NULL CHECK (position >= 0),
    hash               bytea       NOT NULL CHECK (octet_length(hash) = 32),
    extended_at        timestamptz,
    first_bad_position bigint,
    found_bad_at       timestamptz,
    full_started_at    timestamptz,
    full_finished_at   timestamptz,
    full_checked       bigint,
    full_ok            boolean,
    full_requested_at  timestamptz,
    full_requested_by  text
);
INSERT INTO chain_verification (singleton, position, hash)
VALUES (true, 0, decode(repeat('00', 32), 'hex'));

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factlog_app') THEN
        GRANT SELECT, UPDATE ON chain_verification TO factlog_app;
    END IF;
END;
$$;
