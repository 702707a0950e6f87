-- Erasable values live outside the log (the verifiable log's leaf design).
--
-- From this migration on, an event's erasable fields (a claim's quote and
-- attribution, every note and reason, a story's body) enter `events.data`
-- only as a salted commitment: the lower-case hex of SHA-256(salt || value).
-- The value and its salt are kept here, keyed by the field's path in the
-- data, so that an erasure can delete them without touching the log: the
-- chain and the Merkle leaf cover the commitment, never the value.
--
--   secrets = {"quote": {"salt": "<hex>", "value": "<text>"}, "changes.quote": {...}}
--
-- Events recorded before this migration keep their values in `events.data`
-- and have no row here (the log is never rewritten): their leaves commit to
-- the values themselves, and they cannot be erased.
CREATE TABLE event_secrets (
    position bigint PRIMARY KEY,
    secrets  jsonb  NOT NULL CHECK (jsonb_typeof(secrets) = 'object')
);

-- The one-round-trip append (0005) also writes each event's secrets.
DROP FUNCTION factlog_append_at(
    bigint, text[], bigint[], bigint[], uuid[], text[], bigint[], text[], text[], text[], text[],
    bytea[], timestamptz, text[], text[], text[], text[], bytea[], smallint[], text[], bigint[],
    bigint, bytea);

CREATE FUNCTION factlog_append_at(
    p_head        bigint,
    p_streams     text[],
    p_versions    bigint[],
    p_position    bigint[],
    p_event_id    uuid[],
    p_stream      text[],
    p_version     bigint[],
    p_type        text[],
    p_data        text[],
    p_metadata    text[],
    p_actor       text[],
    p_hash        bytea[],
    p_recorded_at timestamptz,
    k_scope       text[],
    k_key         text[],
    k_method      text[],
    k_path        text[],
    k_request     bytea[],
    k_status      smallint[],
    k_response    text[],
    k_position    bigint[],
    p_new_head    bigint,
    p_new_hash    bytea,
    s_position    bigint[],
    s_secrets     text[]
) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- A head that moved while we waited for its lock fails the re-check.
    PERFORM 1 FROM event_head WHERE position = p_head FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the log head is no longer at %', p_head USING ERRCODE = 'FL001';
    END IF;
    IF EXISTS (
        SELECT 1 FROM unnest(p_streams, p_versions) AS u(stream, version)
        WHERE COALESCE((SELECT max(e.version) FROM events e WHERE e.stream = u.stream), 0)
              <> u.version
    ) THEN
        RAISE EXCEPTION 'a stream is not at the version assumed' USING ERRCODE = 'FL002';
    END IF;
    INSERT INTO events (position, event_id, stream, version, type, data, metadata, actor, recorded_at, hash)
    SELECT p, id, s, v, t, d::jsonb, m::jsonb, a, p_recorded_at, h
    FROM unnest(p_position, p_event_id, p_stream, p_version, p_type, p_data, p_metadata, p_actor, p_hash)
         AS u(p, id, s, v, t, d, m, a, h);
    INSERT INTO event_secrets (position, secrets)
    SELECT p, x::jsonb FROM unnest(s_position, s_secrets) AS u(p, x);
    -- A key already used (here or earlier in the batch) violates the
    -- primary key and sends the batch down the two-step path, which replays.
    INSERT INTO idempotency_keys (scope, key, method, path, request_hash, status, response, position)
    SELECT sc, k, me, pa, rh, st, r::jsonb, po
    FROM unnest(k_scope, k_key, k_method, k_path, k_request, k_status, k_response, k_position)
         AS u(sc, k, me, pa, rh, st, r, po);
    UPDATE event_head SET position = p_new_head, hash = p_new_hash, recorded_at = p_recorded_at;
    PERFORM pg_notify('factlog_events', p_new_head::text);
END;
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factlog_app') THEN
        -- DELETE and UPDATE are for erasure: the values, never the log.
        GRANT SELECT, INSERT, UPDATE, DELETE ON event_secrets TO factlog_app;
    END IF;
END;
$$;
