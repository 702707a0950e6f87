-- The API processes sharing one database, each seen within the last few
-- seconds: a process that knows there are N of them lets each token through
-- at 1/N of the per-token rate limit, so N processes never allow N times it.
CREATE TABLE api_processes (
    id      uuid        PRIMARY KEY,
    seen_at timestamptz NOT NULL
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factlog_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON api_processes TO factlog_app;
    END IF;
END;
$$;
