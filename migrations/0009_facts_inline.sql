-- A fact's document (every claim of the fact) is usually 5-20 kB of JSON
-- and 1.5-4 kB once lz4 has compressed it. With the default target of
-- about 2 kB PostgreSQL moves most of them out of line into TOAST chunks,
-- so every live update of a fact also inserted new chunks, indexed them and
-- left the old ones dead. Keeping a compressed document in the row (up to
-- a page) makes an update one row version. (The rebuild copies the option
-- onto its shadow table.)
ALTER TABLE facts_view SET (toast_tuple_target = 8160);
