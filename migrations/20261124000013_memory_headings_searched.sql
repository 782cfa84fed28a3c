-- A passage is found by the headings it sits under as well as by its
-- text: "what is on the roadmap?" finds the passages under "# Roadmap, Q4"
-- even where their text never says "roadmap". The locator is the heading
-- path ("Roadmap, Q4 > Billing v2"); a plain-text file's locator
-- ("line 12") names no topic and is left out. Heading words weigh the same
-- as the text's. The column is generated, so existing passages are
-- re-indexed here; partitions made later inherit the column and the index.
ALTER TABLE memory_items DROP COLUMN tsv;
ALTER TABLE memory_items ADD COLUMN tsv TSVECTOR GENERATED ALWAYS AS (
    to_tsvector('english', CASE WHEN locator ~ '^line [0-9]+$' THEN '' ELSE locator END || E'\n' || body)
) STORED;
CREATE INDEX memory_items_tsv ON memory_items USING GIN (tsv) WITH (fastupdate = off);
