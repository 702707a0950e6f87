-- A fact's document and its history read its claims' current versions:
-- by this index, the open versions alone, in claim order, instead of every
-- version the fact's claims ever had (a closed version is a page read for
-- nothing, and at 10M events most such pages are not in PostgreSQL's cache).
-- Named by `recorded_to`, as the listing indexes (0015), so that the
-- projection's look-ups by claim id, which say `to_position`, never scan it.
CREATE INDEX claim_versions_open_fact ON claim_versions (fact_id, claim_id)
    WHERE recorded_to IS NULL;
