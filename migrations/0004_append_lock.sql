-- One round trip for the start of an append: take the log-head lock, then
-- read the current versions of the streams being appended to. In READ
-- COMMITTED every statement in a function takes a fresh snapshot, so the
-- versions are read after the lock is held and see every commit before it
-- (a single plain statement would use a snapshot from before the wait).
CREATE FUNCTION factlog_lock_head(p_streams text[])
RETURNS TABLE (head_position bigint, head_hash bytea, now timestamptz, stream text, version bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    h record;
BEGIN
    SELECT e.position, e.hash, greatest(clock_timestamp(), e.recorded_at) AS at
    INTO h
    FROM event_head e
    FOR UPDATE;
    RETURN QUERY
        SELECT h.position, h.hash, h.at, s.stream,
               COALESCE((SELECT max(ev.version) FROM events ev WHERE ev.stream = s.stream), 0)
        FROM unnest(p_streams) AS s(stream)
        UNION ALL
        -- The head even when no stream is named.
        SELECT h.position, h.hash, h.at, NULL::text, NULL::bigint
        WHERE cardinality(p_streams) = 0;
END;
$$;
