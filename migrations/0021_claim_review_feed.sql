-- The ClaimReview feed (`GET /v1/claimreview?since=`) pages through the
-- claims whose current state changed since a time, in the order of that
-- change: the open versions by the time they were recorded.
CREATE INDEX claim_versions_open_recorded ON claim_versions (recorded_from, claim_id)
    WHERE recorded_to IS NULL;
