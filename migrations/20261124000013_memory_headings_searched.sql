-- A passage is found by the headings it sits under as well as by its
-- text: "what is on the roadmap?" finds the passages under "# Roadmap, Q4"
-- even where their text never says "roadmap". The locator of an imported
-- Markdown passage is its heading path ("Roadmap, Q4 > Billing v2"); a
-- plain-text file's locator ("line 12") names no topic, and a saved note's
-- ("by alice@acme.com") names a person, so neither is indexed. (The
-- innermost heading is usually also the passage's first line, so its words
-- count twice.)
--
-- The column is generated, so this rewrites every passage and rebuilds the
-- full-text indexes under an exclusive lock: memory searches (and so Slack
-- acknowledgements, which search memory for an ask) wait until it is done.
-- Run `pincer migrate` before starting the new version's gateways; see
-- docs/PERFORMANCE.md for its time over a million passages.
ALTER TABLE memory_items DROP COLUMN tsv;
ALTER TABLE memory_items ADD COLUMN tsv TSVECTOR GENERATED ALWAYS AS (
    to_tsvector('english',
        CASE WHEN locator ~ '^line [0-9]+$' OR source LIKE 'note:%' THEN '' ELSE locator END || E'\n' || body)
) STORED;
CREATE INDEX memory_items_tsv ON memory_items USING GIN (tsv) WITH (fastupdate = off);
