-- Bearer tokens: only a SHA-256 of each token is stored. Issuing and revoking
-- are also recorded as events (TokenIssued / TokenRevoked, name and role only)
-- on the `principals` stream, in the same transaction as the row change.
CREATE TABLE tokens (
    name        text        PRIMARY KEY,
    role        text        NOT NULL CHECK (role IN ('reader', 'editor', 'auditor', 'admin')),
    token_hash  bytea       NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- A story's url, when given, is unique. Enforced on the log itself so two
-- racing registrations cannot both land.
CREATE UNIQUE INDEX events_story_url ON events ((data ->> 'url'))
    WHERE type = 'StoryRegistered' AND data ->> 'url' IS NOT NULL;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factlog_app') THEN
        GRANT SELECT, INSERT, UPDATE ON tokens TO factlog_app;
    END IF;
END;
$$;

