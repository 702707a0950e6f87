-- The facts projection kept its own copy of every claim's current state in
-- `fact_claims`; the claim's open version in `claim_versions` (the one
-- without an end) is that same state, so the copy is gone: one JSON
-- document per change fewer to write, live and in a rebuild.
DROP TABLE fact_claims;
