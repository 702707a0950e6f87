-- The readers' change feed (`GET /v1/facts/changes`, `/v1/facts/stream`)
-- reads the claim versions in the order of the events that made them.
CREATE INDEX claim_versions_from_position ON claim_versions (from_position);
