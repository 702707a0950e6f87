-- The one-round-trip append. An appender that wrote the head itself knows
-- its position, hash and record time, so it can choose positions, versions
-- and chain hashes before it asks. This function then only checks, under
-- the log-head lock, that nothing moved since (the head, and each stream's
-- version as the appender assumed it), and writes. Called outside an
-- explicit transaction it is a transaction of its own: lock, check, insert
-- and commit in one round trip. Anything unexpected raises; the implicit
-- transaction rolls back with nothing written and the appender takes the
-- two-step path (factlog_lock_head) instead.
--
-- In READ COMMITTED each statement of a volatile function takes a fresh
-- snapshot, so the version check after the lock sees every earlier commit.
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
    p_new_hash    bytea
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
