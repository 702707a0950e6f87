-- The projections' documents are stored as json (checked text), not jsonb.
-- Nothing queries inside them: they are written whole, read whole and
-- rendered or decoded by factlog. jsonb made PostgreSQL parse every
-- document into its binary form on each write and print it back to text on
-- each read; in the live facts projection and the rebuild that parsing was
-- most of the database's CPU. The log's own `data` and `metadata` stay
-- jsonb (they are queried, e.g. a story's URL).
ALTER TABLE claims_view ALTER COLUMN state TYPE json USING state::json,
                        ALTER COLUMN view TYPE json USING view::json;
ALTER TABLE fact_claims ALTER COLUMN state TYPE json USING state::json;
ALTER TABLE facts_view ALTER COLUMN doc TYPE json USING doc::json;
ALTER TABLE claim_versions ALTER COLUMN state TYPE json USING state::json;

-- A new column type starts with the default compression again.
DO $$
BEGIN
    ALTER TABLE claims_view ALTER COLUMN state SET COMPRESSION lz4,
                            ALTER COLUMN view SET COMPRESSION lz4;
    ALTER TABLE fact_claims ALTER COLUMN state SET COMPRESSION lz4;
    ALTER TABLE facts_view ALTER COLUMN doc SET COMPRESSION lz4;
    ALTER TABLE claim_versions ALTER COLUMN state SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this server has no lz4: projection documents stay with pglz';
END;
$$;
