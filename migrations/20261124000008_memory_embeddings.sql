-- Optional embeddings for hybrid ranking (`embeddings:` in the config).
-- Passages still waiting for theirs are found through the partial index.
ALTER TABLE memory_items ADD COLUMN embedding REAL[];
CREATE INDEX memory_items_unembedded ON memory_items (id) WHERE embedding IS NULL;
