-- The editors' console signs people in with a token and keeps a session in
-- a cookie. Sessions live here, so every API process knows them: a row is
-- keyed by the SHA-256 of the session id (the cookie's value is never
-- stored), remembers the hash of the token it was opened with (a revoked
-- token ends its sessions) and the per-session secret its CSRF tokens are
-- derived from.
CREATE TABLE console_sessions (
    id_hash     bytea       PRIMARY KEY CHECK (octet_length(id_hash) = 32),
    token_hash  bytea       NOT NULL CHECK (octet_length(token_hash) = 32),
    csrf_secret bytea       NOT NULL CHECK (octet_length(csrf_secret) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    CHECK (expires_at > created_at)
);
-- Sweeping expired sessions; ending the sessions of a token.
CREATE INDEX console_sessions_expires_at ON console_sessions (expires_at);
CREATE INDEX console_sessions_token_hash ON console_sessions (token_hash);

-- The console's story list, newest first, without reading the whole log.
CREATE INDEX events_stories_by_position ON events (position)
    WHERE type = 'StoryRegistered';

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factlog_app') THEN
        GRANT SELECT, INSERT, DELETE ON console_sessions TO factlog_app;
    END IF;
END;
$$;
