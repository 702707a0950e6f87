-- What API processes need to keep a local cache of fact documents correct.
--
-- Every facts_view row records the position of the last event that changed
-- its document, and a live batch only writes positions above the checkpoint
-- it started from. So "which documents changed since checkpoint N" is
-- `position > N`, answered from this index rather than a scan.
CREATE INDEX facts_view_position ON facts_view (position);

-- Bumped by `factlog rebuild` when it swaps a projection's tables in: a
-- rebuilt table may lay documents out differently at the same positions, so
-- caches of the old table are dropped whole when they see a new generation.
ALTER TABLE projection_checkpoints ADD COLUMN generation bigint NOT NULL DEFAULT 0;
