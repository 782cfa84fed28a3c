-- Memory's full-text index without GIN's pending list: with fastupdate on,
-- new passages wait in an unsorted list every search must scan until a
-- vacuum merges it, and where autovacuum is off or behind, searches slow
-- down by an order of magnitude (measured: 15.8 ms → 0.2 ms for a
-- three-word search over three 5,000-passage scopes). Memory is written
-- far less often than it is searched. Partitions made later inherit it.
DROP INDEX memory_items_tsv;
CREATE INDEX memory_items_tsv ON memory_items USING GIN (tsv) WITH (fastupdate = off);
