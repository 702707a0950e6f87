-- A fact's row keeps a summary instead of its whole document.
--
-- The document lists every claim of the fact, so rewriting it on each change
-- made recording a claim cost in proportion to the number of claims its fact
-- already had (about 10 kB of JSON for a fact with 25 claims). The document is
-- now laid out when it is read, from the claims' current states, which the
-- facts projection keeps anyway (the open versions in `claim_versions`). The
-- row keeps what listing and filtering need: the display subject and
-- property, the status, and the verified claims that decide the status (the
-- summary). A new pending claim leaves the summary as it was, so it does not
-- touch the row at all. `position` went unread once the fact cache took its
-- change feed from `fact_events` (0013); it goes too.
--
-- Summaries cannot be derived from the old documents in SQL, so the facts
-- projection starts over from the beginning of the log: its worker catches up
-- by itself, or `factlog rebuild facts` does it in one pass. The new
-- generation makes API processes drop any fact documents they cached.
TRUNCATE facts_view, claim_versions, fact_events;
ALTER TABLE facts_view DROP COLUMN doc, DROP COLUMN position,
    ADD COLUMN summary json NOT NULL;
-- Rows are small now: the room kept for in-place rewrites of large documents
-- (0009, 0013) only spreads them over more pages.
ALTER TABLE facts_view RESET (fillfactor, toast_tuple_target);
UPDATE projection_checkpoints
SET position = 0, updated_at = now(), generation = generation + 1,
    failed_position = NULL, last_error = NULL, failed_at = NULL
WHERE name = 'facts';
