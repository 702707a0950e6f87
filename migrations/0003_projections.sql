-- Read models, built from the log by the projection workers. Every row here
-- can be rebuilt from `events` at any time (`factlog rebuild`); nothing here
-- is a source of truth.

-- Where each projection has got to. A batch's rows and its checkpoint are
-- written in one transaction, and the checkpoint moves only from the value
-- the batch started at, so an event's effect lands exactly once.
CREATE TABLE projection_checkpoints (
    name            text        PRIMARY KEY,
    position        bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    failed_position bigint,
    last_error      text,
    failed_at       timestamptz
);
INSERT INTO projection_checkpoints (name) VALUES ('claims'), ('facts');

-- claims: the current state of every claim.
CREATE TABLE claims_view (
    claim_id    uuid   PRIMARY KEY,
    story_id    uuid   NOT NULL,
    fact_id     uuid   NOT NULL,
    status      text   NOT NULL,
    asserted_by text   NOT NULL,
    state       jsonb  NOT NULL,
    view        jsonb  NOT NULL,
    position    bigint NOT NULL
);
CREATE INDEX claims_view_story ON claims_view (story_id, claim_id);
CREATE INDEX claims_view_status ON claims_view (status, claim_id);
CREATE INDEX claims_view_asserted_by ON claims_view (asserted_by, claim_id);

-- facts: the facts projection keeps its own copy of claim state (so it can
-- be rebuilt alone), the current fact documents, the system-time versions of
-- each claim's state (as_of: a fact as of a time is computed from its
-- claims' versions then), and which events belong to which fact (history).
CREATE TABLE fact_claims (
    claim_id uuid  PRIMARY KEY,
    fact_id  uuid  NOT NULL,
    state    jsonb NOT NULL
);
CREATE INDEX fact_claims_fact ON fact_claims (fact_id);

CREATE TABLE facts_view (
    fact_id      uuid   PRIMARY KEY,
    subject_key  text   NOT NULL,
    property_key text   NOT NULL,
    status       text   NOT NULL,
    doc          jsonb  NOT NULL,
    position     bigint NOT NULL
);
CREATE INDEX facts_view_keys ON facts_view (subject_key, property_key, fact_id);
CREATE INDEX facts_view_property ON facts_view (property_key, fact_id);
CREATE INDEX facts_view_status ON facts_view (status, fact_id);

CREATE TABLE claim_versions (
    claim_id      uuid        NOT NULL,
    fact_id       uuid        NOT NULL,
    from_position bigint      NOT NULL,
    to_position   bigint,
    recorded_from timestamptz NOT NULL,
    recorded_to   timestamptz,
    state         jsonb       NOT NULL,
    PRIMARY KEY (claim_id, from_position)
);
CREATE INDEX claim_versions_fact ON claim_versions (fact_id, recorded_from);

CREATE TABLE fact_events (
    fact_id  uuid   NOT NULL,
    position bigint NOT NULL,
    claim_id uuid   NOT NULL,
    PRIMARY KEY (fact_id, position)
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factlog_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON projection_checkpoints, claims_view, fact_claims,
            facts_view, claim_versions, fact_events TO factlog_app;
    END IF;
END;
$$;
