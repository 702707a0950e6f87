-- Erasure (API.md, "Erasure"): an `Erased` event names the positions whose
-- values it removes; the values and salts leave `event_secrets` (0018), and
-- the stored idempotent responses of the erased claim's or story's writes
-- are rewritten with those fields null. The log itself is never touched.
--
-- A write's stored response is found by the position of its last event.
CREATE INDEX idempotency_keys_position ON idempotency_keys (position);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factlog_app') THEN
        GRANT UPDATE ON idempotency_keys TO factlog_app;
    END IF;
END;
$$;
