-- The readers' change feed lays each changed fact out before and after the
-- change from its verified claims alone (a fact's status, value and valid
-- time depend on nothing else): this index finds the verified versions of
-- a page's facts current in the page's span, `to_position` read from the
-- index, without visiting every version of every claim of those facts.
CREATE INDEX claim_versions_fact_verified ON claim_versions (fact_id, from_position)
    INCLUDE (to_position) WHERE status = 'verified';
