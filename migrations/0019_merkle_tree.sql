-- The verifiable log: an RFC 9162 Merkle tree over the events (event at
-- position p is leaf p - 1), kept by the `tree` projection, and the signed
-- checkpoints of it (AUDITING.md).

-- Tiles of 256 hashes, as in C2SP tlog-tiles: a tile of level L holds the
-- hashes of tree level 8L, nodes idx * 256 .. idx * 256 + width - 1, in
-- order (level 0: the leaf hashes). A full tile (width 256) never changes.
-- The rightmost tile of a level grows: each batch inserts it anew, wider,
-- and deletes the narrower copies; a tile is a prefix of every wider copy,
-- so a proof for an older tree size reads it all the same.
CREATE TABLE tree_tiles (
    level  smallint NOT NULL CHECK (level >= 0),
    idx    bigint   NOT NULL CHECK (idx >= 0),
    width  smallint NOT NULL CHECK (width BETWEEN 1 AND 256),
    hashes bytea    NOT NULL CHECK (octet_length(hashes) = 32 * width),
    PRIMARY KEY (level, idx, width)
);
-- Hashes are incompressible: store them out of line uncompressed.
ALTER TABLE tree_tiles ALTER COLUMN hashes SET STORAGE EXTERNAL;

INSERT INTO projection_checkpoints (name) VALUES ('tree') ON CONFLICT DO NOTHING;

-- Every checkpoint ever signed: C2SP signed notes, one per tree size.
-- Append-only like the log itself (the same trigger function as 0001).
CREATE TABLE checkpoints (
    size      bigint      PRIMARY KEY CHECK (size >= 0),
    root      bytea       NOT NULL CHECK (octet_length(root) = 32),
    note      text        NOT NULL,
    signed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER checkpoints_no_update_delete
    BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION factlog_refuse_log_change();
CREATE TRIGGER checkpoints_no_truncate
    BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION factlog_refuse_log_change();
ALTER TABLE checkpoints ENABLE ALWAYS TRIGGER checkpoints_no_update_delete;
ALTER TABLE checkpoints ENABLE ALWAYS TRIGGER checkpoints_no_truncate;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factlog_app') THEN
        GRANT SELECT, INSERT, DELETE ON tree_tiles TO factlog_app;
        GRANT SELECT, INSERT ON checkpoints TO factlog_app;
    END IF;
END;
$$;
