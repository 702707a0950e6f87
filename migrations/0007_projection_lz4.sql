-- The projections' JSON documents compress with lz4 rather than pglz where
-- the server was built with it: a fact's document (every claim of the fact)
-- is usually past the 2 kB at which PostgreSQL compresses, and lz4 costs a
-- fraction of pglz's CPU on every write of it, live or in a rebuild (whose
-- shadow tables copy these settings). Values already stored keep their
-- compression until rewritten. Servers without lz4 keep pglz.
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
