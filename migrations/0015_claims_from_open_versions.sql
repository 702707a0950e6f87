-- Claims are listed from their open versions; `claims_view` goes.
--
-- Every claim's current state was kept twice: as its row in `claims_view`
-- (the claims projection) and as its open version in `claim_versions` (the
-- facts projection), the same JSON written by two workers that each read
-- the log, each in a transaction of their own. The open versions now carry
-- what the listings filter on, and partial indexes over the open versions
-- alone serve the listings as `claims_view`'s indexes did. The columns are
-- filled on every version (a version's own status and so on), so a closed
-- version keeps what it was; only open ones are indexed.
--
-- `claim_versions_open` is a claim's current state by id: the look-up of
-- every projection batch and the unfiltered listing. Without it the planner,
-- short of statistics, took the listing indexes for that look-up (scanning
-- one whole, `claim_id` being its second column). Being unique, it also
-- keeps a claim from ever having two current states.
--
-- The facts projection's checkpoint now covers the claims listings too:
-- `wait_for` on a claims listing waits for it.
ALTER TABLE claim_versions
    ADD COLUMN story_id uuid,
    ADD COLUMN status text,
    ADD COLUMN asserted_by text;
UPDATE claim_versions
SET story_id = (state -> 'asserted' ->> 'story_id')::uuid,
    status = state ->> 'status',
    asserted_by = state ->> 'asserted_by';
ALTER TABLE claim_versions
    ALTER COLUMN story_id SET NOT NULL,
    ALTER COLUMN status SET NOT NULL,
    ALTER COLUMN asserted_by SET NOT NULL;
CREATE UNIQUE INDEX claim_versions_open ON claim_versions (claim_id)
    WHERE to_position IS NULL;
CREATE INDEX claim_versions_open_story ON claim_versions (story_id, claim_id)
    WHERE to_position IS NULL;
CREATE INDEX claim_versions_open_status ON claim_versions (status, claim_id)
    WHERE to_position IS NULL;
CREATE INDEX claim_versions_open_asserted_by ON claim_versions (asserted_by, claim_id)
    WHERE to_position IS NULL;
DROP TABLE claims_view;
DELETE FROM projection_checkpoints WHERE name = 'claims';
