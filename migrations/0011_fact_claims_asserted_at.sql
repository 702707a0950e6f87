-- Each claim in a fact's document now carries its `asserted_at`, which
-- orders the claims and lets the facts projection update a document in
-- place (reading only the claims a batch changes, not all of the fact's).
-- Documents written before lack it, so the facts projection starts over
-- from the beginning of the log: its worker catches up by itself, or
-- `factlog rebuild facts` does it in one pass. The new generation makes API
-- processes drop any fact documents they cached.
TRUNCATE facts_view, fact_claims, claim_versions, fact_events;
UPDATE projection_checkpoints
SET position = 0, updated_at = now(), generation = generation + 1,
    failed_position = NULL, last_error = NULL, failed_at = NULL
WHERE name = 'facts';
