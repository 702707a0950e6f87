-- A claim's API rendering is derived from its state by factlog, so it is no
-- longer stored beside it: listings render it as they read. Each claim's
-- row carried both (about 700 bytes each); every live batch and every
-- rebuild wrote the second one for nothing.
ALTER TABLE claims_view DROP COLUMN view;
